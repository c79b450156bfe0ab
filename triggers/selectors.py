"""Reads for triggers, scoped to one environment."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from flows.models import Flow
from workbench.models import Environment

from .models import Trigger, TriggerType


def trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow).order_by("id")


def trigger_get(*, environment: Environment, trigger_id: int) -> Trigger:
    trigger = Trigger.objects.filter(environment=environment, pk=trigger_id).select_related("flow").first()
    if trigger is None:
        raise Http404("No such trigger")
    return trigger


def api_trigger_of(*, flow: Flow) -> Trigger | None:
    return Trigger.objects.filter(flow=flow, type=TriggerType.API).first()
