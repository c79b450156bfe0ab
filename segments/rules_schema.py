"""The OpenAPI shape of a segment's rules (SPEC section 5), for the schema only.

The rules are validated by `segments.rules.rules_clean`, which keys its errors by the
condition's path ("rules.conditions[2].op"); this module tells API clients exactly what that
validator takes, as precisely as OpenAPI 3.0 can say it:

- each kind of condition is a component (`SegmentFieldTest`, `SegmentTagTest`, ...), and a
  group's conditions are `oneOf` them;
- a field test is `oneOf` one variant per set of ops, each naming the fields that take those
  ops (text profile fields, date profile fields, `customFields.<key>`) and the value they take
  (a string, a list, an ISO date, a number of days, none);
- groups nest to the validator's depth exactly (they are written out level by level: a
  recursive `$ref` could not stop at `MAX_DEPTH`).

What a schema cannot say is left to the validator, which answers it keyed by the same path:
a segment test's segment must exist and must not lead back to the segment being edited, and
`betweenDaysAgo`'s [from, to] counts days ago, so from is at least to.

The names and ops are segments.rules' own, so the schema cannot drift from the validator.
Enumerations and shared pieces are components referenced by `$ref`, which also keeps
drf-spectacular's enum postprocessing from renaming the op sets.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from drf_spectacular.plumbing import ResolvedComponent

from . import rules

# The profile fields in the order the rule builder lists them (segments.views).
PROFILE_FIELDS = (*rules.TEXT_FIELDS, *rules.DATE_FIELDS)

COMPONENTS: dict[str, dict[str, Any]] = {}


def _component(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Keep `schema` as the component `name`; answer a reference to it."""
    COMPONENTS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(values: tuple[str, ...], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return schema


# --- Values -------------------------------------------------------------------------------

TEXT = {"type": "string", "maxLength": rules.MAX_TEXT}
NON_EMPTY_TEXT = {"type": "string", "minLength": 1, "maxLength": rules.MAX_TEXT}
NUMBER = {"type": "number"}
SCALAR = {"oneOf": [TEXT, NUMBER, {"type": "boolean"}]}
ISO_MOMENT = _component(
    "SegmentIsoMoment",
    {
        "description": "An ISO date (2024-05-01: the whole UTC day) or datetime (2024-05-01T10:00:00Z).",
        "oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
    },
)
DAYS = _component(
    "SegmentDays", {"type": "integer", "minimum": 0, "maximum": rules.MAX_DAYS, "description": "A number of days."}
)
DAY_RANGE = {
    "type": "array",
    "items": DAYS,
    "minItems": 2,
    "maxItems": 2,
    "description": "[from, to] days ago, from at least to: [90, 30] is between 90 and 30 days ago.",
}
# exists/notExists, occurred/notOccurred: no value (null is taken as none).
NO_VALUE = _component("SegmentNoValue", {"nullable": True, "enum": [None], "description": "No value."})


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": rules.MAX_LIST}


# --- Field tests and property tests ---------------------------------------------------------

TEXT_FIELD = _component("SegmentTextField", _enum(tuple(rules.TEXT_FIELDS), "A profile text field."))
DATE_FIELD = _component("SegmentDateField", _enum(tuple(rules.DATE_FIELDS), "A profile timestamp."))
CUSTOM_FIELD = _component(
    "SegmentCustomField",
    {
        "type": "string",
        # The key: 1 to 100 characters (the customers API's rule for custom field names).
        "pattern": r"^customFields\.[^\u0000]{1,100}$",
        "description": "customFields.<key>: a string, number, boolean or ISO date.",
    },
)
PROPERTY_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "An event property (a dotted name reaches into nested objects).",
}

# Each set of ops, and the value each kind of field takes with them ("text": a profile text
# field, "date": a profile timestamp, "custom": a custom field or an event property).
_OP_SETS: tuple[tuple[str, tuple[str, ...], dict[str, dict[str, Any] | None]], ...] = (
    ("SegmentEqualityOp", ("eq", "neq"), {"text": TEXT, "custom": SCALAR}),
    ("SegmentListOp", ("in", "notIn"), {"text": _list_of(TEXT), "custom": _list_of(SCALAR)}),
    ("SegmentTextMatchOp", rules.TEXT_MATCH_OPS, {"text": NON_EMPTY_TEXT, "custom": NON_EMPTY_TEXT}),
    ("SegmentPresenceOp", rules.PRESENCE_OPS, {"text": None, "date": None, "custom": None}),
    ("SegmentOrderOp", rules.ORDER_OPS, {"date": ISO_MOMENT, "custom": {"oneOf": [NUMBER, ISO_MOMENT]}}),
    ("SegmentMomentOp", rules.MOMENT_OPS, {"date": ISO_MOMENT, "custom": ISO_MOMENT}),
    ("SegmentDayOp", rules.DAY_OPS, {"date": DAYS, "custom": DAYS}),
    ("SegmentRangeOp", rules.RANGE_OPS, {"date": DAY_RANGE, "custom": DAY_RANGE}),
)
_KIND_FIELDS = {"text": TEXT_FIELD, "date": DATE_FIELD, "custom": CUSTOM_FIELD}
_KIND_WORDS = {"text": "Text field", "date": "Date field", "custom": "Custom field"}


def _op_variants(subject: str, subjects: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per set of ops and value: `{subject, op, value}`, the subject being one of
    the kinds of field that take those ops with that value."""
    variants = []
    for op_name, ops, values in _OP_SETS:
        op = _component(op_name, _enum(ops))
        by_value: dict[str, list[str]] = {}
        for kind in values:
            if kind in subjects:
                by_value.setdefault(json.dumps(values[kind], sort_keys=True), []).append(kind)
        for kinds in by_value.values():
            value = values[kinds[0]]
            fields = [subjects[kind] for kind in kinds]
            variant: dict[str, Any] = {
                "type": "object",
                "title": f"{' or '.join(_KIND_WORDS[kind] for kind in kinds)}: {', '.join(ops)}",
                "properties": {subject: fields[0] if len(fields) == 1 else {"oneOf": fields}, "op": op},
                "required": [subject, "op"],
                "additionalProperties": False,
            }
            if value is None:
                variant["properties"]["value"] = NO_VALUE
            else:
                variant["properties"]["value"] = value
                variant["required"].append("value")
            variants.append(variant)
    return variants


FIELD_TEST = _component(
    "SegmentFieldTest",
    {
        "description": "A profile field or customFields.<key> (SPEC section 5). String comparisons are "
        "case-sensitive except eq/neq/in/notIn on email.",
        "oneOf": _op_variants("field", _KIND_FIELDS),
    },
)
PROPERTY_TEST = _component(
    "SegmentPropertyTest",
    {
        "description": "A test of an event's property, with the ops of a custom field. A property that is "
        'missing, null or "" does not exist.',
        "oneOf": _op_variants("property", {"custom": PROPERTY_NAME}),
    },
)
# An event trigger's `where` (triggers.apis), and an event test's, which also takes null.
PROPERTY_TESTS = {
    "type": "array",
    "items": PROPERTY_TEST,
    "maxItems": rules.MAX_WHERE,
    "description": "Every property test must hold ([]: none).",
}
WHERE = {**PROPERTY_TESTS, "nullable": True, "description": "Every property test must hold (null or []: none)."}

# --- Tag, event and segment tests -----------------------------------------------------------

NON_EMPTY = {"type": "string", "minLength": 1}
TAG_TEST = _component(
    "SegmentTagTest",
    {
        "type": "object",
        "properties": {"tag": NON_EMPTY, "op": _component("SegmentTagOp", _enum(rules.TAG_OPS))},
        "required": ["tag", "op"],
        "additionalProperties": False,
    },
)
TAGS_TEST = _component(
    "SegmentTagsTest",
    {
        "type": "object",
        "properties": {"tags": _list_of(NON_EMPTY), "op": _component("SegmentTagsOp", _enum(rules.TAGS_OPS))},
        "required": ["tags", "op"],
        "additionalProperties": False,
    },
)

_EVENT_COMMON: dict[str, Any] = {
    "event": {"type": "string", "minLength": 1, "maxLength": 255},
    "withinLastDays": {
        "type": "integer",
        "minimum": 1,
        "maximum": rules.MAX_DAYS,
        "nullable": True,
        "description": "Only events of the last N days (absent or null: all time).",
    },
    "where": WHERE,
}
_COUNT_OPS = tuple(op for op in rules.EVENT_OPS if op in rules.EVENT_COUNT_OPS)
_OCCURRENCE_OPS = tuple(op for op in rules.EVENT_OPS if op not in rules.EVENT_COUNT_OPS)
EVENT_TEST = _component(
    "SegmentEventTest",
    {
        "description": "A customer without such events has a count of 0.",
        "oneOf": [
            {
                "type": "object",
                "title": "Occurred or not",
                "properties": {
                    **_EVENT_COMMON,
                    "op": _component("SegmentEventOp", _enum(_OCCURRENCE_OPS)),
                    "value": NO_VALUE,
                },
                "required": ["event", "op"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "title": "Count",
                "properties": {
                    **_EVENT_COMMON,
                    "op": _component("SegmentEventCountOp", _enum(_COUNT_OPS)),
                    "value": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "description": "The count."},
                },
                "required": ["event", "op", "value"],
                "additionalProperties": False,
            },
        ],
    },
)
SEGMENT_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
SEGMENT_TEST = _component(
    "SegmentMembershipTest",
    {
        "type": "object",
        "description": "Membership of another segment of this environment; a rule that would make a segment "
        "depend on itself, directly or not, is refused.",
        "properties": {
            "segment": {**SEGMENT_ID, "description": "The segment's id."},
            "op": _component("SegmentMembershipOp", _enum(rules.SEGMENT_OPS)),
        },
        "required": ["segment", "op"],
        "additionalProperties": False,
    },
)

# --- Groups -------------------------------------------------------------------------------

MATCH = _component("SegmentMatch", _enum(rules.MATCHES, "all: every condition holds; any: at least one."))
_LEAVES = [FIELD_TEST, TAG_TEST, TAGS_TEST, EVENT_TEST, SEGMENT_TEST]


def _group(depth: int) -> dict[str, Any]:
    """A group at `depth` (0: the rules themselves), with its nested groups below it."""
    conditions: dict[str, Any] = {
        "type": "array",
        "items": {"oneOf": [*_LEAVES, _group(depth + 1)] if depth < rules.MAX_DEPTH else _LEAVES},
        "maxItems": rules.MAX_CONDITIONS,
    }
    if depth > 0:
        conditions["minItems"] = 1
    group = {
        "type": "object",
        "properties": {"match": MATCH, "conditions": conditions},
        "required": ["match", "conditions"],
        "additionalProperties": False,
    }
    if depth > 0:
        group["title"] = "Nested group"
        group["description"] = f"Of the same form as the rules; groups nest at most {rules.MAX_DEPTH} levels deep."
    return group


RULES: dict[str, Any] = {
    **_group(0),
    "description": "Who is a member (SPEC section 5). Errors name the condition's path, e.g. rules.conditions[2].op.",
}


def with_components(auto_schema: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema`, after registering the components it refers to (for a field
    extension). Copies: drf-spectacular adds descriptions and postprocesses in place."""
    for name, component in COMPONENTS.items():
        auto_schema.registry.register_on_missing(
            ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=copy.deepcopy(component))
        )
    return copy.deepcopy(schema)
