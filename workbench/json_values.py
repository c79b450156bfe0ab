"""JSON every app can keep: what PostgreSQL stores and what our code can walk.

Python's `json` accepts more than we can keep: `NaN`, `Infinity` and `1e999` (which becomes
infinity) are not JSON numbers that PostgreSQL's jsonb takes; a lone UTF-16 surrogate
(written `\\ud800`) or U+0000 cannot be stored as text; and a value nested a thousand levels
deep makes every recursive reader (json.dumps, the database adapter, our own walkers) fail
with RecursionError. `loads_storable` refuses all of them up front, so a bad body is a 400
at the edge and never a 500 later.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deep enough for any real payload (Stripe's events nest about 6 levels), far from the
# ~1,000 frames at which Python's recursive readers stop.
MAX_JSON_DEPTH = 100

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Cheap signs in the text that the slower walk is needed at all.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NUL_ESCAPE = b"\\u0000"


class UnstorableJSON(ValueError):
    """The text is not JSON we can keep; the message says why, for the sender."""


def loads_storable(raw: bytes | str) -> Any:
    """Parse `raw` as strict JSON that can be stored and walked, or raise UnstorableJSON.

    1. Decode bytes strictly (UTF-8, or the UTF-16/32 that JSON allows): an encoded
       surrogate is not text.
    2. Parse, refusing NaN, Infinity and numbers beyond the float range.
    3. Walk the value for nesting deeper than MAX_JSON_DEPTH, U+0000 and lone surrogates,
       unless UTF-8 text shows none of them can be there: fewer brackets than the depth
       limit and no escaped NUL or surrogate (ordinary bodies stay on the fast path).
    """
    text = _decoded(raw)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as error:
        raise UnstorableJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from error
    except UnstorableJSON:
        raise
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise UnstorableJSON(f"This is not valid JSON: {error.msg} ({where}).") from error
    except ValueError as error:  # an integer of over 4,300 digits
        raise UnstorableJSON(f"This is not valid JSON: {error}.") from error
    if not _plainly_storable(raw):
        check_storable(value)
    return value


def check_storable(value: Any) -> None:
    """Raise UnstorableJSON if `value` nests too deep or holds U+0000 or a lone surrogate.

    Iterative, so a value too deep for recursion is measured rather than crashed on.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise UnstorableJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnstorableJSON("Numbers must be finite (no NaN or Infinity).")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise UnstorableJSON("Strings may not contain the NUL character (\\u0000).")
    if _LONE_SURROGATE.search(text):
        raise UnstorableJSON("Strings may not contain a lone UTF-16 surrogate (\\ud800 to \\udfff).")


def _plainly_storable(raw: bytes | str) -> bool:
    """Whether UTF-8 JSON text cannot hold deep nesting, U+0000 or a lone surrogate."""
    if not isinstance(raw, bytes) or json.detect_encoding(raw) != "utf-8":
        return False
    return (
        raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH
        and _NUL_ESCAPE not in raw
        and not _SURROGATE_ESCAPE.search(raw)
    )


def _decoded(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as error:
        raise UnstorableJSON("This is not valid UTF-8 text.") from error


def _refuse_constant(name: str) -> Any:
    raise UnstorableJSON(f"{name} is not a JSON number.")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise UnstorableJSON(f"The number {literal[:40]} is beyond the range JSON numbers can be stored in.")
    return number
