"""OAuth2 glue: a credential's token carries exactly its role as scope."""

from __future__ import annotations

import hashlib
from typing import Any

from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_validators import OAuth2Validator

from .models import ApiCredential


def _credential_role(client_id: str) -> str | None:
    return (
        ApiCredential.objects.filter(client_id=client_id, revoked_at__isnull=True)
        .values_list("role", flat=True)
        .first()
    )


class CredentialOAuth2Validator(OAuth2Validator):
    def _load_access_token(self, token: str) -> AccessToken | None:
        """DOT's token lookup, also loading the credential and its environment (one query
        per API request instead of three)."""
        token_checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        return (
            AccessToken.objects.select_related("application__credential__environment")
            .filter(token_checksum=token_checksum)
            .first()
        )

    def get_default_scopes(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> list[str]:
        role = _credential_role(client_id)
        return [role] if role else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        role = _credential_role(client_id)
        return role is not None and set(scopes) <= {role}
