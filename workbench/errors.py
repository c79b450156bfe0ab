"""The two exceptions of the project's writes, whoever asked.

- `Invalid`: input that does not have the declared shape or breaks a rule of its own
  (a JSONPath that must compile, a range with host bits set). `errors` maps a field path
  ("steps.0.card.actions.0.url", "security.signature.secret", "[3].name") to messages. Every
  validator raises it; a caller that nests a shape re-keys it with `Invalid.within`.
- `Refused`: a service refuses a request. It carries what an API answers (status, machine
  code, human detail, per-field errors), so the API layer maps it in one place
  (`api_errors.api_exception_handler`) and HTML views can show `detail` and `errors` as they are.
"""

from __future__ import annotations

from typing import Any

FieldErrors = dict[str, list[str]]


class Invalid(ValueError):
    """Input that cannot be taken; `errors` maps field paths to messages (answered as 400)."""

    detail = "The request is not valid."

    def __init__(self, errors: FieldErrors, detail: str | None = None) -> None:
        self.errors = errors
        if detail is not None:
            self.detail = detail
        super().__init__(self.detail + " " + "; ".join(f"{key}: {' '.join(value)}" for key, value in errors.items()))

    def within(self, prefix: str) -> FieldErrors:
        """The errors with their paths under `prefix` ("security" + "allowedIps.0")."""
        return {f"{prefix}.{key}" if key else prefix: value for key, value in self.errors.items()}


class Refused(Exception):
    def __init__(self, status: int, code: str, detail: str, errors: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
