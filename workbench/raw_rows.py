"""The hot paths' SQL: rows read by statements built once, and the one way rows are written in bulk.

Reading: the ORM compiles a query on every call; a statement of constant text built once
from the models' metadata skips that, and `prepared_cursor` has PostgreSQL parse and plan it
once per connection too. `ModelColumns` lists a model's columns for such a statement and
turns the values read back into what the ORM would have given, with the ORM's own converters
(JSON text → objects, SQLite's representations).

Writing many rows: `rows_insert` (unsaved instances), `new_rows_insert` (rows by attribute
name, no instances: the hot paths') and `records_insert` (JSON objects by column, with ON
CONFLICT DO NOTHING or DO UPDATE) make an INSERT whose rows travel as ONE
jsonb parameter; `insert_rows_together` runs one or several as one prepared statement, and
`insert_new_rows` is the plain case, `insert_rows_like` the case of many rows that differ from one
template in a few columns. PostgreSQL only: elsewhere (SQLite, the embedded
default) callers use bulk_create, which is fast enough there.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, Protocol, TypeVar, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Field, Model
from django.utils import timezone

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class ModelColumns(Generic[M]):
    model: type[M]
    sql: str  # "alias.column, ..." to format into the statement
    attnames: list[str]
    converters: dict[int, tuple[list[Any], Any]]  # by position, as the compiler applies them

    @classmethod
    def of(cls, model: type[M], alias: str, fields: Sequence[Field[Any, Any]] | None = None) -> ModelColumns[M]:
        """`fields` (every concrete field by default) of `model`, over the table aliased `alias`."""
        chosen = list(model._meta.concrete_fields) if fields is None else list(fields)
        quote = connection.ops.quote_name
        compiler = model._default_manager.none().query.get_compiler(connection=connection)
        return cls(
            model=model,
            sql=", ".join(f"{alias}.{quote(field.column)}" for field in chosen),
            attnames=[field.attname for field in chosen],
            converters=compiler.get_converters([field.get_col(alias) for field in chosen]),
        )

    @property
    def width(self) -> int:
        return len(self.attnames)

    def values(self, row: Sequence[Any], start: int = 0) -> list[Any]:
        """This model's values from `row`, which holds them from column `start`, converted."""
        values = list(row[start : start + self.width])
        for index, (converters, column) in self.converters.items():
            for converter in converters:
                values[index] = converter(values[index], column, connection)
        return values

    def instance(self, row: Sequence[Any], start: int = 0) -> M:
        """The model instance of this row; fields that were not read are deferred (Django
        reads one when it is first used)."""
        return self.model.from_db(connection.alias, self.attnames, self.values(row, start))


# Field classes whose database preparation leaves a str, int or bool value as it is: such a
# value goes into the JSON row untouched (the ORM's preparation costs microseconds a field).
_PLAIN_FIELDS: frozenset[type[Field[Any, Any]]] = frozenset(
    {
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.PositiveBigIntegerField,
        models.BooleanField,
        models.ForeignKey,
    }
)
_PLAIN_VALUES = (str, int, bool)
_JSON, _PLAIN, _PREPARED = "json", "plain", "prepared"


@dataclass(frozen=True)
class Upsert:
    """ON CONFLICT (unique) DO UPDATE SET each of `update` to the proposed row's value."""

    unique: tuple[str, ...]  # field names
    update: tuple[str, ...]


# What a conflicting row does: fail the statement (None), be skipped, or update the stored row.
IGNORE = "ignore"
OnConflict = Upsert | str | None


@dataclass(frozen=True)
class _RowsShape:
    fields: list[tuple[Field[Any, Any], str]]  # with how its value is written: _JSON, _PLAIN or _PREPARED
    select: str  # INSERT … SELECT … FROM jsonb_populate_recordset(…)
    suffix: str  # ON CONFLICT …, RETURNING …


def _kind(field: Field[Any, Any]) -> str:
    if isinstance(field, models.JSONField):
        return _JSON
    return _PLAIN if type(field) in _PLAIN_FIELDS else _PREPARED


@cache
def _rows_shape(model: type[Model], returning: tuple[str, ...], on_conflict: OnConflict) -> _RowsShape:
    opts = model._meta
    fields = [field for field in opts.concrete_fields if not field.generated and field is not opts.auto_field]
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(cast("Field[Any, Any]", opts.get_field(name)).column)

    table, columns = quote(opts.db_table), ", ".join(quote(field.column) for field in fields)
    select = (  # only quoted names from the model's metadata are formatted in
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"  # noqa: S608
    )
    suffix = ""
    if on_conflict == IGNORE:
        suffix = " ON CONFLICT DO NOTHING"
    elif isinstance(on_conflict, Upsert):
        updates = ", ".join(f"{column(name)} = EXCLUDED.{column(name)}" for name in on_conflict.update)
        suffix = f" ON CONFLICT ({', '.join(column(name) for name in on_conflict.unique)}) DO UPDATE SET {updates}"
    if returning:
        suffix += " RETURNING " + ", ".join(column(name) for name in returning)
    return _RowsShape(fields=[(field, _kind(field)) for field in fields], select=select, suffix=suffix)


@dataclass(frozen=True)
class RowsInsert:
    """An INSERT of rows of one model that reads them from one jsonb parameter, unsent."""

    select: str
    suffix: str
    records: list[dict[str, Any]]

    def sql(self, condition: str = "") -> str:
        """The statement, inserting its rows only where `condition` (SQL) holds, if given."""
        return f"{self.select} WHERE {condition}{self.suffix}" if condition else f"{self.select}{self.suffix}"


def records_insert(
    model: type[Model],
    records: list[dict[str, Any]],
    *,
    returning: tuple[str, ...] = (),
    on_conflict: OnConflict = None,
) -> RowsInsert:
    """The INSERT of `records` (JSON objects keyed by column; a missing key is NULL) into
    `model`'s table, unsent, for PostgreSQL: the rows travel as ONE jsonb parameter that
    jsonb_populate_recordset types by the table's own columns. `returning` names the fields
    to read back (one row per row written)."""
    shape = _rows_shape(model, returning, on_conflict)
    return RowsInsert(select=shape.select, suffix=shape.suffix, records=records)


def rows_insert(
    objs: Sequence[Model], *, returning: tuple[str, ...] = (), ignore_conflicts: bool = False
) -> RowsInsert:
    """The INSERT of new rows of one model, unsent (see records_insert), made from unsaved
    instances: what bulk_create would write (each field's pre_save and database
    preparation), at a fraction of its cost: one json.dumps instead of a parameter per
    value, and a statement text that is the same for one row or a thousand, so psycopg and
    PostgreSQL parse and prepare it once. JSON fields travel as JSON, datetimes as ISO 8601,
    None as a missing key (NULL)."""
    model = type(objs[0])
    shape = _rows_shape(model, returning, IGNORE if ignore_conflicts else None)
    database = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    records = []
    for obj in objs:
        record: dict[str, Any] = {}
        for field, kind in shape.fields:
            value = field.pre_save(obj, add=True)
            if value is not None:
                record[field.column] = _json_value(field, kind, value, database)
        records.append(record)
    return RowsInsert(select=shape.select, suffix=shape.suffix, records=records)


@dataclass(frozen=True)
class NewRow(Generic[M]):
    """A new row of `model` by attribute name, as `model(**values)` takes it, without making the
    instance: what the hot paths write (a start's invocation, a webhook's log entry and event).
    A field left out gets its default, as the model would give it."""

    model: type[M]
    values: dict[str, Any]

    def instance(self) -> M:
        """The unsaved instance, for the paths that save with the ORM (SQLite, the rare ones)."""
        return self.model(**self.values)


@dataclass(frozen=True)
class _NewRowField:
    field: Field[Any, Any]
    kind: str  # _JSON, _PLAIN or _PREPARED
    now: bool  # auto_now or auto_now_add: the current time when not given


@cache
def _new_row_fields(model: type[Model]) -> tuple[frozenset[str], list[_NewRowField]]:
    """The attribute names a NewRow of `model` may give, and how each inserted field is made."""
    opts = model._meta
    inserted = [field for field in opts.concrete_fields if not field.generated and field is not opts.auto_field]
    fields = [
        _NewRowField(
            field=field,
            kind=_kind(field),
            now=bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)),
        )
        for field in inserted
    ]
    return frozenset(field.attname for field in opts.concrete_fields), fields


def new_rows_insert(
    rows: Sequence[NewRow[Any]], *, returning: tuple[str, ...] = (), ignore_conflicts: bool = False
) -> RowsInsert:
    """The INSERT of new rows of one model, unsent (see records_insert): what rows_insert writes
    for the instances `model(**values)`, without making them: each field is a dictionary lookup,
    or its default (a webhook's three rows: 42 µs, against 77 µs through instances, measured)."""
    model: type[Model] = rows[0].model
    attnames, fields = _new_row_fields(model)
    shape = _rows_shape(model, returning, IGNORE if ignore_conflicts else None)
    database = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    now: datetime.datetime | None = None
    records = []
    for row in rows:
        if row.model is not model or not attnames.issuperset(row.values):
            raise ValueError(f"Not {model.__name__} fields: {sorted(set(row.values) - attnames)}")
        record: dict[str, Any] = {}
        for spec in fields:
            field = spec.field
            value = row.values.get(field.attname)
            if value is None and field.attname not in row.values:
                if spec.now:
                    now = now or timezone.now()
                    value = now
                else:
                    value = field.get_default()  # as the model's __init__ gives it ("" for text)
            if value is not None:
                record[field.column] = _json_value(field, spec.kind, value, database)
        records.append(record)
    return RowsInsert(select=shape.select, suffix=shape.suffix, records=records)


def _json_value(field: Field[Any, Any], kind: str, value: Any, database: Any) -> Any:
    """A field's value as the JSON row carries it: prepared as the ORM prepares it for the
    database (unless it is a plain str, int or bool, which preparation leaves alone), dates ISO 8601."""
    if kind == _PREPARED or (kind == _PLAIN and type(value) not in _PLAIN_VALUES):
        value = field.get_db_prep_save(value, connection=database)
        if isinstance(value, datetime.date):
            value = value.isoformat()
    return value


def insert_new_rows(objs: Sequence[Model]) -> None:
    """Insert unsaved instances of one model that cannot conflict (primary keys unset): one
    statement on PostgreSQL (rows_insert), bulk_create elsewhere."""
    if not objs:
        return
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        type(objs[0])._default_manager.bulk_create(objs)
        return
    insert = rows_insert(objs)
    with prepared_cursor() as cursor:
        cursor.execute(insert.sql(), [json.dumps(insert.records)])


def insert_rows_like(
    template: Model, changes: Sequence[dict[str, Any]], *, ignore_conflicts: bool = False, returning: str = ""
) -> list[Any]:
    """Insert one row per item of `changes`: the unsaved `template` with the fields each item
    names (by attname; str, int, bool, dict, list or datetime values) changed; with
    `returning` (a field name), that field of each row written, in no particular order (rows
    skipped as conflicts are not written; with `ignore_conflicts`, PostgreSQL only), else [].

    For many rows that differ in a few columns (a fan-out's runs, events and profiles): the
    template is prepared once, as rows_insert prepares an instance, and each row is a copy of
    its record; no model instance per row. Elsewhere than PostgreSQL: bulk_create of copies.
    """
    if not changes:
        return []
    model = type(template)
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        objs = []
        for change in changes:
            obj = copy.copy(template)
            for attname, value in change.items():
                setattr(obj, attname, value)
            objs.append(obj)
        if returning and ignore_conflicts:
            raise ValueError("bulk_create cannot tell which rows it skipped: no `returning` with ignore_conflicts")
        model._default_manager.bulk_create(objs, ignore_conflicts=ignore_conflicts)
        return [getattr(obj, returning) for obj in objs] if returning else []
    prepared = rows_insert([template], returning=(returning,) if returning else (), ignore_conflicts=ignore_conflicts)
    base = prepared.records[0]
    column_of = {field.attname: field.column for field in model._meta.concrete_fields}
    records = []
    for change in changes:
        record = dict(base)
        for attname, value in change.items():
            record[column_of[attname]] = value.isoformat() if isinstance(value, datetime.datetime) else value
        records.append(record)
    with prepared_cursor() as cursor:
        cursor.execute(prepared.sql(), [json.dumps(records)])
        return [row[0] for row in cursor.fetchall()] if returning else []


@dataclass(frozen=True)
class RowVersion:
    """One version of one row, as a statement read it (PostgreSQL): its transaction id and place.

    Every change of a row, by any path (a service, a queryset's update, the admin, SQL), writes
    a new version of it elsewhere: a new `ctid`, and outside the writing transaction a new
    `xmin`. So a write that holds "these rows are as I read them" as a condition (`unchanged`
    of insert_rows_together) acts on what it read or does nothing, without reading again.
    """

    model: type[Model]
    pk: Any
    version: str  # "xmin:ctid", as row_version_sql reads it


def row_version_sql(alias: str) -> str:
    """The SQL that reads the version of the row of the table aliased `alias` (PostgreSQL)."""
    return f"{alias}.xmin::text || ':' || {alias}.ctid::text"


@cache
def _unchanged_sql(model: type[Model]) -> str:
    """The condition that a row of `model` is at a version: its key and version are the
    parameters. Built once per model (the write of an API start from a recent read checks four rows)."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    # Only names from the model's metadata; the key and the version are parameters.
    return f"EXISTS (SELECT 1 FROM {table} r WHERE r.{pk} = %s AND {row_version_sql('r')} = %s)"  # noqa: S608


def insert_rows_together(
    parts: Sequence[RowsInsert], *, only_if_first_inserts: bool = False, unchanged: Sequence[RowVersion] = ()
) -> list[tuple[Any, ...]]:
    """Run the inserts as ONE statement (data-modifying CTEs, prepared) and return the rows
    the first one returns. Parts of the same statement text are merged into one.

    One statement is atomic by itself: all of it is written, or nothing (a unique
    violation anywhere fails the whole). Outside a transaction it is its own transaction:
    no BEGIN and COMMIT round trips. With `only_if_first_inserts`, the other parts write
    their rows only if the first part inserted rows (one that skips a conflicting row with
    ON CONFLICT DO NOTHING and returns none leaves the whole statement without effect).
    With `unchanged`, the first part writes only while those rows are still at the versions
    given (and the statement, gated as above, does nothing otherwise).
    """
    merged: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {}
    for index, part in enumerate(parts):
        condition, condition_params = "", []
        if index == 0 and unchanged:
            condition = " AND ".join(_unchanged_sql(row.model) for row in unchanged)
            condition_params = [value for row in unchanged for value in (row.pk, row.version)]
        elif index > 0 and only_if_first_inserts:
            condition = "EXISTS (SELECT 1 FROM part_0)"
        records, _ = merged.setdefault(part.sql(condition), ([], condition_params))
        records.extend(part.records)
    ctes = ", ".join(f"part_{index} AS ({sql})" for index, sql in enumerate(merged))
    # Each part's rows, then its condition's values: the order of their placeholders.
    params = [value for rows, condition_params in merged.values() for value in (json.dumps(rows), *condition_params)]
    with prepared_cursor() as cursor:
        # Only SQL built from the models' metadata; the rows are parameters.
        cursor.execute(f"WITH {ctes} SELECT * FROM part_0", params)  # noqa: S608
        return cursor.fetchall()


class StatementCursor(Protocol):
    """What the hot paths use of a cursor."""

    def execute(self, sql: str, params: Sequence[Any]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@contextlib.contextmanager
def prepared_cursor() -> Iterator[StatementCursor]:
    """A cursor that, on PostgreSQL, binds values server-side and prepares every statement
    it runs: parsed and planned once per connection, then only executed.

    For the hot paths' statements of constant text (built once, every value a parameter),
    where parsing and planning were most of the database's work. Django's own cursor inlines
    the values into the text and prepares nothing, so that transaction-mode connection
    poolers (PgBouncer) keep working; DATABASE_PREPARED_STATEMENTS=0 does the same here.
    The health check, error translation and query logging are Django's; the psycopg cursor
    is kept with the connection and reused, which saves a third of a lookup's CPU time.
    """
    database = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per use
    if database.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        with database.cursor() as cursor:
            yield cursor
        return
    database.close_if_health_check_failed()
    database.ensure_connection()
    database.validate_thread_sharing()
    raw_connection = database.connection
    kept: _KeptCursor | None = getattr(database, "_workbench_prepared_cursor", None)
    if kept is None or kept.connection is not raw_connection or kept.cursor.closed:
        with database.wrap_database_errors:
            kept = _KeptCursor(raw_connection, _preparing_cursor_class()(raw_connection), database)
        database._workbench_prepared_cursor = kept  # type: ignore[attr-defined]
    # Tests that count queries log them: then through Django's own debug wrapper (not closed
    # on exit, unlike `with wrapper:`, so that the psycopg cursor stays for the next time).
    yield database.make_debug_cursor(kept.cursor) if database.queries_logged else kept


@dataclass
class _KeptCursor:
    """A psycopg cursor kept with its connection, run the way Django's CursorWrapper runs one."""

    connection: Any
    cursor: Any
    database: Any

    def execute(self, sql: str, params: Sequence[Any]) -> Any:
        self.database.validate_no_broken_transaction()
        with self.database.wrap_database_errors:
            return self.cursor.execute(sql, params)

    def fetchone(self) -> Any:
        with self.database.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with self.database.wrap_database_errors:
            return list(self.cursor.fetchall())


@cache
def _preparing_cursor_class() -> Any:
    # Imported here: the module loads psycopg, which a SQLite-only process need not import.
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]

    class PreparingCursor(ServerBindingCursor):
        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: Any = None) -> Any:
            return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)

    return PreparingCursor
