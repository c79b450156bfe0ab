"""Brakes on password and secret guessing: failed log-ins and failed OAuth2 client authentications.

django-ratelimit keeps the counters in Django's cache (`settings.CACHES`; use `CACHE_URL` with
several gunicorn workers or machines, or each process counts on its own). Only failures are
counted, and a request is checked before any password or secret is:

- per address: more than `AUTH_FAILURES_PER_ADDRESS` failures in a window and that address
  is refused whatever it sends, so one machine cannot try many accounts;
- per account (client id or username, whatever address it comes from): more than
  `AUTH_FAILURES_PER_ACCOUNT` and the account is refused everywhere, so many machines
  cannot try one account. This limit is higher by default: one noisy machine is stopped
  by its address limit before it can lock the account's real owner out.

The window is fixed (`AUTH_FAILURE_WINDOW_SECONDS`); refused answers carry `Retry-After`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_ratelimit.core import get_usage
from oauth2_provider.views import TokenView

from .client_address import UNKNOWN_CLIENT, client_address

# Every client whose address cannot be told shares one counter.
UNIDENTIFIED_ADDRESS = "0.0.0.0"  # noqa: S104 (a counter key, not a bind address)

Key = Callable[[str, HttpRequest], str]


def client_ip(request: HttpRequest) -> str:
    """The caller's address for the counters (django-ratelimit's RATELIMIT_IP_META_KEY)."""
    address = client_address(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR"), settings.TRUSTED_PROXIES
    )
    return UNIDENTIFIED_ADDRESS if address == UNKNOWN_CLIENT else address


def _counters(kind: str, account: str) -> list[tuple[str, str | Key, int]]:
    """(group, key, limit) of every counter a request of this kind and account is held to."""
    counters: list[tuple[str, str | Key, int]] = [(f"{kind}:address", "ip", settings.AUTH_FAILURES_PER_ADDRESS)]
    if account:
        # Usernames differing only in case share a counter, whatever the database compares.
        account_key: Key = lambda _group, _request: account.casefold()  # noqa: E731
        counters.append((f"{kind}:account", account_key, settings.AUTH_FAILURES_PER_ACCOUNT))
    return counters


def _usage(request: HttpRequest, group: str, key: str | Key, limit: int, *, increment: bool) -> dict[str, Any] | None:
    rate = (limit, settings.AUTH_FAILURE_WINDOW_SECONDS)
    usage: dict[str, Any] | None = get_usage(request, group=group, key=key, rate=rate, increment=increment)
    return usage


def retry_after(request: HttpRequest, *, kind: str, account: str) -> int | None:
    """Seconds until this request may be tried, or None when it is under every limit."""
    waits = []
    for group, key, limit in _counters(kind, account):
        usage = _usage(request, group, key, limit, increment=False)
        if usage is not None and usage["count"] >= limit:
            # django-ratelimit's window still holds in its last second (time_left == 0).
            waits.append(max(1, int(usage["time_left"]) + 1))
    return max(waits, default=None)


def failure_record(request: HttpRequest, *, kind: str, account: str) -> None:
    for group, key, limit in _counters(kind, account):
        _usage(request, group, key, limit, increment=True)


# --- /oauth/token -----------------------------------------------------------------------------


def _client_id(request: HttpRequest) -> str:
    """The client id the request claims, read as django-oauth-toolkit reads it (Basic, then form)."""
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return unquote_plus(decoded.split(":", 1)[0])
    return str(request.POST.get("client_id", ""))


def _is_invalid_client(response: HttpResponse) -> bool:
    if response.status_code != 401:
        return False
    try:
        return bool(json.loads(response.content).get("error") == "invalid_client")
    except (ValueError, AttributeError):
        return False


class RateLimitedTokenView(TokenView):
    """django-oauth-toolkit's token endpoint, with failed client authentications limited."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        client_id = _client_id(request)
        wait = retry_after(request, kind="oauth-client", account=client_id)
        if wait is not None:
            return oauth_too_many_failures(wait)
        response: HttpResponse = super().post(request, *args, **kwargs)
        if _is_invalid_client(response):
            failure_record(request, kind="oauth-client", account=client_id)
        return response


def oauth_too_many_failures(wait: int) -> JsonResponse:
    # RFC 6749 has no error for this; "slow_down" is the registered OAuth2 error (RFC 8628)
    # that tells a client to back off before trying again.
    body = {
        "error": "slow_down",
        "error_description": f"Too many failed client authentications. Try again in {wait} seconds.",
    }
    response = JsonResponse(body, status=429)
    response["Retry-After"] = str(wait)
    response["Cache-Control"] = "no-store"
    return response


# --- /login/ ----------------------------------------------------------------------------------


class RateLimitedLoginView(LoginView):
    """Django's login view; over a limit it answers 429 without checking the password."""

    template_name = "workbench/login.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = retry_after(request, kind="login", account=self._username())
        if wait is None:
            return super().post(request, *args, **kwargs)
        form = self.get_form_class()(request, initial={"username": self._username()})
        context = self.get_context_data(form=form, retry_after=wait)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        # Non-field errors are the authentication's verdict; a blank field is no guess.
        if form.non_field_errors():
            failure_record(self.request, kind="login", account=self._username())
        return super().form_invalid(form)

    def _username(self) -> str:
        return str(self.request.POST.get("username", ""))
