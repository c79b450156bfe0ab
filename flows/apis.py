"""Flows over the API: the configuration resource (role workbench), cards and invocations."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from workbench.api_base import EVENTS, WORKBENCH, EnvironmentAPIView, StrictSerializer, envelope, envelope_schema
from workbench.schema import ACTION_FLOWS, CONFIG_FLOWS, answers

from . import definitions, selectors, services
from .models import Card, Flow, FlowStatus, Invocation, InvocationStatus, Mode, RunStatus

FLOW_ARCHIVED = "flow_archived: an archived flow can no longer change."
NOTHING_TO_PUBLISH = (
    "nothing_to_publish: the draft is the same as the latest published version; change it before publishing."
)


# The definition's shape is declared once, by the serializers that validate it
# (flows.definitions); the API passes variables and steps to the service, which runs them.


@extend_schema_field(definitions.VariablesField())
class VariablesField(serializers.JSONField):
    """Validated by flows.definitions.VariablesField."""


@extend_schema_field(definitions.StepsField())
class StepsField(serializers.JSONField):
    """Validated by flows.definitions.StepsField (and placeholders against the variables)."""


class FlowSerializer(StrictSerializer):
    """A flow as the configuration API shows it; variables and steps are the draft."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(choices=FlowStatus.choices, read_only=True)
    variables = VariablesField(required=False)
    steps = StepsField(required=False)
    publishedVersion = serializers.IntegerField(source="published_version", read_only=True, allow_null=True)

    def to_representation(self, flow: Flow) -> dict[str, Any]:
        return {
            "id": flow.pk,
            "name": flow.name,
            "status": flow.status,
            "variables": flow.draft.get("variables", []),
            "steps": flow.draft.get("steps", []),
            "publishedVersion": flow.published_version,
        }


class PublishSerializer(StrictSerializer):
    triggerExistingSegmentMembers = serializers.BooleanField(required=False, default=False)


@extend_schema(tags=[CONFIG_FLOWS])
class FlowListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: FlowSerializer(many=True)}))
    def get(self, request: Request, env: str) -> Response:
        flows = selectors.flow_list(environment=self.environment)
        return Response([FlowSerializer().to_representation(flow) for flow in flows])

    @extend_schema(request=FlowSerializer, responses=answers({201: FlowSerializer}, body=True))
    def post(self, request: Request, env: str) -> Response:
        serializer = FlowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flow = services.flow_create(
            environment=self.environment,
            name=data["name"],
            variables=data.get("variables"),
            steps=data.get("steps"),
        )
        return Response(FlowSerializer().to_representation(flow), status=status.HTTP_201_CREATED)


@extend_schema(tags=[CONFIG_FLOWS])
class FlowDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: FlowSerializer}))
    def get(self, request: Request, env: str, flow_id: int) -> Response:
        flow = selectors.flow_get(environment=self.environment, flow_id=flow_id)
        return Response(FlowSerializer().to_representation(flow))

    @extend_schema(request=FlowSerializer, responses=answers({200: FlowSerializer}, {409: FLOW_ARCHIVED}, body=True))
    def patch(self, request: Request, env: str, flow_id: int) -> Response:
        flow = selectors.flow_get(environment=self.environment, flow_id=flow_id)
        serializer = FlowSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flow = services.flow_update(
            flow=flow, name=data.get("name"), variables=data.get("variables"), steps=data.get("steps")
        )
        return Response(FlowSerializer().to_representation(flow))

    @extend_schema(request=None, responses=answers({204: None}))
    def delete(self, request: Request, env: str, flow_id: int) -> Response:
        flow = selectors.flow_get(environment=self.environment, flow_id=flow_id)
        services.flow_delete(flow=flow)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=[CONFIG_FLOWS])
class FlowPublishApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(
        request=PublishSerializer,
        responses=answers(
            {200: FlowSerializer},
            {400: "a draft without steps.", 409: f"{FLOW_ARCHIVED} {NOTHING_TO_PUBLISH}"},
            body=True,
        ),
    )
    def post(self, request: Request, env: str, flow_id: int) -> Response:
        flow = selectors.flow_get(environment=self.environment, flow_id=flow_id)
        # No body means the defaults; a body that is no object is refused, not ignored.
        serializer = PublishSerializer(data=request.data if request.stream is not None else {})
        serializer.is_valid(raise_exception=True)
        result = services.flow_publish(
            flow=flow, trigger_existing_segment_members=serializer.validated_data["triggerExistingSegmentMembers"]
        )
        answer = FlowSerializer().to_representation(result.flow)
        if result.existing_segment_members is not None:
            answer["existingSegmentMembers"] = result.existing_segment_members
        return Response(answer)


@extend_schema(tags=[CONFIG_FLOWS])
class FlowArchiveApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(request=None, responses=answers({200: FlowSerializer}))
    def post(self, request: Request, env: str, flow_id: int) -> Response:
        flow = selectors.flow_get(environment=self.environment, flow_id=flow_id)
        return Response(FlowSerializer().to_representation(services.flow_archive(flow=flow)))


class CardSerializer(serializers.Serializer):
    """A card as feeds show it. (Unsafe button URLs were already left out at delivery.)"""

    id = serializers.IntegerField()
    flowId = serializers.IntegerField(source="flow_id")
    flowInvocationId = serializers.CharField(source="flow_invocation_id")
    userId = serializers.CharField(source="user_id")
    title = serializers.CharField()
    body = serializers.CharField()
    actions = serializers.JSONField()
    test = serializers.BooleanField()
    publishedAt = serializers.DateTimeField(source="published_at")


def card_json(card: Card) -> dict[str, Any]:
    return dict(CardSerializer(card).data)


def invocation_json(invocation: Invocation) -> dict[str, Any]:
    return {
        "flowInvocationId": invocation.flow_invocation_id,
        "flowId": invocation.flow_id,
        "mode": invocation.mode,
        "source": invocation.source,
        "status": invocation.status,
        "targetUserIds": invocation.target_user_ids,
        "ignoredUserIds": invocation.ignored_user_ids,
        "runs": [
            {"userId": run.user_id, "status": run.status, **({"error": run.error} if run.error else {})}
            for run in invocation.runs.all()
        ],
        "cards": [card_json(card) for card in invocation.cards.all()],
    }


class RunSchema(serializers.Serializer):
    userId = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    error = serializers.CharField(required=False)


class InvocationSchema(serializers.Serializer):
    """An invocation as invocation_json shows it."""

    flowInvocationId = serializers.CharField()
    flowId = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=Mode.choices)
    source = serializers.CharField()  # type: ignore[assignment]  # a payload field, not Field.source
    status = serializers.ChoiceField(choices=InvocationStatus.choices)
    targetUserIds = serializers.ListField(child=serializers.CharField())
    ignoredUserIds = serializers.ListField(child=serializers.CharField())
    runs = RunSchema(many=True)
    cards = CardSerializer(many=True)


@extend_schema(tags=[ACTION_FLOWS])
class UserCardsApi(EnvironmentAPIView):
    allowed_roles = EVENTS

    @extend_schema(
        parameters=[OpenApiParameter("test", bool, description="Only test (true) or live (false) cards")],
        responses=answers({200: envelope_schema("CardFeed", CardSerializer(many=True))}),
    )
    def get(self, request: Request, env: str, user_id: str) -> Response:
        test = _optional_bool(request.query_params.get("test"))
        cards = selectors.card_feed(environment=self.environment, user_id=user_id, test=test)[:200]
        return Response(envelope([card_json(card) for card in cards]))


@extend_schema(tags=[ACTION_FLOWS])
class InvocationApi(EnvironmentAPIView):
    allowed_roles = EVENTS
    read_roles = EVENTS + WORKBENCH

    @extend_schema(responses=answers({200: envelope_schema("Invocations", InvocationSchema(many=True))}))
    def get(self, request: Request, env: str, flow_invocation_id: str) -> Response:
        invocations = selectors.invocations_by_key(environment=self.environment, flow_invocation_id=flow_invocation_id)
        data = [invocation_json(invocation) for invocation in invocations]
        if not data:
            return Response({"detail": "No invocation with that flowInvocationId.", "code": "not_found"}, status=404)
        return Response(envelope(data))


def _optional_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise serializers.ValidationError({"test": ["Use true or false."]})


# --- GET analytics-events (SPEC section 3) ----------------------------------------------------


class AnalyticsEventQuery(serializers.Serializer):
    """The filters and the page of GET analytics-events."""

    name = serializers.CharField(required=False, max_length=255, trim_whitespace=False)
    userId = serializers.CharField(required=False, max_length=255, trim_whitespace=False)
    flowId = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    flowInvocationId = serializers.CharField(required=False, max_length=255, trim_whitespace=False)
    test = serializers.ChoiceField(choices=["true", "false"], required=False)
    since = serializers.DateTimeField(required=False, help_text="Events that occurred at or after this time.")
    cursor = serializers.CharField(
        required=False,
        help_text="The `next` link's cursor (an invalid one is answered 404, as a page that is not there).",
    )
    pageSize = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


def _position(cursor: str) -> selectors.AnalyticsEventPosition:
    """The position a `next` link's cursor names; 404 for anything else, as DRF's cursor pagination answers."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, source, pk = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        occurred_at = datetime.fromisoformat(moment)
        known = source in (selectors.FLOW_EVENTS, selectors.CUSTOM_EVENTS)
        if not known or type(pk) is not int or occurred_at.tzinfo is None:
            raise ValueError(source)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise exceptions.NotFound("Invalid cursor: use the `next` link as it is.") from None
    return selectors.AnalyticsEventPosition(occurred_at, source, pk)


def _cursor(position: selectors.AnalyticsEventPosition) -> str:
    raw = json.dumps([position.occurred_at.isoformat(), position.source, position.pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class AnalyticsEventSerializer(serializers.Serializer):
    id = serializers.CharField(help_text='Opaque: "f<n>" for a flow\'s events, "c<n>" for custom events.')
    name = serializers.CharField()
    userId = serializers.CharField(source="user_id")
    flowId = serializers.IntegerField(source="flow_id", allow_null=True)
    flowInvocationId = serializers.CharField(source="flow_invocation_id", allow_blank=True)
    test = serializers.BooleanField()
    properties = serializers.DictField()
    occurredAt = serializers.DateTimeField(source="occurred_at")


AnalyticsEventPage = inline_serializer(
    "AnalyticsEventPage",
    {
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null after the last one."),
        "results": AnalyticsEventSerializer(many=True),
    },
)


@extend_schema(tags=[CONFIG_FLOWS])
class AnalyticsEventListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(
        summary="List analytics events",
        description=(
            "Flows' analytics events and the custom events of the Events API, newest first, "
            "in pages linked by `next` (a cursor: pages do not shift as new events arrive)."
        ),
        parameters=[AnalyticsEventQuery],
        responses=answers({200: AnalyticsEventPage}),
    )
    def get(self, request: Request, env: str) -> Response:
        query = AnalyticsEventQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        test = given.get("test")
        filters = selectors.AnalyticsEventFilters(
            name=given.get("name"),
            user_id=given.get("userId"),
            flow_id=given.get("flowId"),
            flow_invocation_id=given.get("flowInvocationId"),
            test=None if test is None else test == "true",
            since=given.get("since"),
        )
        cursor = given.get("cursor")
        items, more = selectors.analytics_event_page(
            environment=self.environment,
            filters=filters,
            after=None if cursor is None else _position(cursor),
            limit=given["pageSize"],
        )
        next_url = None
        if more:
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", _cursor(items[-1].position))
        return Response({"next": next_url, "results": AnalyticsEventSerializer(items, many=True).data})
