"""The Workbench's 403, 404 and 500 pages, in the Workbench's shell.

A visitor who is logged in and a member of the environment in the URL (/e/<env>/…) keeps the
sidebar of that environment; anyone else gets the same page without it, so an error never
tells whether another environment exists. API paths never come here: `api_errors` answers
them in JSON.

With DEBUG on (`make run`), Django would show its yellow technical pages instead;
`WorkbenchErrorPagesMiddleware` renders these pages there too, adding the technical detail
below the friendly text, so a marketer who mistypes a URL still sees the Workbench.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve

from .api_errors import database_unavailable, is_api_path, json_error_response, unavailable_response
from .models import Role
from .selectors import member_list, membership_list_for_user

logger = logging.getLogger("django.request")

ENVIRONMENT_PATH = re.compile(r"^/e/(?P<env>[^/]+)/")
# Paths whose errors belong to someone else: JSON for the API and webhooks, OAuth2's own shape
# for the token endpoint (workbench.api_errors); static files are served before any view.
NOT_PAGES = ("/api/", "/hooks/", "/integrations/", "/oauth/", "/static/")
# What Django itself answers with 400 or 403 rather than 500; left to Django.
NOT_SERVER_ERRORS = (Http404, PermissionDenied, SuspiciousOperation, BadRequest, MultiPartParserError)


def is_page_path(path: str) -> bool:
    return not path.startswith(NOT_PAGES)


def _attach_environment(request: HttpRequest) -> None:
    """Give the shell the environment of the URL when the visitor is a member of it
    (a view decorated with `environment_page` has done so already)."""
    if getattr(request, "environment", None) is not None:
        return
    match = ENVIRONMENT_PATH.match(request.path)
    user = getattr(request, "user", None)
    if match is None or user is None or not user.is_authenticated:
        return
    membership = membership_list_for_user(user=user).filter(environment__slug=match["env"]).first()
    if membership is not None:
        request.membership = membership  # type: ignore[attr-defined]
        request.environment = membership.environment  # type: ignore[attr-defined]


def _debug_detail(exception: BaseException | None, *, with_traceback: bool = False) -> str:
    """What a developer needs under DEBUG; nothing in production."""
    if not settings.DEBUG or exception is None:
        return ""
    if isinstance(exception, Resolver404):  # its message lists every pattern tried: too long to help
        return "No URL pattern matches this path."
    if with_traceback:
        return "".join(traceback.format_exception(exception))
    return f"{type(exception).__name__}: {exception}"


def page_not_found(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """Django's handler404."""
    if is_api_path(request.path):
        return json_error_response(404, "not_found", "Not found.")
    _attach_environment(request)
    context = {"debug_detail": _debug_detail(exception)}
    return render(request, "404.html", context, status=404)


def permission_denied(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """Django's handler403: the shell, and whom to ask (the environment's owners)."""
    if is_api_path(request.path):
        return json_error_response(403, "permission_denied", "You do not have permission to perform this action.")
    _attach_environment(request)
    environment = getattr(request, "environment", None)
    owners = []
    if environment is not None:
        owners = [member.user for member in member_list(environment=environment) if member.role == Role.OWNER]
    context = {"reason": str(exception or ""), "owners": owners}
    return render(request, "403.html", context, status=403)


def server_error(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """Django's handler500 (its last resort, outside DRF: webhooks, /oauth/token, pages,
    middleware), called while the exception is being handled, so `sys.exc_info()` names it.

    A database outage is a 503 that says to retry. A page is drawn in the shell; when the shell
    itself cannot be drawn (its context processors need the database and the session), the
    standalone page that needs neither.
    """
    exception = exception or sys.exc_info()[1]
    if database_unavailable(exception):
        return unavailable_response(request)
    if is_api_path(request.path):
        return json_error_response(500, "server_error", "Something went wrong on our side; nothing was changed.")
    try:
        _attach_environment(request)
        context = {"debug_detail": _debug_detail(exception, with_traceback=True)}
        return render(request, "500.html", context, status=500)
    except Exception:
        logger.exception("The 500 page could not be drawn in the shell; answering the standalone one")
        return HttpResponse(render_to_string("workbench/server_error_plain.html"), status=500)


class WorkbenchErrorPagesMiddleware:
    """With DEBUG on, answer the Workbench's own 404 and 500 pages on page paths where Django
    would answer its technical ones. With DEBUG off, Django's handlers (`handler404`,
    `handler500` in workbench/urls.py) do the same, so this stands aside.

    1. An unknown URL: resolved here first, because Django resolves outside the view's
       exception handling, where no middleware's `process_exception` sees it.
    2. A view raising Http404, or failing (other than a refusal Django answers with 400 or
       403, and a database outage, which stays a 503 through `handler500`).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and is_page_path(request.path):
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404 as unknown:
                return page_not_found(request, unknown)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG or not is_page_path(request.path):
            return None
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        if isinstance(exception, NOT_SERVER_ERRORS) or database_unavailable(exception):
            return None
        logger.error("Internal Server Error: %s", request.path, exc_info=exception, extra={"status_code": 500})
        return server_error(request, exception)
