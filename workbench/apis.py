"""Credentials API (SPEC section 3): list, issue and revoke an environment's credentials."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from . import selectors, services
from .api_base import AUTH, WORKBENCH, EnvironmentAPIView, StrictSerializer, envelope, envelope_schema
from .models import ApiCredential, CredentialRole
from .schema import CREDENTIALS, answers


class CredentialOutSerializer(serializers.Serializer):
    clientId = serializers.CharField(source="client_id")
    role = serializers.ChoiceField(choices=CredentialRole.choices)
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(
        source="last_used_at",
        allow_null=True,
        help_text="When a token was last issued to it or it last called the API, to the minute; null if never.",
    )


class CredentialCreateSerializer(StrictSerializer):
    # Credentials that manage credentials are issued only in the Workbench, by an owner.
    role = serializers.ChoiceField(choices=[CredentialRole.EVENTS.value, CredentialRole.WORKBENCH.value])
    # The stubs know Serializer.label as the field label; here it is a payload field.
    label = serializers.CharField(max_length=200, required=False, allow_blank=True)  # type: ignore[assignment]


CredentialListEnvelope = envelope_schema("CredentialList", CredentialOutSerializer(many=True))


class IssuedCredentialSerializer(serializers.Serializer):
    clientId = serializers.CharField()
    clientSecret = serializers.CharField(help_text="Shown only in this answer; store it safely.")


IssuedCredentialEnvelope = envelope_schema("IssuedCredentialAnswer", IssuedCredentialSerializer())
RevokedCredentialEnvelope = envelope_schema(
    "RevokedCredentialAnswer", inline_serializer("RevokedCredential", {"clientId": serializers.CharField()})
)


@extend_schema(tags=[CREDENTIALS])
class CredentialListApi(EnvironmentAPIView):
    allowed_roles = AUTH
    # Reading the list is open to workbench credentials too; issuing is auth only.
    read_roles = AUTH + WORKBENCH

    @extend_schema(responses=answers({200: CredentialListEnvelope}))
    def get(self, request: Request, env: str) -> Response:
        credentials = selectors.credential_list(environment=self.environment)
        return Response(envelope(CredentialOutSerializer(credentials, many=True).data))

    @extend_schema(request=CredentialCreateSerializer, responses=answers({201: IssuedCredentialEnvelope}, body=True))
    def post(self, request: Request, env: str) -> Response:
        serializer = CredentialCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.credential_create(
            environment=self.environment,
            role=serializer.validated_data["role"],
            label=serializer.validated_data.get("label", ""),
        )
        body = {"clientId": issued.credential.client_id, "clientSecret": issued.client_secret}
        return Response(envelope(body), status=status.HTTP_201_CREATED)


@extend_schema(tags=[CREDENTIALS])
class CredentialDetailApi(EnvironmentAPIView):
    allowed_roles = AUTH

    @extend_schema(request=None, responses=answers({200: RevokedCredentialEnvelope}))
    def delete(self, request: Request, env: str, client_id: str) -> Response:
        credential: ApiCredential = selectors.credential_get(environment=self.environment, client_id=client_id)
        services.credential_revoke(credential=credential)
        return Response(envelope({"clientId": credential.client_id}))
