"""OAuth2 glue: a credential's token carries exactly its role as scope."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

from .models import ApiCredential
from .services import credential_use_record


def _credential_role(client_id: str) -> str | None:
    return (
        ApiCredential.objects.filter(client_id=client_id, revoked_at__isnull=True)
        .values_list("role", flat=True)
        .first()
    )


class CredentialOAuth2Validator(OAuth2Validator):
    def get_default_scopes(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> list[str]:
        role = _credential_role(client_id)
        return [role] if role else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        role = _credential_role(client_id)
        return role is not None and set(scopes) <= {role}

    def save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        """Store the issued token; issuing one counts as using the credential."""
        super().save_bearer_token(token, request, *args, **kwargs)
        credential = ApiCredential.objects.filter(application_id=request.client.pk).first()
        if credential is not None:
            credential_use_record(credential=credential, always=True)
