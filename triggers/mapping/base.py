"""The types every part of the mapping engine shares: the request it maps and its error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WebhookInput:
    """One webhook request as the mapping sees it.

    The receiving view builds it: `body` is the parsed JSON body, `headers` have lower-case
    names, `query` holds strings (the last value when a parameter is repeated), `method` is
    "POST" or "PUT".
    """

    body: Any
    headers: dict[str, str]
    query: dict[str, str]
    method: str


class MappingError(Exception):
    """Mapping this request failed; `errors` are messages for the member, never a traceback."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors) or "The mapping failed.")
        self.errors = errors
