"""The sample's paths: what a member can map (`mappable_properties`) and what a body must keep
for the shape check (`shape_mismatches`), SPEC section 4.

Paths are JSONPath in dot notation, `$.customer.id`, `$.items[0].sku`. A key that is not a
plain identifier, or that jsonpath-ng's extended parser reads as a keyword, is written in
brackets, `$.customer['first-name']`, so that every path offered parses back to its value.
"""

from __future__ import annotations

import re
from typing import Any

MAX_MISMATCHES = 20

_ABSENT = object()

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Identifiers jsonpath-ng's extended grammar treats as operators after a dot.
_KEYWORDS = frozenset({"where", "wherenot"})


def child_path(parent: str, key: str) -> str:
    if _IDENTIFIER.match(key) and key not in _KEYWORDS:
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


def mappable_properties(sample: Any) -> list[str]:
    """The path of every value in the sample, objects and arrays included, in document order.

    Containers are listed before what they hold (`$.items`, `$.items[0]`, `$.items[0].sku`):
    a path to an object can fill `variables` whole and a path to an array `targetUserIds`.
    Every array element is listed. The root `$` itself is not: mapping the whole body is the
    `none` mapping type.
    """
    return [path for path, _value in sample_values(sample)]


def sample_values(sample: Any) -> list[tuple[str, Any]]:
    """Each of `mappable_properties`' paths with the sample's value there, in the same order."""
    found: list[tuple[str, Any]] = []
    # An explicit stack, not recursion: a sample nested a thousand deep is still only data.
    stack: list[tuple[str, Any]] = [("$", sample)]
    while stack:
        path, value = stack.pop()
        if path != "$":
            found.append((path, value))
        if isinstance(value, dict):
            stack.extend(reversed([(child_path(path, str(key)), item) for key, item in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{index}]", item) for index, item in enumerate(value)]))
    return found


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_mismatches(sample: Any, body: Any) -> list[str]:
    """How `body` differs in shape from `sample`; empty when it has the sample's shape.

    Rules (SPEC section 4, "Shape check"):
    1. Every path the sample has must be in the body, with the same JSON type. Integers and
       decimals are both "number".
    2. null on either side matches anything, and what lies below it is not compared: a field
       the sample had as null may arrive as an object, and vice versa.
    3. Extra fields in the body are fine.
    4. Arrays: the sample's first element is the element shape, and every element of the
       body's array must have it. A sample's array holds elements of one kind, and senders
       vary the count, not the kind: checking every body element catches a changed element
       anywhere, while an empty array on either side matches (an order may have no
       discounts; a sample with an empty array says nothing about its elements).
    At most MAX_MISMATCHES messages are returned, the last saying how many more there were.
    """
    messages: list[str] = []
    stack: list[tuple[str, Any, Any]] = [("$", sample, body)]
    while stack:
        path, expected, actual = stack.pop()
        if actual is _ABSENT:
            messages.append(f"{path} is missing")
            continue
        if expected is None or actual is None:
            continue
        expected_type, actual_type = json_type(expected), json_type(actual)
        if expected_type != actual_type:
            messages.append(f"{path} is {_article(actual_type)}, the sample has {_article(expected_type)}")
            continue
        children: list[tuple[str, Any, Any]] = []
        if isinstance(expected, dict):
            children = [(child_path(path, str(key)), item, actual.get(key, _ABSENT)) for key, item in expected.items()]
        elif isinstance(expected, list) and expected:
            children = [(f"{path}[{index}]", expected[0], element) for index, element in enumerate(actual)]
        stack.extend(reversed(children))
    if len(messages) > MAX_MISMATCHES:
        more = len(messages) - (MAX_MISMATCHES - 1)
        messages = [*messages[: MAX_MISMATCHES - 1], f"... and {more} more differences"]
    return messages


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"
