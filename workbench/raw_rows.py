"""Model rows read by raw SQL statements built once, for the hot paths (starts, webhooks).

The ORM compiles a query on every call; a statement of constant text built once from the
models' metadata skips that (and psycopg prepares it server-side). `ModelColumns` lists a
model's columns for such a statement and turns the values read back into what the ORM would
have given, with the ORM's own converters (JSON text → objects, SQLite's representations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Field, Model

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
        """The model instance of this row (every concrete field must have been read)."""
        return self.model.from_db(connection.alias, self.attnames, self.values(row, start))
