"""The API's JSON parser: DRF's, refusing what could not be stored instead of failing later."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .json_values import UnstorableJSON, loads_storable


class StorableJSONParser(JSONParser):
    """Strict JSON that the database can store (`json_values.loads_storable`): NaN,
    Infinity, 1e999, U+0000, lone surrogates and nesting past 100 levels are a 400
    invalid_json, not a database error or a RecursionError."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return loads_storable(raw)
        except UnstorableJSON as error:
            raise ParseError(str(error)) from error
