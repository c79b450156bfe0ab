"""Structured mapping: a start request whose leaves are JSONPath expressions into the body.

The configuration is an object shaped like the start request (SPEC sections 2 and 4):

    {
      "targetUserIds": "$.customer.id",
      "flowInvocationId": "$.event.id",
      "variables": {"firstName": "$.customer.first_name", "plan": {"value": "pro"},
                    "order": {"total": "$.total_price", "skus": "$.line_items[*].sku"}},
      "metadata": {"source": {"value": "shop"}}
    }

Leaves are either
- a JSONPath expression, a string starting with `$` (jsonpath-ng's extended syntax, so filters
  such as `$.items[?(@.price > 10)].sku` work), evaluated against the request *body only*:
  `$` is the parsed JSON body. Headers, query parameters and the method are reachable from
  script mappings, not from paths; keeping paths over the body keeps the mapping a plain
  function of the payload a member sees as the sample;
- a literal, an object with the single key "value": `{"value": <any JSON>}`.

Shape rules:
- `targetUserIds` is a leaf or an array of leaves; their values are concatenated.
- `flowInvocationId` is a leaf.
- `variables`, `metadata`, `notificationDetail` and `cardOptions` are objects of named entries
  (each entry a leaf, a nested object of entries or an array of entries), or one path that
  yields the whole object. At this level an object is always a map of entries, so a variable
  may be called "value"; below it, an object whose only key is "value" is a literal.

Semantics of a path: one match gives that value; several matches give an array (so
`$.items[*].sku` gives a string when the order has one item, an array when it has several);
no match leaves the key out, so the flow's variable defaults apply. For `targetUserIds` a
single value is wrapped in an array, and for `targetUserIds` and `flowInvocationId` integers
become their decimal string (senders such as Shopify number their customers and orders;
userIds are strings). `targetUserIds` that match nothing are a `MappingError`. Whether the
result is a *valid* start request is for `flows.start_requests.parse_start_requests` to say.

Parsing a path costs far more than evaluating it, and mapping is on the hot path of every
webhook request, so parsed expressions are cached by their text (`compile_path`).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from drf_spectacular.utils import extend_schema_field
from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from triggers.mapping.base import MappingError
from workbench.shapes import NON_FIELD

TOP_LEVEL_FIELDS = ("targetUserIds", "flowInvocationId", "variables", "metadata", "notificationDetail", "cardOptions")
OBJECT_FIELDS = ("variables", "metadata", "notificationDetail", "cardOptions")
MAX_DEPTH = 16
MAX_LEAVES = 500
PATH_CACHE_SIZE = 4096

_MISSING = object()


@lru_cache(maxsize=PATH_CACHE_SIZE)
def compile_path(expression: str) -> JSONPath:
    """The parsed JSONPath for `expression`, parsed once per process (failures are not cached)."""
    return parse_jsonpath(expression)


def path_error(expression: str) -> str | None:
    """Why `expression` is not a usable JSONPath, or None when it is one."""
    if not expression.startswith("$"):
        return (
            f"{expression!r} is not a JSONPath: paths start with $ (e.g. $.customer.id); "
            'write a fixed text as {"value": "..."}.'
        )
    try:
        compile_path(expression)
    except Exception as error:  # jsonpath-ng raises lexer, parser and plain exceptions
        return f"{expression} is not a valid JSONPath: {_first_line(error)}"
    return None


def is_literal(spec: Any) -> bool:
    return isinstance(spec, dict) and len(spec) == 1 and "value" in spec


# Validation ---------------------------------------------------------------------------------


def structured_problems(structured: object) -> dict[str, list[str]]:
    """What is wrong with a structured mapping, keyed by location ("" for the whole).

    1. It must be an object whose keys are start-request fields; `targetUserIds` is required,
       because a start without targets is never valid.
    2. Each field is checked for its shape (see the module docstring), each path parsed.
    A recursive shape with JSONPath leaves is more than a serializer declares, so this is the
    hand-written rule behind `StructuredMappingField`, which documents it (`STRUCTURED_MAPPING`).
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(structured, dict):
        return {"": ["Expected an object shaped like the start request."]}
    for name in structured:
        if name not in TOP_LEVEL_FIELDS:
            errors.setdefault(str(name), []).append(
                f"Unknown field; a start request has {', '.join(TOP_LEVEL_FIELDS)}."
            )
    if "targetUserIds" not in structured:
        errors.setdefault("targetUserIds", []).append("Map the target userIds: a path or a literal.")
    leaves = [0]
    for name in TOP_LEVEL_FIELDS:
        if name not in structured:
            continue
        spec = structured[name]
        if name == "targetUserIds" and isinstance(spec, list):
            if not spec:
                errors.setdefault(name, []).append("Expected at least one path or literal.")
            for index, item in enumerate(spec):
                _check_leaf(item, f"{name}.{index}", errors, leaves)
        elif name in OBJECT_FIELDS and isinstance(spec, dict):
            _check_entries(spec, name, errors, leaves, depth=1)
        else:
            _check_leaf(spec, name, errors, leaves)
    if leaves[0] > MAX_LEAVES:
        errors.setdefault("", []).append(f"At most {MAX_LEAVES} paths and literals; got {leaves[0]}.")
    return errors


# A structured mapping's leaf, as OpenAPI says it: a JSONPath into the body, or a literal.
MAPPING_LEAF = {
    "oneOf": [
        {"type": "string", "pattern": r"^\$", "description": 'A JSONPath, e.g. "$.customer.id".'},
        {"type": "object", "properties": {"value": {}}, "required": ["value"], "additionalProperties": False},
    ]
}
MAPPING_ENTRIES = {
    "type": "object",
    "additionalProperties": {},
    "description": "Leaves, or objects and arrays of them.",
}
STRUCTURED_MAPPING = {
    "type": "object",
    "description": "Shaped like the start request; its leaves are JSONPaths into the body or literals.",
    "properties": {
        "targetUserIds": {"oneOf": [MAPPING_LEAF, {"type": "array", "items": MAPPING_LEAF, "minItems": 1}]},
        "flowInvocationId": MAPPING_LEAF,
        **{name: {"oneOf": [MAPPING_LEAF, MAPPING_ENTRIES]} for name in OBJECT_FIELDS},
    },
    "required": ["targetUserIds"],
    "additionalProperties": False,
}


@extend_schema_field(STRUCTURED_MAPPING)
class StructuredMappingField(serializers.Field):
    """A structured mapping, checked by `structured_problems` (every path must parse)."""

    def to_internal_value(self, data: object) -> dict[str, Any]:
        problems = structured_problems(data)
        if problems or not isinstance(data, dict):
            raise ValidationError({key or NON_FIELD: messages for key, messages in problems.items()})
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _check_leaf(spec: Any, location: str, errors: dict[str, list[str]], leaves: list[int]) -> None:
    leaves[0] += 1
    if isinstance(spec, str):
        problem = path_error(spec)
        if problem:
            errors.setdefault(location, []).append(problem)
    elif not is_literal(spec):
        errors.setdefault(location, []).append(
            'Expected a JSONPath starting with $ (e.g. "$.customer.id") or a literal {"value": ...}.'
        )


def _check_entries(spec: Any, location: str, errors: dict[str, list[str]], leaves: list[int], depth: int) -> None:
    """An entry: a leaf, an object of entries or an array of entries."""
    if depth > MAX_DEPTH:
        errors.setdefault(location, []).append(f"Nested more than {MAX_DEPTH} levels deep.")
        return
    if isinstance(spec, dict) and not (depth > 1 and is_literal(spec)):
        for key, item in spec.items():
            _check_entries(item, f"{location}.{key}", errors, leaves, depth + 1)
    elif isinstance(spec, list):
        for index, item in enumerate(spec):
            _check_entries(item, f"{location}.{index}", errors, leaves, depth + 1)
    else:
        _check_leaf(spec, location, errors, leaves)


# Application --------------------------------------------------------------------------------


def apply_structured(structured: dict[str, Any], body: Any) -> dict[str, Any]:
    """Map `body` with a validated structured mapping; raise MappingError with every problem."""
    problems: list[str] = []
    output: dict[str, Any] = {}
    for name in TOP_LEVEL_FIELDS:
        if name not in structured:
            continue
        spec = structured[name]
        if name == "targetUserIds":
            output[name] = _target_user_ids(spec, body, problems)
        elif name in OBJECT_FIELDS and isinstance(spec, dict):
            output[name] = _map_object(spec, body, name, problems, top=True)
        else:
            value = _map_leaf(spec, body, name, problems)
            if value is not _MISSING:
                output[name] = _integer_as_text(value) if name == "flowInvocationId" else value
    if problems:
        raise MappingError(problems)
    return output


def _target_user_ids(spec: Any, body: Any, problems: list[str]) -> list[Any]:
    specs = spec if isinstance(spec, list) else [spec]
    targets: list[Any] = []
    for item in specs:
        value = _map_leaf(item, body, "targetUserIds", problems)
        if value is _MISSING:
            continue
        targets.extend(value if isinstance(value, list) else [value])
    if not targets and not problems:
        paths = ", ".join(item for item in specs if isinstance(item, str)) or "the mapping"
        if len(specs) == 1:
            problems.append(f"targetUserIds: {paths} matched nothing in the body")
        else:
            problems.append(f"targetUserIds: none of {paths} matched anything in the body")
    return [_integer_as_text(target) for target in targets]


def _map_object(spec: dict[str, Any], body: Any, location: str, problems: list[str], *, top: bool) -> Any:
    """An object of entries; an object whose entries all matched nothing is left out (below the top)."""
    result: dict[str, Any] = {}
    for key, item in spec.items():
        value = _map_entry(item, body, f"{location}.{key}", problems)
        if value is not _MISSING:
            result[key] = value
    if not result and spec and not top:
        return _MISSING
    return result


def _map_entry(spec: Any, body: Any, location: str, problems: list[str]) -> Any:
    if isinstance(spec, dict) and not is_literal(spec):
        return _map_object(spec, body, location, problems, top=False)
    if isinstance(spec, list):
        values = [_map_entry(item, body, f"{location}.{index}", problems) for index, item in enumerate(spec)]
        values = [value for value in values if value is not _MISSING]
        return values if values or not spec else _MISSING
    return _map_leaf(spec, body, location, problems)


def _map_leaf(spec: Any, body: Any, location: str, problems: list[str]) -> Any:
    if is_literal(spec):
        value = spec["value"]
        # The config is cached and shared; the start pipeline may change what it is given.
        return copy.deepcopy(value) if isinstance(value, dict | list) else value
    if not isinstance(spec, str):
        problems.append(f"{location}: the mapping is neither a JSONPath nor a literal")
        return _MISSING
    problem = path_error(spec)
    if problem:
        problems.append(f"{location}: {problem}")
        return _MISSING
    try:
        matches = compile_path(spec).find(body)
    except Exception as error:  # a filter comparing a string with a number, for one
        problems.append(f"{location}: {spec} could not be evaluated on this body: {_first_line(error)}")
        return _MISSING
    if not matches:
        return _MISSING
    if len(matches) == 1:
        return matches[0].value
    return [match.value for match in matches]


def _integer_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
