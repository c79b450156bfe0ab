"""The API's JSON parser: DRF's, refusing what could not be stored instead of failing later."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .json_values import holds_nul


class StorableJSONParser(JSONParser):
    """A body whose strings hold U+0000 (written \\u0000) is a 400, not a database error."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if holds_nul(data):
            raise ParseError("Strings may not contain the NUL character (\\u0000).")
        return data
