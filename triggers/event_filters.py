"""The `where` filters of event triggers: SPEC section 5's field-test ops on an event's properties.

`[{"property": "plan", "op": "eq", "value": "pro"}, ...]`: every filter must hold. A property
name may be dotted (`"order.total"`) to reach into nested objects. Pure functions, no models:
`where_clean` checks filters before they are saved (`Invalid`, keyed `where[i].op` ...);
`where_matches` tests one event's properties.

Values are compared as JSON gives them: numbers with numbers, strings with strings; a date
op (`before`, `after`, `withinLastDays`, ...) reads the property as an ISO date or datetime
(naive ones are UTC). A property that is missing, or of another type than the test needs,
does not match (except for `notExists`, `neq`, `notContains`, `notIn`, which it does match).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from workbench.errors import FieldErrors, Invalid

STRING_OPS = ("contains", "notContains", "startsWith", "endsWith")
LIST_OPS = ("in", "notIn")
PRESENCE_OPS = ("exists", "notExists")
ORDER_OPS = ("gt", "gte", "lt", "lte")
DATE_OPS = ("before", "after")
DAYS_OPS = ("withinLastDays", "notWithinLastDays", "withinNextDays")
OPS = ("eq", "neq", *STRING_OPS, *LIST_OPS, *PRESENCE_OPS, *ORDER_OPS, *DATE_OPS, *DAYS_OPS, "betweenDaysAgo")
MAX_FILTERS = 20
FILTER_KEYS = {"property", "op", "value"}

_MISSING = object()


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _days(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 36500


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


def where_clean(where: Any) -> list[dict[str, Any]]:
    """The filters, checked; `Invalid` with every problem keyed by its place (`where[1].value`)."""
    if where is None:
        return []
    if not isinstance(where, list):
        raise Invalid({"where": ['Expected a list of {"property", "op", "value"} filters.']})
    if len(where) > MAX_FILTERS:
        raise Invalid({"where": [f"At most {MAX_FILTERS} filters."]})
    errors: FieldErrors = {}
    clean: list[dict[str, Any]] = []
    for index, item in enumerate(where):
        at = f"where[{index}]"
        if not isinstance(item, dict):
            errors[at] = ['Expected {"property", "op", "value"}.']
            continue
        for key in set(item) - FILTER_KEYS:
            errors[f"{at}.{key}"] = ["Unknown field; a filter has property, op and value."]
        prop = item.get("property")
        if not isinstance(prop, str) or not prop.strip() or len(prop) > 200:
            errors[f"{at}.property"] = ["Name the event property (1 to 200 characters)."]
        op = item.get("op")
        if op not in OPS:
            errors[f"{at}.op"] = [f"Unknown op; use one of {', '.join(OPS)}."]
            continue
        problem = _value_problem(op, item.get("value", _MISSING))
        if problem:
            errors[f"{at}.value"] = [problem]
        entry = {"property": prop, "op": op}
        if "value" in item and op not in PRESENCE_OPS:
            entry["value"] = item["value"]
        clean.append(entry)
    if errors:
        raise Invalid(errors)
    return clean


def _value_problem(op: str, value: Any) -> str | None:
    if op in PRESENCE_OPS:
        return None if value is _MISSING or value is None else f"{op} takes no value."
    if value is _MISSING:
        return "A value is required."
    if op in ("eq", "neq"):
        return None if _scalar(value) else "Expected a text, number, true/false or null."
    if op in STRING_OPS:
        return None if isinstance(value, str) else "Expected a text."
    if op in LIST_OPS:
        ok = isinstance(value, list) and 0 < len(value) <= 1000 and all(_scalar(item) for item in value)
        return None if ok else "Expected a list of 1 to 1,000 texts or numbers."
    if op in ORDER_OPS:
        return None if _number(value) or parse_moment(value) else "Expected a number or an ISO date."
    if op in DATE_OPS:
        return None if parse_moment(value) else "Expected an ISO date or datetime."
    if op in DAYS_OPS:
        return None if _days(value) else "Expected a number of days (0 to 36500)."
    ok = isinstance(value, list) and len(value) == 2 and all(_days(item) for item in value)
    return None if ok and value[0] >= value[1] else "Expected [from, to] days ago, from ≥ to (e.g. [90, 30])."


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
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "notExists":
        return actual is _MISSING or actual is None
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
    if moment is None:
        return False
    if op in DATE_OPS:
        bound = parse_moment(expected)
        return bound is not None and (moment < bound if op == "before" else moment > bound)
    if op == "withinLastDays":
        return now - timedelta(days=expected) <= moment <= now
    if op == "notWithinLastDays":
        return moment < now - timedelta(days=expected)
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
