"""The API trigger (starting flows over HTTP) and the triggers configuration resource."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows import selectors as flow_selectors
from flows import services as flow_services
from flows.models import Flow, Mode
from workbench.api_base import EVENTS, WORKBENCH, EnvironmentAPIView, StrictSerializer, envelope, envelope_schema

from . import intake, selectors, services
from .mapping import mappable_properties
from .models import Trigger, TriggerMode, TriggerType, WebhookRequest

StartAnswer = envelope_schema(
    "StartAnswer",
    serializers.DictField(help_text='{"invocations": [{flowInvocationId, status, targetCount, ignoredUserIds}]}'),
)


@cache
def _api_trigger_id_column() -> tuple[tuple[str, str], ...]:
    """The flow's api trigger id (one per flow, a unique constraint), as an extra column of
    the start's flow statement: `flow_for_start` reads it with the flow, in the same query."""
    quote = connection.ops.quote_name
    meta = Trigger._meta
    sql = (
        f"SELECT t.{quote(meta.pk.column)} FROM {quote(meta.db_table)} t "  # noqa: S608
        f"WHERE t.{quote(meta.get_field('flow').column)} = f.{quote(Flow._meta.pk.column)} "
        f"AND t.{quote(meta.get_field('type').column)} = '{TriggerType.API.value}'"
    )
    return (("api_trigger_id", sql),)


class ActionFlowStartApi(EnvironmentAPIView):
    """POST action-flow/{flowId}/start (live) and /test: accept a start request (SPEC section 2)."""

    allowed_roles = EVENTS
    mode: str = Mode.LIVE

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: StartAnswer, 200: StartAnswer})
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        # One query: the flow, its latest version and its api trigger's id.
        flow = flow_selectors.flow_for_start(
            environment=self.environment, flow_id=flow_id, extra_columns=_api_trigger_id_column()
        )
        result = flow_services.invocations_accept(
            flow=flow,
            mode=self.mode,
            body=request.data,
            source=TriggerType.API,
            trigger_id=flow.api_trigger_id,  # type: ignore[attr-defined]
        )
        answer = envelope({"invocations": [outcome.as_json() for outcome in result.outcomes]})
        return Response(answer, status=status.HTTP_202_ACCEPTED if result.any_accepted else status.HTTP_200_OK)


class ActionFlowTestApi(ActionFlowStartApi):
    mode = Mode.TEST


def _masked_security(security: dict[str, Any]) -> dict[str, Any]:
    """The security settings as the API shows them: the signing secret never leaves."""
    signature = security.get("signature")
    return {
        "allowedIps": security.get("allowedIps", []),
        "signature": {**signature, "secret": services.SECRET_MASK} if signature else None,
    }


def trigger_json(trigger: Trigger, request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": trigger.pk,
        "flowId": trigger.flow_id,
        "type": trigger.type,
        "mode": trigger.mode,
        "pausedReason": trigger.paused_reason or None,
        "url": None,
    }
    if trigger.type == TriggerType.API:
        base = f"/api/v1/{trigger.environment.slug}/action-flow/{trigger.flow_id}"
        data["startUrl"] = request.build_absolute_uri(f"{base}/start")
        data["testUrl"] = request.build_absolute_uri(f"{base}/test")
    elif trigger.type == TriggerType.WEBHOOK:
        config = trigger.config
        data.update(
            url=request.build_absolute_uri(f"/hooks/{trigger.token}"),
            sample=trigger.sample,
            mapping=config.get("mapping", services.DEFAULT_MAPPING),
            shapeCheck=config.get("shapeCheck", False),
            security=_masked_security(config.get("security") or {}),
            captureArmedUntil=trigger.capture_until,
            heldRequests=selectors.held_count(trigger=trigger),
        )
    return data


class WebhookTriggerSerializer(StrictSerializer):
    """A webhook trigger's writable fields (SPEC section 4)."""

    type = serializers.ChoiceField(choices=[TriggerType.WEBHOOK.value], required=False)
    mode = serializers.ChoiceField(choices=[m.value for m in services.MEMBER_MODES], required=False)
    sample = serializers.JSONField(required=False, allow_null=True)
    mapping = serializers.JSONField(required=False)
    shapeCheck = serializers.BooleanField(required=False)
    security = serializers.JSONField(required=False)


def _webhook_changes(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "mapping": data.get("mapping"),
        "shape_check": data.get("shapeCheck"),
        "security": data.get("security"),
    }


class FlowTriggerListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        triggers = selectors.trigger_list(flow=flow).select_related("environment")
        return Response([trigger_json(trigger, request) for trigger in triggers])

    @extend_schema(request=WebhookTriggerSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        serializer = WebhookTriggerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("type") != TriggerType.WEBHOOK:
            raise serializers.ValidationError({"type": ["Create webhook triggers here (type: webhook)."]})
        with transaction.atomic():
            trigger = services.webhook_trigger_create(flow=flow, sample=data.get("sample"), **_webhook_changes(data))
            if data.get("mode", TriggerMode.TEST) != TriggerMode.TEST:
                services.trigger_mode_set(trigger=trigger, mode=data["mode"])
        return Response(trigger_json(trigger, request), status=status.HTTP_201_CREATED)


class TriggerDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        return Response(trigger_json(trigger, request))

    @extend_schema(request=WebhookTriggerSerializer, responses=OpenApiTypes.OBJECT)
    def patch(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        serializer = WebhookTriggerSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if trigger.type != TriggerType.WEBHOOK:
            if set(data) - {"mode"}:
                raise serializers.ValidationError({"request": ["Only webhook triggers are configured here."]})
            services.trigger_mode_set(trigger=trigger, mode=data.get("mode", trigger.mode))
        else:
            services.webhook_trigger_update(
                trigger=trigger,
                sample=data.get("sample"),
                sample_given="sample" in data,
                mode=data.get("mode"),
                **_webhook_changes(data),
            )
        return Response(
            trigger_json(selectors.trigger_get(environment=self.environment, trigger_id=trigger_id), request)
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        services.trigger_delete(trigger=trigger)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookActionApi(EnvironmentAPIView):
    """Base of the webhook trigger actions: the trigger, which must be a webhook."""

    allowed_roles = WORKBENCH

    def webhook(self, trigger_id: int) -> Trigger:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        if trigger.type != TriggerType.WEBHOOK:
            raise services.TriggerRefused(409, "not_a_webhook", "Only webhook triggers have this action.")
        return trigger


def _answer(answer: intake.Answer) -> Response:
    return Response(answer.body, status=answer.status)


class CaptureSampleApi(WebhookActionApi):
    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = services.trigger_capture_arm(trigger=self.webhook(trigger_id))
        return Response({"status": "armed", "captureArmedUntil": trigger.capture_until}, status=202)


class PreviewSerializer(StrictSerializer):
    payload = serializers.JSONField(required=False, allow_null=True)
    mapping = serializers.JSONField(required=False)


class PreviewApi(WebhookActionApi):
    @extend_schema(request=PreviewSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.webhook(trigger_id)
        serializer = PreviewSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        preview = intake.mapping_preview(
            trigger=trigger, payload=data.get("payload"), payload_given="payload" in data, mapping=data.get("mapping")
        )
        return Response(preview)


class MappablePropertiesApi(WebhookActionApi):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.webhook(trigger_id)
        sample = trigger.sample
        return Response({"properties": mappable_properties(sample) if sample is not None else []})


class SendTestApi(WebhookActionApi):
    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        return _answer(intake.send_test(trigger=self.webhook(trigger_id)))


class ReactivateApi(WebhookActionApi):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = services.trigger_reactivate(trigger=self.webhook(trigger_id))
        return Response(trigger_json(trigger, request))


def request_log_json(logged: WebhookRequest) -> dict[str, Any]:
    return {
        "id": logged.pk,
        "receivedAt": logged.received_at,
        "sourceIp": logged.source_ip,
        "method": logged.method,
        "outcome": logged.outcome,
        "statusCode": logged.status_code,
        "code": logged.code or None,
        "detail": logged.detail or None,
        "flowInvocationId": logged.flow_invocation_id or None,
        "held": logged.held_state or None,
        "replayOf": logged.replay_of_id,
    }


class RequestLogApi(WebhookActionApi):
    @extend_schema(operation_id="triggers_requests_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.webhook(trigger_id)
        entries = selectors.webhook_request_list(trigger=trigger)[:200]
        return Response([request_log_json(logged) for logged in entries])


class RequestDetailApi(WebhookActionApi):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, trigger_id: int, request_id: int) -> Response:
        logged = selectors.webhook_request_get(trigger=self.webhook(trigger_id), request_id=request_id)
        detail = request_log_json(logged)
        detail.update(headers=logged.headers, query=logged.query, body=logged.body, errors=logged.errors)
        return Response(detail)


class RequestReplayApi(WebhookActionApi):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, env: str, trigger_id: int, request_id: int) -> Response:
        trigger = self.webhook(trigger_id)
        logged = selectors.webhook_request_get(trigger=trigger, request_id=request_id)
        return _answer(intake.request_replay(trigger=trigger, logged=logged))


class HeldReplayApi(WebhookActionApi):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        results = intake.held_replay(trigger=self.webhook(trigger_id))
        return Response({"replayed": [{"id": r.request_id, "statusCode": r.status, "answer": r.body} for r in results]})


class HeldDiscardApi(WebhookActionApi):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        return Response({"discarded": intake.held_discard(trigger=self.webhook(trigger_id))})
