"""Segments over the configuration API (role workbench, SPEC sections 3 and 5).

Thin edges: the serializers declare the request's shape, `segments.rules.rules_clean` (called
by the services, or here before a preview) checks the rules and keys its errors by the
condition's path, and the answers are DRF's usual shapes, without a `data` envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from django.db.models import Q
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from workbench.api_base import WORKBENCH, EnvironmentAPIView, StrictSerializer
from workbench.schema import BODY_REQUIRED, CONFIG_SEGMENTS, answers
from workbench.shapes import Text

from . import rules_schema, selectors, services
from .models import Segment, SegmentMembership, SegmentStatus
from .rules import rules_clean

SEGMENT_IN_USE = "segment_in_use: a trigger or another segment's rules use this segment."
SAMPLE_SIZE = 20


class RulesField(serializers.JSONField):
    """Validated by segments.rules.rules_clean (errors keyed "rules.conditions[2].op")."""


class RulesFieldExtension(OpenApiSerializerFieldExtension):
    """The rules' shape (segments.rules_schema), with the components it refers to."""

    target_class = RulesField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return rules_schema.with_components(auto_schema, rules_schema.RULES)


class SegmentSerializer(StrictSerializer):
    """A segment as the configuration API shows it (SPEC section 5)."""

    id = serializers.IntegerField(read_only=True)
    name = Text(max_length=200)
    rules = RulesField()
    memberCount = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(
        choices=SegmentStatus.choices,
        read_only=True,
        help_text="computing while a full evaluation runs; failed with lastError.",
    )
    lastComputedAt = serializers.DateTimeField(read_only=True, allow_null=True)
    lastError = serializers.CharField(read_only=True, allow_null=True)

    def to_representation(self, segment: Segment) -> dict[str, Any]:
        return segment_json(segment)


def segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.pk,
        "name": segment.name,
        "rules": segment.rules,
        "memberCount": segment.member_count,
        "status": segment.status,
        "lastComputedAt": serializers.DateTimeField().to_representation(segment.last_computed_at)
        if segment.last_computed_at
        else None,
        "lastError": segment.last_error or None,
    }


class RulesRequest(StrictSerializer):
    rules = RulesField()


class MemberSerializer(serializers.Serializer):
    userId = serializers.CharField(source="user_id")
    enteredAt = serializers.DateTimeField(source="entered_at")


class MembersQuery(StrictSerializer):
    """The members list's query, paged as the API's other long lists (analytics-events): by a
    keyset cursor in the `next` link, so pages do not shift as customers enter and exit."""

    cursor = serializers.CharField(required=False, help_text="The `next` link's cursor: the page after the last one.")
    pageSize = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    search = serializers.CharField(required=False, allow_blank=True, max_length=255, help_text="Part of a userId.")

    def validate_cursor(self, value: str) -> tuple[datetime, int]:
        try:
            padded = value + "=" * (-len(value) % 4)
            moment, pk = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            entered_at = datetime.fromisoformat(moment)
            if type(pk) is not int or entered_at.tzinfo is None:
                raise ValueError(pk)
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            raise serializers.ValidationError("Not a cursor of this list: use the `next` link as it is.") from None
        return entered_at, pk


def _members_cursor(member: SegmentMembership) -> str:
    raw = json.dumps([member.entered_at.isoformat(), member.pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


MembersPage = inline_serializer(
    "SegmentMembersPage",
    {
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null after the last one."),
        "results": MemberSerializer(many=True),
    },
)
PreviewAnswer = inline_serializer(
    "SegmentPreview",
    {
        "count": serializers.IntegerField(help_text="Customers matching the rules now."),
        "sample": serializers.ListField(child=serializers.CharField(), help_text="Up to 20 of their userIds."),
    },
)
DryRunAnswer = inline_serializer(
    "SegmentDryRun",
    {
        "enter": serializers.IntegerField(help_text="Customers who would enter."),
        "exit": serializers.IntegerField(help_text="Members who would exit."),
        "stay": serializers.IntegerField(help_text="Members who would stay."),
        "sample": inline_serializer(
            "SegmentDryRunSample",
            {
                "enter": serializers.ListField(child=serializers.CharField()),
                "exit": serializers.ListField(child=serializers.CharField()),
            },
        ),
    },
)
RULES_REFUSED = {400: "invalid_request: rules with an unknown field, op or value type, keyed by the condition's path."}


def _cleaned_rules(request: Request, environment_id: int, segment_id: int | None = None) -> dict[str, Any]:
    serializer = RulesRequest(data=request.data)
    serializer.is_valid(raise_exception=True)
    return rules_clean(serializer.validated_data["rules"], environment_id=environment_id, segment_id=segment_id)


@extend_schema(tags=[CONFIG_SEGMENTS])
class SegmentListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: SegmentSerializer(many=True)}))
    def get(self, request: Request, env: str) -> Response:
        return Response([segment_json(segment) for segment in selectors.segment_list(environment=self.environment)])

    @extend_schema(
        request=SegmentSerializer,
        responses=answers({201: SegmentSerializer}, RULES_REFUSED, body=True),
        description="Creates the segment and evaluates it fully in the background (status computing until done).",
    )
    def post(self, request: Request, env: str) -> Response:
        serializer = SegmentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = services.segment_create(environment=self.environment, name=data["name"], rules=data["rules"])
        return Response(segment_json(segment), status=status.HTTP_201_CREATED)


@extend_schema(tags=[CONFIG_SEGMENTS])
class SegmentDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: SegmentSerializer}))
    def get(self, request: Request, env: str, segment_id: int) -> Response:
        return Response(segment_json(selectors.segment_get(environment=self.environment, segment_id=segment_id)))

    @extend_schema(
        request=SegmentSerializer,
        responses=answers({200: SegmentSerializer}, RULES_REFUSED, body=True),
        description="New rules are evaluated fully in the background: members that no longer match exit, "
        "new matches enter, those who stay emit nothing.",
    )
    def patch(self, request: Request, env: str, segment_id: int) -> Response:
        segment = selectors.segment_get(environment=self.environment, segment_id=segment_id)
        serializer = SegmentSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = services.segment_update(segment=segment, name=data.get("name"), rules=data.get("rules"))
        return Response(segment_json(segment))

    @extend_schema(request=None, responses=answers({204: None}, {409: SEGMENT_IN_USE}))
    def delete(self, request: Request, env: str, segment_id: int) -> Response:
        segment = selectors.segment_get(environment=self.environment, segment_id=segment_id)
        services.segment_delete(segment=segment)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=[CONFIG_SEGMENTS])
class SegmentMembersApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(
        parameters=[MembersQuery],
        responses=answers({200: MembersPage}),
        description="The current members, newest entry first, in pages linked by `next`.",
    )
    def get(self, request: Request, env: str, segment_id: int) -> Response:
        segment = selectors.segment_get(environment=self.environment, segment_id=segment_id)
        query = MembersQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        given = query.validated_data
        members = selectors.segment_members(segment=segment, search=given.get("search", ""))
        if "cursor" in given:
            # segment_members orders by (-entered_at, -id): the page after the cursor's row.
            entered_at, pk = given["cursor"]
            members = members.filter(Q(entered_at__lt=entered_at) | Q(entered_at=entered_at, id__lt=pk))
        page = list(members[: given["pageSize"] + 1])
        next_url = None
        if len(page) > given["pageSize"]:
            page = page[: given["pageSize"]]
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", _members_cursor(page[-1]))
        return Response({"next": next_url, "results": MemberSerializer(page, many=True).data})


@extend_schema(tags=[CONFIG_SEGMENTS])
class SegmentPreviewApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(
        request=RulesRequest,
        responses=answers({200: PreviewAnswer}, RULES_REFUSED, body=True),
        operation_id="segments_preview",
        description="How many customers match unsaved rules, and a sample of them; nothing is saved.",
        extensions={BODY_REQUIRED: True},
    )
    def post(self, request: Request, env: str) -> Response:
        rules = _cleaned_rules(request, self.environment.pk)
        preview = selectors.matching_count_and_sample(
            environment=self.environment, rules=rules, sample_size=SAMPLE_SIZE
        )
        return Response({"count": preview.count, "sample": list(preview.sample)})


@extend_schema(tags=[CONFIG_SEGMENTS])
class SegmentDryRunApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(
        request=RulesRequest,
        responses=answers({200: DryRunAnswer}, RULES_REFUSED, body=True),
        operation_id="segments_dry_run",
        description="Who would enter, exit and stay if these rules were saved; nothing is saved.",
        extensions={BODY_REQUIRED: True},
    )
    def post(self, request: Request, env: str, segment_id: int) -> Response:
        segment = selectors.segment_get(environment=self.environment, segment_id=segment_id)
        rules = _cleaned_rules(request, self.environment.pk, segment.pk)
        dry_run = selectors.segment_dry_run(segment=segment, rules=rules, sample_size=SAMPLE_SIZE)
        return Response(
            {
                "enter": dry_run.enter,
                "exit": dry_run.exit,
                "stay": dry_run.stay,
                "sample": {"enter": list(dry_run.sample_enter), "exit": list(dry_run.sample_exit)},
            }
        )
