"""What the OpenAPI schema says beyond what drf-spectacular reads from the views.

- `ErrorSerializer` and `answers()`: every operation documents its errors in our one shape,
  `{"detail", "code", "errors"?}`, with the codes it can answer listed per status.
- `StrictSerializerExtension`: a serializer that refuses unknown fields says so in the
  schema (`additionalProperties: false` on its request component).
- `document_non_drf_endpoints`: a postprocessing hook that adds the two endpoints that are
  not DRF views (`POST /oauth/token`, `POST|PUT /hooks/{token}`), the Retry-After header of
  every 503, and the tag descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ACTION_FLOWS = "Action Flows"
CUSTOMERS = "Customers"
CREDENTIALS = "Credentials"
CONFIG_FLOWS = "Configuration: flows"
CONFIG_TRIGGERS = "Configuration: triggers"
CONFIG_SEGMENTS = "Configuration: segments"
CONFIG_TEST_USERS = "Configuration: test users"
OAUTH = "OAuth"
WEBHOOKS = "Webhooks"

TAGS = [
    {
        "name": ACTION_FLOWS,
        "description": "Start flows live or as a test, and read invocations and card feeds (role events).",
    },
    {"name": CUSTOMERS, "description": "Customer profiles (role events)."},
    {"name": CREDENTIALS, "description": "An environment's API credentials (role auth; reads also workbench)."},
    {"name": CONFIG_FLOWS, "description": "Action flows: drafts, publishing, archiving (role workbench)."},
    {"name": CONFIG_TRIGGERS, "description": "Triggers and the webhook trigger actions (role workbench)."},
    {"name": CONFIG_SEGMENTS, "description": "Segments, their members, previews and dry runs (role workbench)."},
    {"name": CONFIG_TEST_USERS, "description": "The users test starts deliver to (role workbench)."},
    {"name": OAUTH, "description": "Bearer tokens for the API (client credentials grant)."},
    {"name": WEBHOOKS, "description": "A webhook trigger's URL: no OAuth, answers in our error shape."},
]

ERROR_COMPONENT = "Error"
# `extend_schema(extensions={BODY_REQUIRED: True})`: the operation refuses a request without a body.
BODY_REQUIRED = "x-request-body-required"
# `extend_schema(extensions={ARRAY_BOUNDS: {"minItems": 1, "maxItems": 100}})`: the bounds of a
# JSON array body (drf-spectacular drops a list serializer's min_length and max_length).
ARRAY_BOUNDS = "x-array-bounds"


class ErrorSerializer(serializers.Serializer):
    """Every error of the API (the token endpoint excepted, which speaks RFC 6749)."""

    detail = serializers.CharField(help_text="A human message.")
    code = serializers.CharField(help_text="A machine code, e.g. invalid_request, not_found, flow_archived.")
    # The stubs know Serializer.errors; here it is a payload field.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(),
        required=False,
        help_text='Validation errors by field path: {"<field>": ["..."]}.',
    )


# The answers every environment-scoped operation can give, whatever it does.
STANDARD_ERRORS: dict[int, str] = {
    400: "invalid_request (with `errors` by field), invalid_json: the request is not valid.",
    401: "not_authenticated: no bearer token, or one that is unknown, expired or revoked.",
    403: "permission_denied: the credential's role cannot use this operation.",
    404: "not_found: another environment's path, or no such resource.",
    413: "payload_too_large: the request body is over 1 MiB.",
    503: "unavailable: the service cannot answer right now (the database is down); retry after Retry-After.",
}
# DRF answers 415 when an operation that reads a body gets one that is not JSON.
BODY_ERRORS: dict[int, str] = {415: "unsupported_media_type: send application/json."}


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


def answers(
    success: Mapping[int, Any], refusals: Mapping[int, str] | None = None, *, body: bool = False
) -> dict[int, Any]:
    """An operation's `responses`: its successes, the standard errors and its own refusals.

    `refusals` maps a status to the codes the operation adds (they are appended to a standard
    status's description); `body=True` for operations that read a JSON body (415).
    """
    errors = {**STANDARD_ERRORS, **(BODY_ERRORS if body else {})}
    for status, codes in (refusals or {}).items():
        errors[status] = f"{errors[status]} Also: {codes}" if status in errors else codes
    return {**success, **{status: error_response(text) for status, text in sorted(errors.items())}}


class StrictSerializerExtension(OpenApiSerializerExtension):
    """StrictSerializer refuses fields it does not know; its request schema says so."""

    target_class = "workbench.api_base.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        # A subclass without a docstring of its own would be described by StrictSerializer's.
        if schema.get("description") == _docstring_of("workbench.api_base.StrictSerializer"):
            del schema["description"]
        return schema


class NonBlankTextExtension(OpenApiSerializerFieldExtension):
    """A CharField that trims white space and may not be blank refuses "  " too: its request
    schema asks for a character that is not white space (minLength alone would allow spaces)."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        has_pattern = any(isinstance(validator, RegexValidator) for validator in field.validators)
        if direction == "request" and not field.allow_blank and field.trim_whitespace and not has_pattern:
            schema["pattern"] = r"\S"
        return schema


def _docstring_of(dotted: str) -> str:
    from django.utils.module_loading import import_string
    from drf_spectacular.plumbing import get_doc

    return get_doc(import_string(dotted))


# --- Endpoints that are not DRF views -------------------------------------------------------

ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}}
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _unavailable() -> dict[str, Any]:
    return {**_error(STANDARD_ERRORS[503]), "headers": RETRY_AFTER}


OAUTH_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "string",
            "description": "RFC 6749 section 5.2: invalid_request, invalid_client, invalid_grant, "
            "unauthorized_client, unsupported_grant_type, invalid_scope.",
        },
        "error_description": {"type": "string"},
    },
    "required": ["error"],
}


def _oauth_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": OAUTH_ERROR}}}


TOKEN_OPERATION: dict[str, Any] = {
    "operationId": "oauth_token_create",
    "summary": "Issue a bearer token (client credentials grant)",
    "description": "Client id and secret by HTTP Basic or as form fields. Tokens live one hour. "
    "Errors answer in OAuth2's own shape (RFC 6749), not in the API's.",
    "tags": [OAUTH],
    "security": [{"clientBasic": []}, {}],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                    "required": ["grant_type"],
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "A bearer token.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"type": "string", "enum": ["Bearer"]},
                            "expires_in": {"type": "integer"},
                            "scope": {"type": "string"},
                        },
                        "required": ["access_token", "token_type", "expires_in", "scope"],
                    }
                }
            },
        },
        "400": _oauth_error("invalid_request, unsupported_grant_type, invalid_scope, invalid_grant."),
        "401": _oauth_error("invalid_client: unknown client, wrong secret or a revoked credential."),
        "413": _error(STANDARD_ERRORS[413]),
        "429": {
            **_oauth_error("slow_down: too many failed client authentications from this address or for this client."),
            "headers": RETRY_AFTER,
        },
        "503": {**_oauth_error("temporarily_unavailable: retry after Retry-After seconds."), "headers": RETRY_AFTER},
    },
}

WEBHOOK_ANSWER = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["accepted", "duplicate", "held", "sample_captured"],
            "description": "accepted (202): the start is durable; duplicate (200): every start was a repeat; "
            "held (202): the trigger is paused and keeps the request; sample_captured (202): it became the sample.",
        },
        "flowInvocationId": {"type": "string"},
        "flowInvocationIds": {"type": "array", "items": {"type": "string"}},
        "mode": {"type": "string", "enum": ["test", "live"]},
    },
    "required": ["status"],
}


def _webhook_operation(method: str) -> dict[str, Any]:
    answer = {"content": {"application/json": {"schema": WEBHOOK_ANSWER}}}
    return {
        "operationId": f"hooks_{method}",
        "summary": f"Deliver a webhook ({method.upper()})",
        "description": "A webhook trigger's URL (SPEC section 4). No OAuth: the token in the path, the IP "
        "allowlist and the signature authenticate the sender. The body is any JSON.",
        "tags": [WEBHOOKS],
        "security": [{}],
        "parameters": [
            {"name": "token", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}}
        ],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
        "responses": {
            "200": {"description": "duplicate: every start in it was a repeat.", **answer},
            "202": {"description": "accepted, held or sample_captured.", **answer},
            "400": _error("invalid_payload: the body is not JSON."),
            "401": _error("signature_invalid: a signature is configured and missing or wrong."),
            "403": _error("trigger_disabled; ip_not_allowed."),
            "404": _error("not_found: no webhook at this URL."),
            "409": _error("flow_not_published (live mode), flow_archived, idempotency_mismatch."),
            "413": _error(STANDARD_ERRORS[413]),
            "422": _error("mapping_failed: the mapping failed or its output is no valid start request (`errors`)."),
            "503": _unavailable(),
        },
    }


def _bound_arrays(request_body: dict[str, Any], result: dict[str, Any], bounds: dict[str, int]) -> None:
    """Set the bounds on the body's array schema, or on the array alternative of its oneOf."""
    for media in request_body.get("content", {}).values():
        schema = _resolved(media.get("schema", {}), result)
        for candidate in [schema, *schema.get("oneOf", [])]:
            if candidate.get("type") == "array":
                candidate.update(bounds)


def _resolved(schema: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = result["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def document_non_drf_endpoints(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: add /oauth/token and /hooks/{token}, Retry-After on every 503, tags."""
    paths = result.setdefault("paths", {})
    paths["/oauth/token"] = {"post": TOKEN_OPERATION}
    paths["/hooks/{token}"] = {"post": _webhook_operation("post"), "put": _webhook_operation("put")}
    for operations in paths.values():
        for operation in operations.values():
            unavailable = operation.get("responses", {}).get("503")
            if unavailable is not None:
                unavailable.setdefault("headers", RETRY_AFTER)
            # extend_schema cannot say that a body whose fields are all optional is required.
            if operation.pop(BODY_REQUIRED, False) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
            bounds = operation.pop(ARRAY_BOUNDS, None)
            if bounds:
                _bound_arrays(operation["requestBody"], result, bounds)
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {})["clientBasic"] = {"type": "http", "scheme": "basic"}
    result["tags"] = TAGS
    return result
