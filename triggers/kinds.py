"""Every kind of trigger the product has, in one table: what the triggers tab lists and offers.

The triggers tab's "Add trigger" menu and its list read this table and nothing else, so a new
kind of trigger (segment, event, SFMC, Marketo) is one more row here, pointing at the page
that creates one:

    TriggerKind(TriggerType.SEGMENT, "Segment", "Starts the flow when ...", new_url_name="segment_trigger_new"),

`new_url_name` is a Workbench URL taking `(env, flow_id)`; a kind without one is built into
every flow (the API trigger) and is shown, never added.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import TriggerType


@dataclass(frozen=True)
class TriggerKind:
    type: TriggerType
    label: str
    description: str
    # The page that adds one to a flow; None: every flow has exactly one, built in.
    new_url_name: str | None = None

    @property
    def addable(self) -> bool:
        return self.new_url_name is not None


TRIGGER_KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        TriggerType.API,
        "API",
        "Your own systems start the flow with an API call. Built into every flow.",
    ),
    TriggerKind(
        TriggerType.WEBHOOK,
        "Webhook",
        "A URL that another system (a shop, a CRM, Stripe…) posts its events to; each request is mapped to a start.",
        new_url_name="flow_trigger_new_webhook",
    ),
    TriggerKind(
        TriggerType.SEGMENT,
        "Segment",
        "Starts the flow when a customer enters or leaves a segment, such as new VIPs or customers at risk.",
        new_url_name="flow_trigger_new_segment",
    ),
    TriggerKind(
        TriggerType.EVENT,
        "Event",
        "Starts the flow for each event your app sends (POST events) with that name, such as a purchase.",
        new_url_name="flow_trigger_new_event",
    ),
    TriggerKind(
        TriggerType.SFMC,
        "Salesforce Marketing Cloud",
        "A Journey Builder activity: each contact that reaches it in a journey starts the flow, "
        "once, even when Journey Builder retries.",
        new_url_name="flow_trigger_new_sfmc",
    ),
    TriggerKind(
        TriggerType.MARKETO,
        "Marketo",
        "A flow step for Marketo smart campaigns: each lead the campaign reaches starts the flow, "
        "and its result is written back to the lead's activity.",
        new_url_name="flow_trigger_new_marketo",
    ),
)

KINDS_BY_TYPE: dict[str, TriggerKind] = {kind.type.value: kind for kind in TRIGGER_KINDS}


def addable_kinds() -> list[TriggerKind]:
    return [kind for kind in TRIGGER_KINDS if kind.addable]


def kind_of(trigger_type: str) -> TriggerKind:
    """The kind of a stored trigger; a type without a row (not offered yet) still has a label."""
    kind = KINDS_BY_TYPE.get(trigger_type)
    if kind is None:
        return TriggerKind(TriggerType(trigger_type), TriggerType(trigger_type).label, "")
    return kind
