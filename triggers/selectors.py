"""Reads for triggers, scoped to one environment."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from flows.models import Flow
from workbench.models import Environment

from .models import HeldState, Trigger, TriggerMode, TriggerModeChange, TriggerType, WebhookRequest


def trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow).order_by("id")


def _request_count(requests: QuerySet[WebhookRequest]) -> Coalesce:
    """A per-trigger count as a subquery, so each count uses its own index of the request log
    (a join would read every logged request of the trigger once for all of them)."""
    counted = requests.filter(trigger=OuterRef("pk")).order_by().values("trigger").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def trigger_overview_list(*, flow: Flow, since: datetime) -> QuerySet[Trigger]:
    """The flow's triggers for its triggers tab, API first, each with its state at a glance:
    `requests_since` (requests logged since `since`), `held` (held requests), and the newest
    request's `last_request_at`, `last_outcome` and `last_status` (None without requests)."""
    latest = WebhookRequest.objects.filter(trigger=OuterRef("pk")).order_by("-received_at", "-id")
    return (
        Trigger.objects.filter(flow=flow)
        .select_related("environment")
        .annotate(
            requests_since=_request_count(WebhookRequest.objects.filter(received_at__gte=since)),
            held=_request_count(WebhookRequest.objects.filter(held_state=HeldState.HELD)),
            last_request_at=Subquery(latest.values("received_at")[:1]),
            last_outcome=Subquery(latest.values("outcome")[:1]),
            last_status=Subquery(latest.values("status_code")[:1]),
        )
        .order_by("id")
    )


def live_trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    """The flow's triggers a member switched to live (the API trigger's mode is per request)."""
    return Trigger.objects.filter(flow=flow, mode=TriggerMode.LIVE).exclude(type=TriggerType.API).order_by("id")


def paused_trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow, mode=TriggerMode.PAUSED).order_by("id")


def trigger_get(*, environment: Environment, trigger_id: int) -> Trigger:
    trigger = Trigger.objects.filter(environment=environment, pk=trigger_id).select_related("flow").first()
    if trigger is None:
        raise Http404("No such trigger")
    return trigger


def webhook_request_list(*, trigger: Trigger) -> QuerySet[WebhookRequest]:
    """The trigger's request log, newest first."""
    return WebhookRequest.objects.filter(trigger=trigger).order_by("-received_at", "-id")


def webhook_request_get(*, trigger: Trigger, request_id: int) -> WebhookRequest:
    logged = WebhookRequest.objects.filter(trigger=trigger, pk=request_id).first()
    if logged is None:
        raise Http404("No such request")
    return logged


def held_count(*, trigger: Trigger) -> int:
    return WebhookRequest.objects.filter(trigger=trigger, held_state=HeldState.HELD).count()


def mode_change_list(*, trigger: Trigger) -> QuerySet[TriggerModeChange]:
    return TriggerModeChange.objects.filter(trigger=trigger).select_related("changed_by").order_by("-changed_at", "-id")
