"""Reads for triggers, scoped to one environment."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from flows.models import Flow
from workbench.models import Environment

from .models import HeldState, Trigger, TriggerModeChange, WebhookRequest


def trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow).order_by("id")


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
