"""Every API error is JSON: {"detail": "<human message>", "code": "<machine code>"}.

Validation errors add "errors": {"<field>": ["..."]}. Nothing on an API path ever answers
with an HTML page or a stack trace: DRF exceptions go through `api_exception_handler`,
and Django-level 404 / 500 on API paths through `json_error_response` (Django's handlers live
in `error_pages`, which draws the Workbench's own pages for every other path).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response

from .errors import Invalid, Refused

logger = logging.getLogger(__name__)

# /integrations/: the Marketing Cloud and Marketo endpoints, JSON like webhooks (SPEC section 7).
API_PREFIXES = ("/api/", "/hooks/", "/integrations/")
OAUTH_PREFIX = "/oauth/"
# How long a sender is asked to wait when the database cannot be reached: long enough not to
# hammer a recovering server, short enough that a failover is barely noticed.
RETRY_AFTER_SECONDS = 30
UNAVAILABLE_DETAIL = "The service cannot reach its database right now; nothing was changed. Retry later."


class ApiError(exceptions.APIException):
    """An API error with an explicit status and code: `raise ApiError(409, "flow_archived", "...")`."""

    def __init__(self, status_code: int, code: str, detail: str, errors: dict[str, Any] | None = None):
        self.status_code = status_code
        self.errors = errors
        super().__init__(detail=detail, code=code)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` says the database cannot be used right now (down, unreachable, locked,
    a failover): a 503 that senders retry, not a 500 that says we are broken."""
    return isinstance(exc, (OperationalError, InterfaceError))


def error_body(detail: str, code: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def json_error_response(status_code: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)


def _validation_errors(detail: Any) -> dict[str, Any]:
    """DRF validation detail as {"field": ["message", ...]}; non-field errors under "request"."""
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    if isinstance(detail, list) and any(isinstance(item, dict) for item in detail):
        # A list serializer: errors per item, keyed by the item's index.
        return {str(index): _validation_errors(item) for index, item in enumerate(detail) if item}
    return {"request": _messages(detail)}


def _messages(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _messages(item) for key, item in value.items()}
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return [str(item) for item in value]
        return [_messages(item) for item in value]
    return [str(value)]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, Refused):
        response = Response(error_body(exc.detail, exc.code, exc.errors), status=exc.status)
    elif isinstance(exc, Invalid):  # a validator's error that no service turned into a refusal
        response = Response(error_body(exc.detail, "invalid_request", exc.errors), status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, ApiError):
        response = Response(error_body(str(exc.detail), str(exc.get_codes()), exc.errors), status=exc.status_code)
    elif isinstance(exc, exceptions.ValidationError):
        response = Response(
            error_body("The request is not valid.", "invalid_request", _validation_errors(exc.detail)),
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, exceptions.ParseError):
        response = Response(
            error_body(f"The request body could not be parsed: {exc.detail}", "invalid_json"),
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response = Response(error_body(str(detail), str(code)), status=exc.status_code)
    elif database_unavailable(exc):
        logger.warning("Database unavailable on %s: %s", getattr(context.get("request"), "path", "?"), exc)
        response = Response(error_body(UNAVAILABLE_DETAIL, "unavailable"), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    else:
        request = context.get("request")
        logger.exception("Unhandled API error on %s", getattr(request, "path", "?"))
        response = Response(
            error_body("Something went wrong on our side; nothing was changed.", "server_error"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    return response


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After, in the shape the path's clients read."""
    response: HttpResponse
    if is_api_path(request.path):
        response = json_error_response(503, "unavailable", UNAVAILABLE_DETAIL)
    elif request.path.startswith(OAUTH_PREFIX):  # RFC 6749's error shape, as the token endpoint answers
        body = {"error": "temporarily_unavailable", "error_description": UNAVAILABLE_DETAIL}
        response = JsonResponse(body, status=503)
    else:  # rendered without the request: its context processors would query the database
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
