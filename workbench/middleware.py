"""The API's guard: bound request bodies before anything reads them, and never answer
an API path with an HTML error page."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .api_errors import is_api_path, json_error_response

# CSV bulk starts (SPEC section 6) take files of up to CSV_MAX_BODY_BYTES; Django spools them
# to a temporary file and the service streams it, so the larger limit costs no memory.
CSV_UPLOAD_PATH = re.compile(r"^/api/v1/[^/]+/action-flow/[^/]+/csv-task(/test)?/?$")


def body_limit_for(path: str) -> int | None:
    """The largest body the path accepts, or None when the path sets no limit of its own."""
    if CSV_UPLOAD_PATH.match(path):
        return settings.CSV_MAX_BODY_BYTES
    if is_api_path(path):
        return settings.API_MAX_BODY_BYTES
    return None


class ApiGuardMiddleware:
    """1. Answer 413 payload_too_large when the declared body is over the path's limit;
       the check uses Content-Length, so an oversized body is refused before a byte of
       it is read or parsed.
    2. Replace any non-JSON error on an API path (Django's own 404 for an unknown URL,
       including its DEBUG page, or a 500) with our JSON error shape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit_for(request.path)
        if limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error_response(400, "invalid_request", "Content-Length is not a number.")
            if length > limit:
                return json_error_response(
                    413, "payload_too_large", f"The request body is over the limit of {limit} bytes."
                )
        response = self.get_response(request)
        if is_api_path(request.path) and response.status_code >= 400 and not _is_json(response):
            return _as_json_error(response.status_code)
        return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def _as_json_error(status_code: int) -> HttpResponse:
    if status_code == 404:
        return json_error_response(404, "not_found", "Not found.")
    if status_code == 405:
        return json_error_response(405, "method_not_allowed", "Method not allowed.")
    if status_code >= 500:
        return json_error_response(
            status_code, "server_error", "Something went wrong on our side; nothing was changed."
        )
    return json_error_response(status_code, "error", "The request was refused.")
