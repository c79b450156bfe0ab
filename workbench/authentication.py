"""API authentication: OAuth2 bearer tokens of API credentials, checked with one query.

Tokens are django-oauth-toolkit's AccessToken rows, issued at /oauth/token with the client
credentials grant and stored by checksum. A resource request needs only three facts — the
token exists, has not expired, and belongs to a credential that is not revoked — so this
reads them, with the credential and its environment, in one prepared SQL statement instead
of oauthlib's general resource-server path (which costs a third of a start's CPU time). The
credential's `last_used_at` comes with them, so recording the use costs a write only when
that value is over a minute old.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.models import AccessToken
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .models import ApiCredential, Environment
from .raw_rows import ModelColumns, prepared_cursor
from .services import credential_use_record


@dataclass(frozen=True)
class _TokenQuery:
    sql: str
    credential: ModelColumns[ApiCredential]
    environment: ModelColumns[Environment]


@cache
def _token_query() -> _TokenQuery:
    """The statement, built once from the models' metadata."""
    quote = connection.ops.quote_name
    credential = ModelColumns.of(ApiCredential, "c")
    environment = ModelColumns.of(Environment, "e")
    tables = (AccessToken._meta.db_table, ApiCredential._meta.db_table, Environment._meta.db_table)
    # Only names from the models' metadata are formatted in; the checksum is a parameter.
    sql = (
        f"SELECT t.expires, {credential.sql}, {environment.sql} FROM {quote(tables[0])} t "  # noqa: S608
        f"JOIN {quote(tables[1])} c ON c.application_id = t.application_id "
        f"JOIN {quote(tables[2])} e ON e.id = c.environment_id "
        "WHERE t.token_checksum = %s AND c.revoked_at IS NULL"
    )
    return _TokenQuery(sql=sql, credential=credential, environment=environment)


def token_checksum(token: str) -> str:
    """How django-oauth-toolkit stores a token: by its SHA-256, so a leaked table holds no token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def credential_for_token(token: str) -> ApiCredential | None:
    """The active credential holding this unexpired token, with its environment loaded."""
    query = _token_query()
    with prepared_cursor() as cursor:
        cursor.execute(query.sql, [token_checksum(token)])
        row = cursor.fetchone()
    if row is None:
        return None
    return credential_in_use(row, credential=query.credential, environment=query.environment)


def credential_in_use(
    row: Sequence[Any], *, credential: ModelColumns[ApiCredential], environment: ModelColumns[Environment]
) -> ApiCredential | None:
    """The credential of a row that holds the token's expiry, then the credential's columns,
    then its environment's (how every token read lays them out), or None once the token has
    expired. A credential in use has its use recorded: a write only when `last_used_at`, read
    with it, is over a minute old."""
    expires = row[0]
    if timezone.is_naive(expires):  # SQLite hands back naive UTC datetimes
        expires = timezone.make_aware(expires, datetime.UTC)
    if expires <= timezone.now():
        return None
    found = credential.instance(row, start=1)
    found.environment = environment.instance(row, start=1 + credential.width)
    credential_use_record(credential=found)
    return found


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class CredentialTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` → request.auth is the token's ApiCredential.

    No token, or one that is unknown, expired or revoked, authenticates nobody; the view's
    permission then answers 401 not_authenticated.
    """

    def authenticate(self, request: Request) -> tuple[None, ApiCredential] | None:
        token = bearer_token(request)
        if token is None:
            return None
        credential = credential_for_token(token)
        return (None, credential) if credential is not None else None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class CredentialTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes it: OAuth2 client credentials, one scope per role."""

    target_class = "workbench.authentication.CredentialTokenAuthentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": settings.OAUTH2_PROVIDER["SCOPES"]}},
        }
