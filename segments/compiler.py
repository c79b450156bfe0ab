# This module composes SQL text from its own fragments and the models' table names; every
# value travels as a parameter.
# ruff: noqa: S608
"""Segment rules compiled to one SQL statement (PostgreSQL, or SQLite for the embedded default).

`matching_sql` answers `SELECT c.user_id FROM <customers> c WHERE c.environment_id = %s AND
(<rules>)` with its parameters: values never enter the SQL text. Evaluation, previews and the
dry run all build on it, so set-based evaluation has one definition of "matches".

How the rules map to SQL (the semantics rules.py documents):

- Negative tests are written as the complement of the positive one (`NOT COALESCE(p, FALSE)`
  or an explicit `IS NULL OR ...`): the WHERE clause then never depends on NULL logic.
- Profile timestamps: an ISO *date* value compares by whole UTC days (`gt 2024-05-01` is from
  2024-05-02 00:00 UTC on, `lte 2024-05-01` up to the end of that day); a datetime compares to
  the instant. `withinLastDays N`: from now - N*24h up to now; `withinNextDays N`: from now up
  to now + N*24h; `betweenDaysAgo [a, b]`: from now - a days up to now - b days;
  `notWithinLastDays` is everything else (missing and future values included).
- Custom fields and event properties are typed JSON: `eq "5"` matches the string, `eq 5` the
  number (5.0 too), `gt`/`lt` with a number compare numbers only, with an ISO date they compare
  string values that are ISO dates or datetimes (PostgreSQL casts only strings that have the
  shape of a valid date, so a stray value never fails the statement).
- Event tests without `where` read the daily rollup (EventDailyCount): `withinLastDays N`
  counts the last N UTC calendar days including today (day >= today - (N - 1)), so the
  window's edge moves at midnight UTC. With `where` they count raw events with
  `occurred_at >= now - N*24h` and the property tests. A customer without such events has a
  count of 0: `notOccurred`, `countLte n` and `countEq 0` match them.
  A `where` property with a dot that is not a key of its own reaches into nested objects
  ("order.total"), as event triggers' filters read it.
- Each event test is an uncorrelated, aggregated subquery joined as a semi-join (PostgreSQL:
  EXISTS / NOT EXISTS, planned as hash semi/anti joins; SQLite: IN / NOT IN, which it builds
  once as an ephemeral index), so a full evaluation reads the rollup once, not once per
  customer. With `user_ids` the subqueries are restricted to those customers too.

Indexes that serve these statements on PostgreSQL (to be added by migrations of their apps):
the unique (environment, name, user_id, day) of EventDailyCount serves the rollup subqueries;
a GIN index on customers_customer.custom_fields (jsonb_path_ops) serves `eq`/`in` (`@>`) on
custom fields and one on tags serves tag tests; (environment_id, lower(email)) serves email
equality; (environment_id, country) and (environment_id, <timestamp>) for the common profile
tests. Event tests with `where` use Event's (environment, name, -occurred_at) index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from customers.models import Customer, Event, EventDailyCount

from .models import SegmentMembership
from .rules import (
    CASE_INSENSITIVE_FIELDS,
    CUSTOM_PREFIX,
    DATE_FIELDS,
    TEXT_FIELDS,
    parse_moment,
)

Fragment = tuple[str, list[Any]]

TRUE: Fragment = ("1 = 1", [])
FALSE: Fragment = ("1 = 0", [])

# A string PostgreSQL can cast to timestamptz without an error: a real calendar date
# (February 29 only in leap years), optionally a time and a UTC offset as SQLite also reads it.
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)"
_PG_ISO_MOMENT = (
    "^(?!0000)("
    "[0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
    f"|{_LEAP_YEAR}-02-29"
    ")([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,9})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$"
)
_SQLITE_ISO_MOMENT = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*"


def matching_sql(
    rules: dict[str, Any],
    *,
    environment_id: int,
    now: datetime,
    vendor: str,
    user_ids: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The customers of the environment matching `rules` (cleaned by rules_clean), as SQL.

    `vendor` is a connection's `vendor` ("postgresql" or "sqlite"); the SQL uses `%s`
    placeholders as Django's cursors take them. With `user_ids`, only those customers.
    """
    if vendor not in ("postgresql", "sqlite"):
        raise ValueError(f"No segment compiler for {vendor!r}.")
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware.")
    compiler = _Compiler(environment_id=environment_id, now=now, vendor=vendor, user_ids=user_ids)
    where, params = compiler.group(rules)
    restrict, restrict_params = compiler.restrict("c.user_id")
    sql = f"SELECT c.user_id FROM {Customer._meta.db_table} c WHERE c.environment_id = %s{restrict} AND ({where})"
    return sql, [environment_id, *restrict_params, *params]


def _column(model: Any, name: str) -> str:
    return str(model._meta.get_field(name).column)


class _Compiler:
    def __init__(self, *, environment_id: int, now: datetime, vendor: str, user_ids: Sequence[str] | None) -> None:
        self.environment_id = environment_id
        self.now = now.astimezone(UTC)
        self.pg = vendor == "postgresql"
        self.user_ids = list(user_ids) if user_ids is not None else None

    # --- parameters as each backend stores them ----------------------------------------

    def moment(self, value: datetime) -> Any:
        """A datetime parameter compared with a DateTimeField (SQLite stores naive UTC text)."""
        value = value.astimezone(UTC)
        return value if self.pg else str(value.replace(tzinfo=None))

    def day(self, value: date) -> Any:
        return value if self.pg else value.isoformat()

    def restrict(self, column: str) -> Fragment:
        """` AND <column> among user_ids` (one parameter whatever their number), or nothing."""
        if self.user_ids is None:
            return "", []
        if self.pg:
            return f" AND {column} = ANY(%s::text[])", [self.user_ids]
        return f" AND {column} IN (SELECT value FROM json_each(%s))", [json.dumps(self.user_ids)]

    # --- the tree -----------------------------------------------------------------------

    def group(self, group: dict[str, Any]) -> Fragment:
        conditions = group.get("conditions") or []
        if not conditions:
            return TRUE if group.get("match") == "all" else FALSE
        parts = [self.condition(condition) for condition in conditions]
        joiner = " AND " if group.get("match") == "all" else " OR "
        return joiner.join(f"({sql})" for sql, _ in parts), [param for _, params in parts for param in params]

    def condition(self, condition: dict[str, Any]) -> Fragment:
        if "field" in condition:
            return self.field_test(condition["field"], condition["op"], condition.get("value"))
        if "tag" in condition:
            return self.tags_test([condition["tag"]], "hasAny" if condition["op"] == "has" else "hasNone")
        if "tags" in condition:
            return self.tags_test(condition["tags"], condition["op"])
        if "event" in condition:
            return self.event_test(condition)
        if "segment" in condition:
            return self.segment_test(condition["segment"], condition["op"])
        return self.group(condition)

    @staticmethod
    def negate(fragment: Fragment) -> Fragment:
        sql, params = fragment
        return f"NOT COALESCE(({sql}), FALSE)", params

    # --- field tests --------------------------------------------------------------------

    def field_test(self, field: str, op: str, value: Any) -> Fragment:
        if field in TEXT_FIELDS:
            return self.text_test(
                f"c.{_column(Customer, TEXT_FIELDS[field])}", op, value, field in CASE_INSENSITIVE_FIELDS
            )
        if field in DATE_FIELDS:
            return self.timestamp_test(f"c.{_column(Customer, DATE_FIELDS[field])}", op, value)
        key = field[len(CUSTOM_PREFIX) :]
        return self.json_test(f"c.{_column(Customer, 'custom_fields')}", key, op, value)

    def text_test(self, column: str, op: str, value: Any, ignore_case: bool) -> Fragment:
        """A nullable text column."""
        if op in ("eq", "neq", "in", "notIn"):
            values = value if op in ("in", "notIn") else [value]
            target = f"LOWER({column})" if ignore_case else column
            if ignore_case:
                values = [item.lower() for item in values]
            if len(values) == 1:
                if op in ("eq", "in"):
                    return f"{target} = %s", list(values)
                return f"({column} IS NULL OR {target} <> %s)", list(values)
            placeholders = ", ".join(["%s"] * len(values))
            if op in ("eq", "in"):
                return f"{target} IN ({placeholders})", list(values)
            return f"({column} IS NULL OR {target} NOT IN ({placeholders}))", list(values)
        if op == "exists":
            return f"({column} IS NOT NULL AND {column} <> '')", []
        if op == "notExists":
            return f"({column} IS NULL OR {column} = '')", []
        if op == "notContains":
            return self.negate(self.text_match(column, "contains", value))
        return self.text_match(column, op, value)

    def text_match(self, expression: str, op: str, value: str) -> Fragment:
        """Case-sensitive contains / startsWith / endsWith (SQLite's LIKE ignores ASCII case)."""
        if op == "contains":
            function = "strpos" if self.pg else "instr"
            return f"{function}({expression}, %s) > 0", [value]
        if op == "startsWith":
            if self.pg:
                return f"left({expression}, %s) = %s", [len(value), value]
            return f"substr({expression}, 1, %s) = %s", [len(value), value]
        if self.pg:
            return f"right({expression}, %s) = %s", [len(value), value]
        return f"substr({expression}, %s) = %s", [-len(value), value]

    def moment_bounds(self, op: str, value: Any) -> tuple[datetime | None, bool, datetime | None, bool]:
        """(low, low inclusive, high, high inclusive) of a time test, in UTC instants."""
        now = self.now
        if op in ("gt", "gte", "lt", "lte", "before", "after"):
            moment = parse_moment(value)
            if isinstance(moment, datetime):
                instant = moment.astimezone(UTC)
                return {
                    "gt": (instant, False, None, False),
                    "after": (instant, False, None, False),
                    "gte": (instant, True, None, False),
                    "lt": (None, False, instant, False),
                    "before": (None, False, instant, False),
                    "lte": (None, False, instant, True),
                }[op]
            start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            return {
                "gt": (end, True, None, False),
                "after": (end, True, None, False),
                "gte": (start, True, None, False),
                "lt": (None, False, start, False),
                "before": (None, False, start, False),
                "lte": (None, False, end, False),
            }[op]
        if op in ("withinLastDays", "notWithinLastDays"):
            return now - timedelta(days=value), True, now, True
        if op == "withinNextDays":
            return now, True, now + timedelta(days=value), True
        if op == "betweenDaysAgo":
            return now - timedelta(days=value[0]), True, now - timedelta(days=value[1]), True
        raise ValueError(f"Not a time op: {op}")

    def bounded(self, expression: str, op: str, value: Any, wrap: str = "%s") -> Fragment:
        """`expression` within the bounds of a time op; `wrap` shapes each parameter."""
        low, low_inclusive, high, high_inclusive = self.moment_bounds(op, value)
        parts, params = [], []
        if low is not None:
            parts.append(f"{expression} {'>=' if low_inclusive else '>'} {wrap}")
            params.append(self.moment(low))
        if high is not None:
            parts.append(f"{expression} {'<=' if high_inclusive else '<'} {wrap}")
            params.append(self.moment(high))
        fragment = " AND ".join(parts), params
        return self.negate(fragment) if op == "notWithinLastDays" else fragment

    def timestamp_test(self, column: str, op: str, value: Any) -> Fragment:
        """A nullable DateTimeField (timestamptz on PostgreSQL, ISO text in UTC on SQLite)."""
        if op == "exists":
            return f"{column} IS NOT NULL", []
        if op == "notExists":
            return f"{column} IS NULL", []
        return self.bounded(column, op, value)

    # --- custom fields and event properties (typed JSON) ---------------------------------

    def json_test(self, column: str, key: str, op: str, value: Any, *, nested: bool = False) -> Fragment:
        """A test of one value of a JSON object column. `nested` (event properties): a dotted
        name that is not a key of its own reaches into nested objects ("order.total"), as
        event triggers' filters read it."""
        if op in ("neq", "notIn", "notContains", "notExists"):
            positive = {"neq": "eq", "notIn": "in", "notContains": "contains", "notExists": "exists"}[op]
            return self.negate(self.json_test(column, key, positive, value, nested=nested))
        path = key.split(".") if nested and "." in key and all(key.split(".")) else None
        if self.pg:
            return self.pg_json_test(column, key, path, op, value)
        return self.sqlite_json_test(column, key, path, op, value)

    def pg_json_test(self, column: str, key: str, path: list[str] | None, op: str, value: Any) -> Fragment:
        ip: list[Any]
        if path is None:
            item, ip = f"({column} -> %s)", [key]
        else:
            item, ip = f"COALESCE({column} -> %s, {column} #> %s::text[])", [key, path]
        text = f"({item} #>> '{{}}')"  # the JSON string as text, unquoted
        if op in ("eq", "in"):
            values = value if op == "in" else [value]
            if path is None and len(values) <= 8:
                # Containment is what a GIN (jsonb_path_ops) index on the column serves.
                return " OR ".join([f"{column} @> %s::jsonb"] * len(values)), [json.dumps({key: v}) for v in values]
            return f"{item} = ANY(%s::jsonb[])", [*ip, [json.dumps(v) for v in values]]
        if op == "exists":
            return f"COALESCE({item} NOT IN ('null'::jsonb, '\"\"'::jsonb), FALSE)", ip
        if op in ("contains", "startsWith", "endsWith"):
            sql, params = self.text_match(text, op, value)
            return f"jsonb_typeof({item}) = 'string' AND {sql}", [*ip, *ip, *params]
        if op in ("gt", "gte", "lt", "lte") and not isinstance(value, str):
            number = f"(CASE WHEN jsonb_typeof({item}) = 'number' THEN {text}::numeric END)"
            comparison = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            return f"{number} {comparison} CAST(%s AS numeric)", [*ip, *ip, value]
        moment = f"(CASE WHEN jsonb_typeof({item}) = 'string' AND {text} ~ %s THEN {text}::timestamptz END)"
        sql, params = self.bounded(moment, op, value)
        # The moment expression appears once per bound, each with its own parameters.
        return self.repeat_expression(sql, params, [*ip, *ip, _PG_ISO_MOMENT, *ip])

    def sqlite_json_test(self, column: str, key: str, path: list[str] | None, op: str, value: Any) -> Fragment:
        (kind, kp), (item, itp) = _sqlite_json_item(column, key, path)
        if op in ("eq", "in"):
            values = value if op == "in" else [value]
            parts: list[str] = []
            params: list[Any] = []
            texts = [v for v in values if isinstance(v, str)]
            numbers = [v for v in values if not isinstance(v, (str, bool))]
            booleans = sorted({"true" if v else "false" for v in values if isinstance(v, bool)})
            if texts:
                parts.append(f"({kind} = 'text' AND {item} IN ({', '.join(['%s'] * len(texts))}))")
                params += [*kp, *itp, *texts]
            if numbers:
                parts.append(f"({kind} IN ('integer', 'real') AND {item} IN ({', '.join(['%s'] * len(numbers))}))")
                params += [*kp, *itp, *numbers]
            if booleans:
                parts.append(f"{kind} IN ({', '.join(['%s'] * len(booleans))})")
                params += [*kp, *booleans]
            return " OR ".join(parts), params
        if op == "exists":
            return f"COALESCE({item} <> '', FALSE)", itp
        if op in ("contains", "startsWith", "endsWith"):
            sql, params = self.text_match(item, op, value)
            return f"{kind} = 'text' AND {sql}", [*kp, *itp, *params]
        if op in ("gt", "gte", "lt", "lte") and not isinstance(value, str):
            comparison = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            return f"{kind} IN ('integer', 'real') AND {item} {comparison} %s", [*kp, *itp, value]
        # date() rolls an impossible day over (2023-02-29 becomes 2023-03-01): such a value
        # is no date, as on PostgreSQL.
        moment = (
            f"julianday(CASE WHEN {kind} = 'text' AND {item} GLOB %s "
            f"AND date(julianday(substr({item}, 1, 10))) = substr({item}, 1, 10) THEN {item} END)"
        )
        sql, params = self.bounded(moment, op, value, wrap="julianday(%s)")
        return self.repeat_expression(sql, params, [*kp, *itp, _SQLITE_ISO_MOMENT, *itp, *itp, *itp])

    @staticmethod
    def repeat_expression(sql: str, bound_params: list[Any], expression_params: list[Any]) -> Fragment:
        """Parameters of `bounded` over an expression with parameters of its own: each bound
        reads the expression's parameters, then its own value."""
        params: list[Any] = []
        for bound in bound_params:
            params += [*expression_params, bound]
        return sql, params

    # --- tags -------------------------------------------------------------------------

    def tags_test(self, tags: list[str], op: str) -> Fragment:
        column = f"c.{_column(Customer, 'tags')}"
        if op == "hasNone":
            return self.negate(self.tags_test(tags, "hasAny"))
        if self.pg:
            if op == "hasAll" or len(tags) == 1:
                return f"{column} @> %s::jsonb", [json.dumps(tags)]
            return f"{column} ?| %s::text[]", [tags]
        if op == "hasAll":
            return (
                f"(SELECT COUNT(DISTINCT t.value) FROM json_each({column}) t "
                f"WHERE t.type = 'text' AND t.value IN (SELECT value FROM json_each(%s))) = %s",
                [json.dumps(tags), len(tags)],
            )
        return (
            f"EXISTS (SELECT 1 FROM json_each({column}) t "
            f"WHERE t.type = 'text' AND t.value IN (SELECT value FROM json_each(%s)))",
            [json.dumps(tags)],
        )

    # --- segments and events: semi-joins ------------------------------------------------

    def among(self, subquery: Fragment, *, positive: bool) -> Fragment:
        """c.user_id among (or not among) the user ids that `subquery` selects."""
        sql, params = subquery
        if self.pg:
            # Planned as a hash (anti) semi-join; NOT IN would fall back to a per-row scan
            # of the subquery when its hash does not fit in work_mem.
            exists = f"EXISTS (SELECT 1 FROM ({sql}) x WHERE x.user_id = c.user_id)"
            return (exists if positive else f"NOT {exists}"), params
        return f"c.user_id {'IN' if positive else 'NOT IN'} ({sql})", params

    def segment_test(self, segment_id: int, op: str) -> Fragment:
        table = SegmentMembership._meta.db_table
        subquery: Fragment = (
            f"SELECT m.user_id FROM {table} m WHERE m.segment_id = %s AND m.is_member = %s",
            [segment_id, True],
        )
        return self.among(subquery, positive=op == "in")

    def event_test(self, condition: dict[str, Any]) -> Fragment:
        op = condition["op"]
        value: int = condition.get("value") or 0
        # (positive, HAVING comparison, count): every op as "among / not among the customers
        # whose count compares so".
        if op == "occurred":
            positive, comparison, count = True, ">=", 1
        elif op == "notOccurred":
            positive, comparison, count = False, ">=", 1
        elif op == "countGte":
            if value == 0:
                return TRUE
            positive, comparison, count = True, ">=", value
        elif op == "countLte":
            positive, comparison, count = False, ">=", value + 1
        elif value == 0:  # countEq 0
            positive, comparison, count = False, ">=", 1
        else:
            positive, comparison, count = True, "=", value
        subquery = self.event_counts(condition, comparison, count)
        return self.among(subquery, positive=positive)

    def event_counts(self, condition: dict[str, Any], comparison: str, count: int) -> Fragment:
        """The user ids whose count of the event (in the window, with the property tests)
        compares to `count`."""
        days = condition.get("withinLastDays")
        where = condition.get("where") or []
        if not where:
            table = EventDailyCount._meta.db_table
            sql = f"SELECT d.user_id FROM {table} d WHERE d.environment_id = %s AND d.name = %s"
            params: list[Any] = [self.environment_id, condition["event"]]
            if days is not None:
                first_day = self.now.date() - timedelta(days=days - 1)
                sql += " AND d.day >= %s"
                params.append(self.day(first_day))
            restrict, restrict_params = self.restrict("d.user_id")
            sql += restrict
            params += restrict_params
            if comparison == ">=" and count == 1:
                # A row of the rollup is a day with at least one event: no need to add them up.
                return sql, params
            return f"{sql} GROUP BY d.user_id HAVING SUM(d.count) {comparison} %s", [*params, count]
        table = Event._meta.db_table
        sql = f"SELECT e.user_id FROM {table} e WHERE e.environment_id = %s AND e.name = %s"
        params = [self.environment_id, condition["event"]]
        if days is not None:
            sql += " AND e.occurred_at >= %s"
            params.append(self.moment(self.now - timedelta(days=days)))
        restrict, restrict_params = self.restrict("e.user_id")
        sql += restrict
        params += restrict_params
        column = f"e.{_column(Event, 'properties')}"
        for test in where:
            test_sql, test_params = self.json_test(column, test["property"], test["op"], test.get("value"), nested=True)
            sql += f" AND ({test_sql})"
            params += test_params
        if comparison == ">=" and count == 1:
            return sql, params
        return f"{sql} GROUP BY e.user_id HAVING COUNT(*) {comparison} %s", [*params, count]


def _sqlite_json_item(column: str, key: str, path: list[str] | None) -> tuple[Fragment, Fragment]:
    """The type and the value of one key as SQL (with their parameters).

    A quoted JSON path (dots and spaces are part of the key) where SQLite's path syntax can
    say the key, the key's row of json_each otherwise (slower, but any key works). With a
    nested `path`, the key of its own if there is one, else the nested value.
    """
    if '"' in key or "\\" in key:
        rows = f"FROM json_each({column}) j WHERE j.key = %s"
        return (f"(SELECT j.type {rows})", [key]), (f"(SELECT j.value {rows})", [key])
    own = f'$."{key}"'
    if path is None or any('"' in part or "\\" in part for part in path):
        return (f"json_type({column}, %s)", [own]), (f"json_extract({column}, %s)", [own])
    inner = "$" + "".join(f'."{part}"' for part in path)
    kind = f"COALESCE(json_type({column}, %s), json_type({column}, %s))"
    item = (
        f"(CASE WHEN json_type({column}, %s) IS NOT NULL "
        f"THEN json_extract({column}, %s) ELSE json_extract({column}, %s) END)"
    )
    return (kind, [own, inner]), (item, [own, own, inner])
