"""The API trigger (starting flows over HTTP) and the triggers configuration resource."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows import selectors as flow_selectors
from flows import services as flow_services
from flows.models import Mode
from workbench.api_base import EVENTS, WORKBENCH, EnvironmentAPIView, envelope, envelope_schema

from . import selectors, services
from .models import Trigger, TriggerType

StartAnswer = envelope_schema(
    "StartAnswer",
    serializers.DictField(help_text='{"invocations": [{flowInvocationId, status, targetCount, ignoredUserIds}]}'),
)


class ActionFlowStartApi(EnvironmentAPIView):
    """POST action-flow/{flowId}/start (live) and /test: accept a start request (SPEC section 2)."""

    allowed_roles = EVENTS
    mode: str = Mode.LIVE

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: StartAnswer, 200: StartAnswer})
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        trigger = selectors.api_trigger_of(flow=flow)
        result = flow_services.invocations_accept(
            flow=flow,
            mode=self.mode,
            body=request.data,
            source=TriggerType.API,
            trigger_id=trigger.pk if trigger else None,
        )
        answer = envelope({"invocations": [outcome.as_json() for outcome in result.outcomes]})
        return Response(answer, status=status.HTTP_202_ACCEPTED if result.any_accepted else status.HTTP_200_OK)


class ActionFlowTestApi(ActionFlowStartApi):
    mode = Mode.TEST


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
    return data


class FlowTriggerListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        triggers = selectors.trigger_list(flow=flow).select_related("environment")
        return Response([trigger_json(trigger, request) for trigger in triggers])


class TriggerDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        return Response(trigger_json(trigger, request))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        services.trigger_delete(trigger=trigger)
        return Response(status=status.HTTP_204_NO_CONTENT)
