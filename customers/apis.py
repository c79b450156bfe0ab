"""Customer profiles, events and test users over the API (SPEC sections 3 and 5)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from workbench.api_base import EVENTS, WORKBENCH, EnvironmentAPIView, StrictSerializer, envelope, envelope_schema
from workbench.schema import ARRAY_BOUNDS, BODY_REQUIRED, CONFIG_TEST_USERS, CUSTOMERS, answers

from . import selectors, services
from .models import Customer, TestUser


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "description": "Names of 1 to 100 characters; null removes a key.",
        "additionalProperties": {
            "oneOf": [{"type": "string", "maxLength": 10_000}, {"type": "number"}, {"type": "boolean"}],
            "nullable": True,
        },
    }
)
class CustomFieldsField(serializers.DictField):
    """customFields: string, number, boolean or ISO date (as a string) values; null removes a key."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object of custom fields.")
        errors = {}
        for key, value in data.items():
            if not key or len(key) > 100:
                errors[key] = "Custom field names are 1 to 100 characters."
            elif value is not None and not isinstance(value, (str, int, float, bool)):
                errors[key] = "Custom field values are strings, numbers, booleans, dates or null."
            elif isinstance(value, str) and len(value) > 10_000:
                errors[key] = "Custom field values are at most 10,000 characters."
            elif "\x00" in key or (isinstance(value, str) and "\x00" in value):
                errors[key] = "Null characters are not allowed."
        if errors:
            raise serializers.ValidationError(errors)
        return dict(data)


def _text(max_length: int) -> StrictCharField:
    return StrictCharField(max_length=max_length, required=False, allow_null=True, allow_blank=True)


def _moment(source: str) -> serializers.DateTimeField:
    return serializers.DateTimeField(source=source, required=False, allow_null=True)


class CustomerProfileSerializer(StrictSerializer):
    """A profile as the API speaks it (camelCase). Fields omitted are left unchanged."""

    userId = StrictCharField(source="user_id", max_length=255)
    name = _text(255)
    email = _text(320)
    phone = _text(64)
    city = _text(255)
    country = _text(255)
    region = _text(255)
    timezone = _text(64)
    tags = serializers.ListField(child=StrictCharField(max_length=100), required=False, allow_null=True)
    customFields = CustomFieldsField(source="custom_fields", required=False, allow_null=True)
    createdAt = serializers.DateTimeField(
        source="created_at", required=False, error_messages={"null": "createdAt cannot be removed."}
    )
    firstSeenAt = _moment("first_seen_at")
    lastSeenAt = _moment("last_seen_at")
    lastSeenIosAt = _moment("last_seen_ios_at")
    lastSeenAndroidAt = _moment("last_seen_android_at")
    lastSeenWebAt = _moment("last_seen_web_at")


class CustomerUpsertSerializer(CustomerProfileSerializer):
    """PUT customers/{userId}: the path names the profile, so the body's userId is optional."""

    userId = StrictCharField(source="user_id", max_length=255, required=False)


# A userId in a path is validated like one in a body: 1 to 255 characters, not only spaces.
USER_ID_PATH = OpenApiParameter(
    "user_id",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
    OpenApiParameter.PATH,
)


def customer_representation(customer: Customer) -> dict[str, Any]:
    def moment(value: Any) -> str | None:
        return serializers.DateTimeField().to_representation(value) if value else None

    return {
        "userId": customer.user_id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "city": customer.city,
        "country": customer.country,
        "region": customer.region,
        "timezone": customer.timezone,
        "tags": customer.tags,
        "customFields": customer.custom_fields,
        "createdAt": moment(customer.created_at),
        "firstSeenAt": moment(customer.first_seen_at),
        "lastSeenAt": moment(customer.last_seen_at),
        "lastSeenIosAt": moment(customer.last_seen_ios_at),
        "lastSeenAndroidAt": moment(customer.last_seen_android_at),
        "lastSeenWebAt": moment(customer.last_seen_web_at),
    }


CustomerEnvelope = envelope_schema("CustomerAnswer", CustomerProfileSerializer())
BatchUpsertEnvelope = envelope_schema(
    "BatchUpsertAnswer",
    inline_serializer(
        "BatchUpsertResult", {"created": serializers.IntegerField(), "updated": serializers.IntegerField()}
    ),
)


@extend_schema(tags=[CUSTOMERS], parameters=[USER_ID_PATH])
class CustomerDetailApi(EnvironmentAPIView):
    allowed_roles = EVENTS

    @extend_schema(request=None, responses=answers({200: CustomerEnvelope}))
    def get(self, request: Request, env: str, user_id: str) -> Response:
        customer = selectors.customer_get(environment=self.environment, user_id=user_id)
        return Response(envelope(customer_representation(customer)))

    @extend_schema(
        request=CustomerUpsertSerializer,
        responses=answers({200: CustomerEnvelope, 201: CustomerEnvelope}, body=True),
        extensions={BODY_REQUIRED: True},
    )
    def put(self, request: Request, env: str, user_id: str) -> Response:
        # No body at all is no empty profile: it creates nothing.
        if request.stream is None or not isinstance(request.data, dict):
            raise serializers.ValidationError({"request": ["Send the profile as a JSON object."]})
        if request.data.get("userId", user_id) != user_id:
            raise serializers.ValidationError({"userId": ["Does not match the userId in the path."]})
        # The path's userId is validated like any other (length, characters).
        serializer = CustomerUpsertSerializer(data={**request.data, "userId": user_id})
        serializer.is_valid(raise_exception=True)
        customer, created = services.customer_upsert(environment=self.environment, profile=serializer.validated_data)
        return Response(
            envelope(customer_representation(customer)),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema(tags=[CUSTOMERS])
class CustomerBatchApi(EnvironmentAPIView):
    allowed_roles = EVENTS

    @extend_schema(
        request=CustomerProfileSerializer(many=True),
        responses=answers({200: BatchUpsertEnvelope}, body=True),
        extensions={ARRAY_BOUNDS: {"minItems": 1, "maxItems": settings.BATCH_UPSERT_MAX_PROFILES}},
    )
    def post(self, request: Request, env: str) -> Response:
        limit = settings.BATCH_UPSERT_MAX_PROFILES
        if not isinstance(request.data, list):
            raise serializers.ValidationError({"request": ["Expected a JSON array of profiles."]})
        if not 1 <= len(request.data) <= limit:
            raise serializers.ValidationError({"request": [f"Send 1 to {limit:,} profiles per request."]})
        serializer = CustomerProfileSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        result = services.customers_upsert(environment=self.environment, profiles=serializer.validated_data)
        return Response(envelope({"created": len(result.created), "updated": len(result.updated)}))


EventsEnvelope = envelope_schema(
    "EventsAnswer",
    inline_serializer(
        "EventsResult",
        {
            "accepted": serializers.IntegerField(help_text="Events stored."),
            "duplicates": serializers.IntegerField(help_text="Repeats of a messageId of the last 24 hours."),
        },
    ),
)


@extend_schema(tags=[CUSTOMERS])
class EventsApi(EnvironmentAPIView):
    allowed_roles = EVENTS

    @extend_schema(
        summary="Record custom events",
        description=(
            "A JSON array of 1 to 1,000 events, each at most 32 KiB. One invalid event refuses the "
            'whole request and stores nothing (`400 invalid_request`, errors keyed by index: "[3].name"). '
            "Answered 202 once the events are durable, also when every one was a duplicate."
        ),
        request=services.EventShape(many=True),
        responses=answers({202: EventsEnvelope}, body=True),
        extensions={ARRAY_BOUNDS: {"minItems": 1, "maxItems": services.MAX_EVENTS_PER_REQUEST}},
    )
    def post(self, request: Request, env: str) -> Response:
        result = services.events_record(environment=self.environment, events=request.data)
        return Response(
            envelope({"accepted": result.accepted, "duplicates": result.duplicates}), status=status.HTTP_202_ACCEPTED
        )


class TestUserSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    userId = StrictCharField(source="user_id", max_length=255)
    name = StrictCharField(max_length=255, required=False, allow_blank=True)


def _test_user_data(test_user: TestUser) -> Any:
    return TestUserSerializer(test_user).data


@extend_schema(tags=[CONFIG_TEST_USERS])
class TestUserListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: TestUserSerializer(many=True)}))
    def get(self, request: Request, env: str) -> Response:
        test_users = selectors.testuser_list(environment=self.environment)
        return Response(TestUserSerializer(test_users, many=True).data)

    @extend_schema(request=TestUserSerializer, responses=answers({201: TestUserSerializer}, body=True))
    def post(self, request: Request, env: str) -> Response:
        serializer = TestUserSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _refuse_taken_user_id(self.environment, serializer.validated_data["user_id"])
        test_user = services.testuser_create(environment=self.environment, **serializer.validated_data)
        return Response(_test_user_data(test_user), status=status.HTTP_201_CREATED)


@extend_schema(tags=[CONFIG_TEST_USERS])
class TestUserDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: TestUserSerializer}))
    def get(self, request: Request, env: str, test_user_id: int) -> Response:
        test_user = selectors.testuser_get(environment=self.environment, test_user_id=test_user_id)
        return Response(_test_user_data(test_user))

    @extend_schema(request=TestUserSerializer, responses=answers({200: TestUserSerializer}, body=True))
    def patch(self, request: Request, env: str, test_user_id: int) -> Response:
        test_user = selectors.testuser_get(environment=self.environment, test_user_id=test_user_id)
        serializer = TestUserSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        new_user_id = serializer.validated_data.get("user_id")
        if new_user_id is not None and new_user_id != test_user.user_id:
            _refuse_taken_user_id(self.environment, new_user_id)
        test_user = services.testuser_update(test_user=test_user, **serializer.validated_data)
        return Response(_test_user_data(test_user))

    @extend_schema(request=None, responses=answers({204: None}))
    def delete(self, request: Request, env: str, test_user_id: int) -> Response:
        test_user = selectors.testuser_get(environment=self.environment, test_user_id=test_user_id)
        services.testuser_delete(test_user=test_user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _refuse_taken_user_id(environment: Any, user_id: str) -> None:
    if user_id in selectors.testuser_ids(environment=environment):
        raise serializers.ValidationError({"userId": ["This userId is already a test user."]})
