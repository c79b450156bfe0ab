"""Segment rules (SPEC section 5): validation, what rules read, and a sentence describing them.

`rules_clean` is the only way rules get into a Segment: it checks the whole tree and answers a
normalised copy (datetimes in UTC with a "Z", no stray keys, no value on `exists`), so the
compiler and the evaluation read one shape. The tree is recursive and each condition's kind
decides its keys, which a DRF serializer says poorly; the checks are written out here instead,
one function per kind of condition, every problem keyed by its path
("rules.conditions[1].conditions[0].value").

Missing values and negations: every negative test is the exact complement of its positive one,
so a condition and its negation always split the customers in two. A customer without a
country is not "country eq DE", so "country neq DE" matches them; likewise `notIn`,
`notContains`, `notWithinLastDays` (also matches a missing or future date), `hasNot`,
`hasNone`, `notOccurred`, segment `notIn`, and `notExists`. Positive tests never match a
missing value. An empty string counts as missing (for `exists` and `notExists`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from workbench.errors import FieldErrors, Invalid

# Profile fields as the API names them, and their Customer columns.
TEXT_FIELDS: Final = {
    "name": "name",
    "email": "email",
    "phone": "phone",
    "city": "city",
    "country": "country",
    "region": "region",
    "timezone": "timezone",
}
DATE_FIELDS: Final = {
    "createdAt": "created_at",
    "firstSeenAt": "first_seen_at",
    "lastSeenAt": "last_seen_at",
    "lastSeenIosAt": "last_seen_ios_at",
    "lastSeenAndroidAt": "last_seen_android_at",
    "lastSeenWebAt": "last_seen_web_at",
}
CUSTOM_PREFIX: Final = "customFields."
# Fields whose eq/neq/in/notIn ignore case (SPEC section 5).
CASE_INSENSITIVE_FIELDS: Final = frozenset({"email"})

EQUALITY_OPS: Final = ("eq", "neq", "in", "notIn")
TEXT_MATCH_OPS: Final = ("contains", "notContains", "startsWith", "endsWith")
PRESENCE_OPS: Final = ("exists", "notExists")
ORDER_OPS: Final = ("gt", "gte", "lt", "lte")
MOMENT_OPS: Final = ("before", "after")
DAY_OPS: Final = ("withinLastDays", "notWithinLastDays", "withinNextDays")
RANGE_OPS: Final = ("betweenDaysAgo",)
TIME_RELATIVE_OPS: Final = frozenset({*DAY_OPS, *RANGE_OPS})

# Which ops each kind of field takes (the rule builder offers the same lists).
TEXT_FIELD_OPS: Final = (*EQUALITY_OPS, *TEXT_MATCH_OPS, *PRESENCE_OPS)
DATE_FIELD_OPS: Final = (*PRESENCE_OPS, *ORDER_OPS, *MOMENT_OPS, *DAY_OPS, *RANGE_OPS)
CUSTOM_FIELD_OPS: Final = (*EQUALITY_OPS, *TEXT_MATCH_OPS, *PRESENCE_OPS, *ORDER_OPS, *MOMENT_OPS, *DAY_OPS, *RANGE_OPS)

TAG_OPS: Final = ("has", "hasNot")
TAGS_OPS: Final = ("hasAny", "hasAll", "hasNone")
EVENT_OPS: Final = ("occurred", "notOccurred", "countGte", "countLte", "countEq")
EVENT_COUNT_OPS: Final = ("countGte", "countLte", "countEq")
SEGMENT_OPS: Final = ("in", "notIn")
MATCHES: Final = ("all", "any")

MAX_DEPTH: Final = 5  # nested groups below the top
MAX_CONDITIONS: Final = 100  # per group
MAX_LIST: Final = 1000  # values of in/notIn, tags of hasAny/...
MAX_WHERE: Final = 20
MAX_DAYS: Final = 36_500
MAX_TEXT: Final = 10_000


def field_ops(field: str) -> tuple[str, ...]:
    """The ops a field takes ((): not a field)."""
    if field in TEXT_FIELDS:
        return TEXT_FIELD_OPS
    if field in DATE_FIELDS:
        return DATE_FIELD_OPS
    if field.startswith(CUSTOM_PREFIX) and _custom_key_ok(field[len(CUSTOM_PREFIX) :]):
        return CUSTOM_FIELD_OPS
    return ()


def _custom_key_ok(key: str) -> bool:
    # The customers API's rule for custom field names.
    return 0 < len(key) <= 100 and "\x00" not in key


# --- validation ---------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.errors: FieldErrors = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)


def rules_clean(rules: Any, *, environment_id: int, segment_id: int | None = None) -> dict[str, Any]:
    """Validated, normalised rules, or `Invalid` with every problem keyed by its path.

    1. Check the tree's shape, each condition by its kind (field, tag, tags, event, segment,
       nested group), collecting every problem rather than stopping at the first.
    2. Check the segments it names: they exist in this environment, and none of them depends
       (directly or through others) on `segment_id`, the segment being edited.
    """
    errors = _Errors()
    cleaned = _clean_group(rules, "rules", errors, depth=0)
    if not errors.errors and cleaned is not None:
        _check_segments(cleaned, environment_id=environment_id, segment_id=segment_id, errors=errors)
    if errors.errors or cleaned is None:
        raise Invalid(errors.errors or {"rules": ["These rules are not valid."]}, detail="The rules are not valid.")
    return cleaned


def _unknown_keys(condition: dict[str, Any], allowed: tuple[str, ...], path: str, errors: _Errors) -> None:
    for key in condition:
        if key not in allowed:
            errors.add(f"{path}.{key}", f"Unknown key; this condition takes {', '.join(allowed)}.")


def _clean_group(group: Any, path: str, errors: _Errors, *, depth: int) -> dict[str, Any] | None:
    if not isinstance(group, dict):
        errors.add(path, 'Expected an object {"match": "all"|"any", "conditions": [...]}.')
        return None
    _unknown_keys(group, ("match", "conditions"), path, errors)
    match = group.get("match")
    if match not in MATCHES:
        errors.add(f"{path}.match", 'Expected "all" or "any".')
    conditions = group.get("conditions")
    if not isinstance(conditions, list):
        errors.add(f"{path}.conditions", "Expected a list of conditions.")
        return None
    if depth > 0 and not conditions:
        errors.add(f"{path}.conditions", "A nested group needs at least one condition.")
    if len(conditions) > MAX_CONDITIONS:
        errors.add(f"{path}.conditions", f"At most {MAX_CONDITIONS} conditions per group.")
        return None
    cleaned = []
    for index, condition in enumerate(conditions):
        cleaned.append(_clean_condition(condition, f"{path}.conditions[{index}]", errors, depth=depth))
    return {"match": match, "conditions": cleaned}


def _clean_condition(condition: Any, path: str, errors: _Errors, *, depth: int) -> dict[str, Any]:
    if not isinstance(condition, dict):
        errors.add(path, "Expected an object: a field, tag, event or segment test, or a nested group.")
        return {}
    if "field" in condition:
        return _clean_field_test(condition, path, errors)
    if "tag" in condition:
        return _clean_tag_test(condition, path, errors)
    if "tags" in condition:
        return _clean_tags_test(condition, path, errors)
    if "event" in condition:
        return _clean_event_test(condition, path, errors)
    if "segment" in condition:
        return _clean_segment_test(condition, path, errors)
    if "match" in condition or "conditions" in condition:
        if depth >= MAX_DEPTH:
            errors.add(path, f"Groups nest at most {MAX_DEPTH} levels deep.")
            return {}
        return _clean_group(condition, path, errors, depth=depth + 1) or {}
    errors.add(path, 'Unknown condition: expected one with "field", "tag", "tags", "event", "segment" or "match".')
    return {}


def _clean_field_test(condition: dict[str, Any], path: str, errors: _Errors) -> dict[str, Any]:
    _unknown_keys(condition, ("field", "op", "value"), path, errors)
    field = condition["field"]
    ops = field_ops(field) if isinstance(field, str) else ()
    if not ops:
        errors.add(
            f"{path}.field", "Unknown field: a profile field (name, email, ..., lastSeenAt) or customFields.<key>."
        )
        return {}
    op = condition.get("op")
    if op not in ops:
        errors.add(f"{path}.op", f"Unknown op for {field}; expected one of {', '.join(ops)}.")
        return {}
    kind = "text" if field in TEXT_FIELDS else "date" if field in DATE_FIELDS else "custom"
    cleaned: dict[str, Any] = {"field": field, "op": op}
    value = _clean_value(op, condition.get("value"), "value" in condition, kind, f"{path}.value", errors)
    if op not in PRESENCE_OPS:
        cleaned["value"] = value
    return cleaned


def _clean_value(op: str, value: Any, given: bool, kind: str, path: str, errors: _Errors) -> Any:
    """The value of a field test (or a `where` test on event properties, kind "custom").

    kind: "text" (a profile text field), "date" (a profile timestamp) or "custom" (a custom
    field or an event property: string, number, boolean or ISO date).
    """
    if op in PRESENCE_OPS:
        if value is not None:
            errors.add(path, f"{op} takes no value.")
        return None
    if not given:
        errors.add(path, "This op needs a value.")
        return None
    if op in ("eq", "neq"):
        return _scalar(value, kind, path, errors)
    if op in ("in", "notIn"):
        if not isinstance(value, list) or not value:
            errors.add(path, "Expected a non-empty list of values.")
            return None
        if len(value) > MAX_LIST:
            errors.add(path, f"At most {MAX_LIST} values.")
            return None
        items = []
        for index, item in enumerate(value):
            items.append(_scalar(item, kind, f"{path}[{index}]", errors))
        return items
    if op in TEXT_MATCH_OPS:
        if not isinstance(value, str) or not value:
            errors.add(path, "Expected a non-empty string.")
            return None
        return _text(value, path, errors)
    if op in ORDER_OPS:
        if kind == "custom" and _is_number(value):
            return value
        moment = _iso(value)
        if moment is None:
            expected = "a number or an ISO date" if kind == "custom" else "an ISO date or datetime"
            errors.add(path, f"Expected {expected} (2024-05-01 or 2024-05-01T10:00:00Z).")
        return moment
    if op in MOMENT_OPS:
        moment = _iso(value)
        if moment is None:
            errors.add(path, "Expected an ISO date or datetime (2024-05-01 or 2024-05-01T10:00:00Z).")
        return moment
    if op in DAY_OPS:
        if not _is_days(value):
            errors.add(path, f"Expected a whole number of days from 0 to {MAX_DAYS}.")
            return None
        return value
    # betweenDaysAgo
    if not (isinstance(value, list) and len(value) == 2 and all(_is_days(item) for item in value)):
        errors.add(path, "Expected [from, to]: two whole numbers of days, e.g. [90, 30].")
        return None
    if value[0] < value[1]:
        errors.add(path, "[from, to] counts days ago: from must be at least to, e.g. [90, 30].")
        return None
    return list(value)


def _scalar(value: Any, kind: str, path: str, errors: _Errors) -> Any:
    if isinstance(value, str):
        return _text(value, path, errors)
    if kind == "custom" and (isinstance(value, bool) or _is_number(value)):
        return value
    errors.add(path, "Expected a string." if kind == "text" else "Expected a string, a number or a boolean.")
    return None


def _text(value: str, path: str, errors: _Errors) -> str:
    if len(value) > MAX_TEXT or "\x00" in value:
        errors.add(path, f"Expected at most {MAX_TEXT:,} characters and no null character.")
    return value


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def _is_days(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DAYS


def _iso(value: Any) -> str | None:
    """An ISO date stays "YYYY-MM-DD"; a datetime becomes UTC "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
    (one without an offset is read as UTC). Anything else: None."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if value[4] != "-" or moment.year < 1:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before the calendar begins in UTC
        return None
    return moment.isoformat().replace("+00:00", "Z")


def parse_moment(value: str) -> date | datetime:
    """A cleaned ISO value as a date (day precision) or an aware datetime."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value)


def _clean_tag_test(condition: dict[str, Any], path: str, errors: _Errors) -> dict[str, Any]:
    _unknown_keys(condition, ("tag", "op"), path, errors)
    tag = condition["tag"]
    if not isinstance(tag, str) or not tag:
        errors.add(f"{path}.tag", "Expected a non-empty string.")
    op = condition.get("op")
    if op not in TAG_OPS:
        errors.add(f"{path}.op", f"Unknown op for a tag test; expected one of {', '.join(TAG_OPS)}.")
    return {"tag": tag, "op": op}


def _clean_tags_test(condition: dict[str, Any], path: str, errors: _Errors) -> dict[str, Any]:
    _unknown_keys(condition, ("tags", "op"), path, errors)
    tags = condition["tags"]
    if (
        not isinstance(tags, list)
        or not tags
        or len(tags) > MAX_LIST
        or not all(isinstance(tag, str) and tag for tag in tags)
    ):
        errors.add(f"{path}.tags", f"Expected a list of 1 to {MAX_LIST} non-empty strings.")
    op = condition.get("op")
    if op not in TAGS_OPS:
        errors.add(f"{path}.op", f"Unknown op for a tags test; expected one of {', '.join(TAGS_OPS)}.")
    return {"tags": list(dict.fromkeys(tags)) if isinstance(tags, list) else tags, "op": op}


def _clean_event_test(condition: dict[str, Any], path: str, errors: _Errors) -> dict[str, Any]:
    _unknown_keys(condition, ("event", "op", "value", "withinLastDays", "where"), path, errors)
    event = condition["event"]
    if not isinstance(event, str) or not event or len(event) > 255:
        errors.add(f"{path}.event", "Expected an event name of 1 to 255 characters.")
    op = condition.get("op")
    cleaned: dict[str, Any] = {"event": event, "op": op}
    if op not in EVENT_OPS:
        errors.add(f"{path}.op", f"Unknown op for an event test; expected one of {', '.join(EVENT_OPS)}.")
    elif op in EVENT_COUNT_OPS:
        value = condition.get("value")
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**31 - 1):
            errors.add(f"{path}.value", "Expected a count: a whole number of at least 0.")
        cleaned["value"] = value
    elif condition.get("value") is not None:
        errors.add(f"{path}.value", f"{op} takes no value.")
    if condition.get("withinLastDays") is not None:
        days = condition["withinLastDays"]
        if not (_is_days(days) and days >= 1):
            errors.add(f"{path}.withinLastDays", f"Expected a whole number of days from 1 to {MAX_DAYS}.")
        cleaned["withinLastDays"] = days
    where = condition.get("where")
    if where is not None and where != []:
        if not isinstance(where, list) or len(where) > MAX_WHERE:
            errors.add(f"{path}.where", f"Expected a list of at most {MAX_WHERE} property tests.")
        else:
            cleaned["where"] = [
                _clean_property_test(test, f"{path}.where[{index}]", errors) for index, test in enumerate(where)
            ]
    return cleaned


def where_clean(where: Any, *, path: str = "where") -> list[dict[str, Any]]:
    """Property tests on an event (`where` of an event test, or of an event trigger), checked
    as a segment's event test checks them; `Invalid` keyed `where[1].value` ..."""
    if where is None or where == []:
        return []
    errors = _Errors()
    cleaned: list[dict[str, Any]] = []
    if not isinstance(where, list) or len(where) > MAX_WHERE:
        errors.add(path, f"Expected a list of at most {MAX_WHERE} property tests.")
    else:
        cleaned = [_clean_property_test(test, f"{path}[{index}]", errors) for index, test in enumerate(where)]
    if errors.errors:
        raise Invalid(errors.errors, detail="The property tests are not valid.")
    return cleaned


def _clean_property_test(test: Any, path: str, errors: _Errors) -> dict[str, Any]:
    """A `where` test: {"property", "op", "value"} with the ops of a custom field."""
    if not isinstance(test, dict):
        errors.add(path, 'Expected an object {"property", "op", "value"}.')
        return {}
    _unknown_keys(test, ("property", "op", "value"), path, errors)
    prop = test.get("property")
    if not isinstance(prop, str) or not _custom_key_ok(prop):
        errors.add(f"{path}.property", "Expected a property name of 1 to 100 characters.")
    op = test.get("op")
    if op not in CUSTOM_FIELD_OPS:
        errors.add(f"{path}.op", f"Unknown op; expected one of {', '.join(CUSTOM_FIELD_OPS)}.")
        return {"property": prop, "op": op}
    cleaned: dict[str, Any] = {"property": prop, "op": op}
    value = _clean_value(op, test.get("value"), "value" in test, "custom", f"{path}.value", errors)
    if op not in PRESENCE_OPS:
        cleaned["value"] = value
    return cleaned


def _clean_segment_test(condition: dict[str, Any], path: str, errors: _Errors) -> dict[str, Any]:
    _unknown_keys(condition, ("segment", "op"), path, errors)
    segment = condition["segment"]
    if not (isinstance(segment, int) and not isinstance(segment, bool) and segment > 0):
        errors.add(f"{path}.segment", "Expected a segment id.")
    op = condition.get("op")
    if op not in SEGMENT_OPS:
        errors.add(f"{path}.op", f"Unknown op for a segment test; expected one of {', '.join(SEGMENT_OPS)}.")
    return {"segment": segment, "op": op}


def _segment_tests(group: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, condition in enumerate(group.get("conditions", ())):
        here = f"{path}.conditions[{index}]"
        if "segment" in condition:
            yield here, condition
        elif "conditions" in condition:
            yield from _segment_tests(condition, here)


def _check_segments(rules: dict[str, Any], *, environment_id: int, segment_id: int | None, errors: _Errors) -> None:
    """Named segments exist in this environment and none leads back to `segment_id`."""
    tests = list(_segment_tests(rules, "rules"))
    if not tests:
        return
    from .models import Segment  # rules are also read where models are not loaded yet (migrations)

    graph: dict[int, tuple[str, frozenset[int]]] = {
        pk: (name, rules_references(other).segments if isinstance(other, dict) else frozenset())
        for pk, name, other in Segment.objects.filter(environment_id=environment_id).values_list("id", "name", "rules")
    }
    for path, test in tests:
        target = test["segment"]
        if target not in graph:
            errors.add(f"{path}.segment", "No such segment in this environment.")
            continue
        if segment_id is None:
            continue  # a new segment: nothing can depend on it yet
        cycle = _path_to(target, segment_id, graph)
        if cycle is not None:
            names = [graph[pk][0] if pk in graph else f"#{pk}" for pk in [segment_id, *cycle]]
            errors.add(
                f"{path}.segment",
                "A segment may not depend on itself: " + " → ".join(f"“{name}”" for name in names) + ".",
            )


def _path_to(start: int, goal: int, graph: dict[int, tuple[str, frozenset[int]]]) -> list[int] | None:
    """The chain of segments from `start` to `goal` through segment tests, if there is one."""
    stack: list[tuple[int, list[int]]] = [(start, [start])]
    seen: set[int] = set()
    while stack:
        node, chain = stack.pop()
        if node == goal:
            return chain
        if node in seen:
            continue
        seen.add(node)
        for child in graph.get(node, ("", frozenset()))[1]:
            stack.append((child, [*chain, child]))
    return None


# --- what rules read ----------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """What a segment's rules read: the incremental path re-evaluates a segment only when one
    of these changed for a customer."""

    fields: frozenset[str]  # profile fields by their API names, and "customFields.<key>"
    tags: bool
    events: frozenset[str]
    segments: frozenset[int]
    # Rules whose answer changes with time alone: withinLastDays & co., or an event window.
    time_relative: bool


def rules_references(rules: dict[str, Any]) -> References:
    fields: set[str] = set()
    events: set[str] = set()
    segments: set[int] = set()
    tags = False
    time_relative = False

    def walk(group: dict[str, Any]) -> None:
        nonlocal tags, time_relative
        for condition in group.get("conditions", ()):
            if "field" in condition:
                fields.add(condition["field"])
                time_relative = time_relative or condition.get("op") in TIME_RELATIVE_OPS
            elif "tag" in condition or "tags" in condition:
                tags = True
            elif "event" in condition:
                events.add(condition["event"])
                time_relative = time_relative or condition.get("withinLastDays") is not None
                if any(test.get("op") in TIME_RELATIVE_OPS for test in condition.get("where", ())):
                    time_relative = True
            elif "segment" in condition:
                segments.add(condition["segment"])
            elif "conditions" in condition:
                walk(condition)

    walk(rules)
    return References(frozenset(fields), tags, frozenset(events), frozenset(segments), time_relative)


# --- a sentence for lists ---------------------------------------------------------------

_OP_WORDS: Final = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "notContains": "does not contain",
    "startsWith": "starts with",
    "endsWith": "ends with",
    "in": "in",
    "notIn": "not in",
    "exists": "is set",
    "notExists": "is not set",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "before": "before",
    "after": "after",
    "withinLastDays": "within the last",
    "notWithinLastDays": "not within the last",
    "withinNextDays": "within the next",
    "betweenDaysAgo": "between",
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_show(item) for item in value)
    return str(value)


def _describe_test(subject: str, op: str, value: Any) -> str:
    if op in PRESENCE_OPS:
        return f"{subject} {_OP_WORDS[op]}"
    if op in DAY_OPS:
        return f"{subject} {_OP_WORDS[op]} {value} day{'s' if value != 1 else ''}"
    if op == "betweenDaysAgo" and isinstance(value, list):
        return f"{subject} between {value[0]} and {value[1]} days ago"
    return f"{subject} {_OP_WORDS.get(op, op)} {_show(value)}"


def _describe_condition(condition: dict[str, Any], segment_names: dict[int, str]) -> str:
    if "field" in condition:
        return _describe_test(condition["field"].removeprefix(CUSTOM_PREFIX), condition["op"], condition.get("value"))
    if "tag" in condition:
        return f"{'has' if condition['op'] == 'has' else 'has not'} tag {condition['tag']}"
    if "tags" in condition:
        words = {"hasAny": "has any of tags", "hasAll": "has all of tags", "hasNone": "has none of tags"}
        return f"{words.get(condition['op'], condition['op'])} {_show(condition['tags'])}"
    if "event" in condition:
        op, name = condition["op"], condition["event"]
        text = {
            "occurred": f"did {name}",
            "notOccurred": f"did not do {name}",
            "countGte": f"did {name} at least {condition.get('value')} times",
            "countLte": f"did {name} at most {condition.get('value')} times",
            "countEq": f"did {name} exactly {condition.get('value')} times",
        }.get(op, f"{name} {op}")
        if condition.get("where"):
            text += " with " + " and ".join(
                _describe_test(test["property"], test["op"], test.get("value")) for test in condition["where"]
            )
        if condition.get("withinLastDays") is not None:
            text += f" in the last {condition['withinLastDays']} days"
        return text
    if "segment" in condition:
        name = segment_names.get(condition["segment"], f"segment #{condition['segment']}")
        return f"{'in' if condition['op'] == 'in' else 'not in'} {name}"
    if "conditions" in condition:
        return f"({_describe_group(condition, segment_names)})"
    return "?"


def _describe_group(group: dict[str, Any], segment_names: dict[int, str]) -> str:
    conditions = group.get("conditions") or []
    if not conditions:
        return "everyone" if group.get("match") == "all" else "no one"
    joiner = " and " if group.get("match") == "all" else " or "
    return joiner.join(_describe_condition(condition, segment_names) for condition in conditions)


def rules_describe(rules: dict[str, Any], *, segment_names: dict[int, str] | None = None) -> str:
    """A short sentence for lists: "country is DE and plan in pro, team"."""
    if not isinstance(rules, dict):
        return ""
    return _describe_group(rules, segment_names or {})
