"""The one exception services raise to refuse a request, whoever asked.

It carries what an API answers (status, machine code, human detail, per-field errors), so
the API layer maps it in one place (`api_errors.api_exception_handler`) and HTML views can
show `detail` and `errors` as they are.
"""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    def __init__(self, status: int, code: str, detail: str, errors: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
