"""What every environment-scoped API endpoint shares.

A request to /api/v1/{env}/... must carry a bearer token of a credential of that
environment (401 without one, 404 for another environment's, 403 for a role without the
right). Views declare `allowed_roles`; after the check the view's `environment` is set.
"""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .models import ApiCredential, CredentialRole, Environment


class EnvironmentCredentialPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        # Set by workbench.authentication with its environment; revoked ones never get here.
        credential = request.auth
        if not isinstance(credential, ApiCredential):
            raise exceptions.NotAuthenticated("A valid bearer token from /oauth/token is required.")
        if credential.environment.slug != view.kwargs.get("env"):
            raise exceptions.NotFound()
        roles = view.roles_for(request.method)
        if credential.role not in roles:
            raise exceptions.PermissionDenied(
                f"A {credential.role!r} credential cannot use this endpoint; it needs one of: {', '.join(roles)}."
            )
        view.environment = credential.environment
        return True


class EnvironmentAPIView(APIView):
    permission_classes = [EnvironmentCredentialPermission]
    allowed_roles: ClassVar[tuple[str, ...]] = ()
    # Roles that may use the safe methods (GET, HEAD, OPTIONS), when wider than allowed_roles.
    read_roles: ClassVar[tuple[str, ...] | None] = None

    def roles_for(self, method: str | None) -> tuple[str, ...]:
        if self.read_roles is not None and method in SAFE_METHODS:
            return self.read_roles
        return self.allowed_roles

    # The credential's environment, set by the permission check before any handler runs.
    environment: Environment


EVENTS = (CredentialRole.EVENTS.value,)
WORKBENCH = (CredentialRole.WORKBENCH.value,)
AUTH = (CredentialRole.AUTH.value,)


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not know instead of ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"request": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        value = super().to_internal_value(data)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return value


def envelope(data: Any) -> dict[str, Any]:
    return {"data": data}


def envelope_schema(name: str, data: serializers.Field) -> serializers.Serializer:
    """The OpenAPI shape of an answer wrapped as {"data": ...}."""
    return inline_serializer(name, {"data": data})
