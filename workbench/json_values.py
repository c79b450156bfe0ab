"""Facts about JSON values that every app needs: PostgreSQL stores no U+0000 in text or jsonb."""

from __future__ import annotations

from typing import Any


def holds_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 anywhere, in a key or a string."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
