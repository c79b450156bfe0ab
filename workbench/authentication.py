"""API authentication: OAuth2 bearer tokens of API credentials, checked with one query.

Tokens are django-oauth-toolkit's AccessToken rows, issued at /oauth/token with the client
credentials grant and stored by checksum. A resource request needs only three facts — the
token exists, has not expired, and belongs to a credential that is not revoked — so this
reads them, with the credential and its environment, in one prepared SQL statement instead
of oauthlib's general resource-server path (which costs a third of a start's CPU time).
"""

from __future__ import annotations

import datetime
import hashlib
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


@cache
def _token_query() -> tuple[str, list[str], list[str]]:
    """The statement (built once from the models), and the attribute names of the
    credential's and the environment's columns it reads, in order."""
    quote = connection.ops.quote_name
    credential_fields = ApiCredential._meta.concrete_fields
    environment_fields = Environment._meta.concrete_fields
    columns = ["t.expires"]
    columns += [f"c.{quote(field.column)}" for field in credential_fields]
    columns += [f"e.{quote(field.column)}" for field in environment_fields]
    tables = (AccessToken._meta.db_table, ApiCredential._meta.db_table, Environment._meta.db_table)
    # Only names from the models' metadata are formatted in; the checksum is a parameter.
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(tables[0])} t "  # noqa: S608
        f"JOIN {quote(tables[1])} c ON c.application_id = t.application_id "
        f"JOIN {quote(tables[2])} e ON e.id = c.environment_id "
        "WHERE t.token_checksum = %s AND c.revoked_at IS NULL"
    )
    return sql, [field.attname for field in credential_fields], [field.attname for field in environment_fields]


def credential_for_token(token: str) -> ApiCredential | None:
    """The active credential holding this unexpired token, with its environment loaded."""
    sql, credential_fields, environment_fields = _token_query()
    checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(sql, [checksum])
        row = cursor.fetchone()
    if row is None:
        return None
    expires, values = row[0], row[1:]
    if timezone.is_naive(expires):  # SQLite hands back naive UTC datetimes
        expires = timezone.make_aware(expires, datetime.UTC)
    if expires <= timezone.now():
        return None
    split = len(credential_fields)
    credential = ApiCredential.from_db("default", credential_fields, list(values[:split]))
    credential.environment = Environment.from_db("default", environment_fields, list(values[split:]))
    return credential


class CredentialTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` → request.auth is the token's ApiCredential.

    No token, or one that is unknown, expired or revoked, authenticates nobody; the view's
    permission then answers 401 not_authenticated.
    """

    def authenticate(self, request: Request) -> tuple[None, ApiCredential] | None:
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
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
