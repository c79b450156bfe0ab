"""The OpenAPI shape of a segment's rules (SPEC section 5), for the schema only.

The rules are validated by `segments.rules.rules_clean`, which keys its errors by the
condition's path ("rules.conditions[2].op"); this module only tells API clients what that
validator takes, so that the schema documents a real shape rather than "any JSON".
"""

from __future__ import annotations

from typing import Any

from . import rules

# The vocabulary is segments.rules' own, so the schema cannot drift from the validator.
PROFILE_FIELDS = (*rules.TEXT_FIELDS, *rules.DATE_FIELDS)
FIELD_OPS = rules.CUSTOM_FIELD_OPS  # every field op (profile fields take a subset, by kind)

_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}

FIELD_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Field test",
    "description": "A profile field or customFields.<key>. `in`/`notIn` take a list, `exists`/`notExists` no "
    "value, the day ops a number of days, `betweenDaysAgo` [from, to] (e.g. [90, 30]).",
    "properties": {
        "field": {
            "type": "string",
            "description": f"One of {', '.join(PROFILE_FIELDS)}, or customFields.<key>.",
        },
        "op": {"type": "string", "enum": list(FIELD_OPS)},
        "value": {"oneOf": [*_SCALAR["oneOf"], {"type": "array", "items": _SCALAR}]},
    },
    "required": ["field", "op"],
    "additionalProperties": False,
}

PROPERTY_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Event property test",
    "properties": {
        "property": {"type": "string"},
        "op": {"type": "string", "enum": list(FIELD_OPS)},
        "value": FIELD_TEST["properties"]["value"],
    },
    "required": ["property", "op"],
    "additionalProperties": False,
}

TAG_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Tag test",
    "properties": {"tag": {"type": "string"}, "op": {"type": "string", "enum": list(rules.TAG_OPS)}},
    "required": ["tag", "op"],
    "additionalProperties": False,
}

TAGS_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Tags test",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "op": {"type": "string", "enum": list(rules.TAGS_OPS)},
    },
    "required": ["tags", "op"],
    "additionalProperties": False,
}

EVENT_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Event test",
    "description": "A customer without such events has a count of 0. Without withinLastDays: all time.",
    "properties": {
        "event": {"type": "string"},
        "op": {"type": "string", "enum": list(rules.EVENT_OPS)},
        "value": {"type": "integer", "minimum": 0, "description": "The count (count ops)."},
        "withinLastDays": {"type": "integer", "minimum": 1},
        "where": {"type": "array", "items": PROPERTY_TEST},
    },
    "required": ["event", "op"],
    "additionalProperties": False,
}

SEGMENT_TEST: dict[str, Any] = {
    "type": "object",
    "title": "Segment test",
    "description": "A rule that would make a segment depend on itself, directly or not, is refused.",
    "properties": {"segment": {"type": "integer"}, "op": {"type": "string", "enum": list(rules.SEGMENT_OPS)}},
    "required": ["segment", "op"],
    "additionalProperties": False,
}

# A nested group has the same form as the rules; OpenAPI 3.0 cannot refer to an inline schema
# recursively, so the group's conditions are described one level deep and say so.
_GROUP_CONDITIONS = [FIELD_TEST, TAG_TEST, TAGS_TEST, EVENT_TEST, SEGMENT_TEST]
GROUP: dict[str, Any] = {
    "type": "object",
    "title": "Nested group",
    "description": "A group of the same form as the rules (groups nest further).",
    "properties": {
        "match": {"type": "string", "enum": list(rules.MATCHES)},
        "conditions": {"type": "array", "items": {"oneOf": [*_GROUP_CONDITIONS, {"type": "object"}]}},
    },
    "required": ["match", "conditions"],
}

RULES: dict[str, Any] = {
    "type": "object",
    "description": "Who is a member (SPEC section 5). Errors name the condition's path, e.g. rules.conditions[2].op.",
    "properties": {
        "match": {"type": "string", "enum": list(rules.MATCHES)},
        "conditions": {"type": "array", "items": {"oneOf": [*_GROUP_CONDITIONS, GROUP]}},
    },
    "required": ["match", "conditions"],
    "additionalProperties": False,
}
