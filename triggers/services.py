"""Writes for triggers."""

from __future__ import annotations

from django.db import transaction

from flows.models import Flow
from workbench.errors import Refused

from .models import Trigger, TriggerMode, TriggerType


class TriggerRefused(Refused):
    """A refusal of a trigger operation, raised before anything is written."""


def api_trigger_ensure(*, flow: Flow) -> Trigger:
    """Give a flow its api trigger (subscribed to flows' `flow_created`); idempotent."""
    trigger, _ = Trigger.objects.get_or_create(
        flow=flow,
        type=TriggerType.API,
        defaults={"environment_id": flow.environment_id, "mode": TriggerMode.LIVE},
    )
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    if trigger.type == TriggerType.API:
        raise TriggerRefused(409, "api_trigger_required", "Every flow keeps its API trigger; it cannot be removed.")
    if trigger.mode != TriggerMode.DISABLED:
        raise TriggerRefused(409, "trigger_not_disabled", "Disable the trigger before deleting it.")
    with transaction.atomic():
        trigger.delete()
