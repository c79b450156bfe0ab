"""The `where` filters of event triggers: SPEC section 5's field-test ops on an event's properties.

`[{"property": "plan", "op": "eq", "value": "pro"}, ...]`: every filter must hold. A property
name may be dotted (`"order.total"`) to reach into nested objects. Filters are checked by
segments' own `where_clean` (the one validator of property tests, re-exported here), and
`where_matches` tests one event's properties in Python with the meaning the segment compiler
gives the same test in SQL (segments/compiler.py), so a trigger and a segment never disagree:

- values are compared as JSON gives them: numbers with numbers, strings with strings; a date
  op reads the property as an ISO date or datetime (naive ones are UTC);
- a property that is missing, null or "" does not exist;
- each negative op matches exactly what its positive op does not (`neq`, `notIn`,
  `notContains`, `notExists`, `notWithinLastDays`): a missing property matches them;
- a plain date compares whole UTC days: `after 2024-05-01` starts on May 2, `before` ends
  before May 1.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from segments.rules import where_clean

__all__ = ["parse_moment", "where_clean", "where_matches"]

STRING_OPS = ("contains", "notContains", "startsWith", "endsWith")
LIST_OPS = ("in", "notIn")
PRESENCE_OPS = ("exists", "notExists")
ORDER_OPS = ("gt", "gte", "lt", "lte")
DATE_OPS = ("before", "after")

_MISSING = object()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_moment(value: Any) -> datetime | None:
    """An ISO date or datetime as an aware datetime (dates at midnight UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _lookup(properties: Any, path: str) -> Any:
    if isinstance(properties, dict) and path in properties:
        return properties[path]
    value = properties
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def where_matches(where: list[dict[str, Any]], properties: Any, *, now: datetime) -> bool:
    return all(_holds(item, _lookup(properties, item["property"]), now) for item in where)


def _holds(item: dict[str, Any], actual: Any, now: datetime) -> bool:
    op = item["op"]
    expected: Any = item.get("value")
    if op in PRESENCE_OPS:
        exists = actual is not _MISSING and actual is not None and actual != ""
        return exists if op == "exists" else not exists
    if op == "eq":
        return actual is not _MISSING and _same(actual, expected)
    if op == "neq":
        return actual is _MISSING or not _same(actual, expected)
    if op in LIST_OPS:
        inside = actual is not _MISSING and any(_same(actual, candidate) for candidate in expected)
        return inside if op == "in" else not inside
    if op in STRING_OPS:
        if not isinstance(actual, str):
            return op == "notContains"
        return {
            "contains": expected in actual,
            "notContains": expected not in actual,
            "startsWith": actual.startswith(expected),
            "endsWith": actual.endswith(expected),
        }[op]
    if op in ORDER_OPS:
        return _ordered(op, actual, expected)
    moment = parse_moment(actual)
    if op == "notWithinLastDays":
        return moment is None or not now - timedelta(days=expected) <= moment <= now
    if moment is None:
        return False
    if op in DATE_OPS:
        bound = parse_moment(expected)
        if bound is None:
            return False
        if op == "before":
            return moment < bound
        # A plain date means the whole day: after it is from the next midnight on.
        return moment >= bound + timedelta(days=1) if len(expected) == 10 else moment > bound
    if op == "withinLastDays":
        return now - timedelta(days=expected) <= moment <= now
    if op == "withinNextDays":
        return now <= moment <= now + timedelta(days=expected)
    oldest, newest = expected  # betweenDaysAgo [from, to]
    return now - timedelta(days=oldest) <= moment <= now - timedelta(days=newest)


def _same(actual: Any, expected: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is no number and "1" no 1."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return bool(actual == expected)


def _ordered(op: str, actual: Any, expected: Any) -> bool:
    if _number(expected):
        if not _number(actual):
            return False
        left, right = float(actual), float(expected)
    else:
        moment, bound = parse_moment(actual), parse_moment(expected)
        if moment is None or bound is None:
            return False
        left, right = moment.timestamp(), bound.timestamp()
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
