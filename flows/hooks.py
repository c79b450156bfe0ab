"""What the flows app announces to apps above it (see workbench/hooks.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.hooks import Hook

flow_created = Hook(
    "flows.flow_created",
    "flow_created.announce(flow=Flow): a flow was created; the triggers app gives it its api trigger.",
)


@dataclass
class PublishReport:
    """What subscribers of `flow_published` add to the publish answer (SPEC section 5)."""

    # Customers already in the segments of the flow's `entered` triggers; None: no such trigger.
    existing_segment_members: int | None = None
    # How many of them were started (with triggerExistingSegmentMembers).
    existing_segment_members_started: int = 0
    # How many are started after the publish commits, in the background (too many to start
    # inside the publish's transaction).
    existing_segment_members_queued: int = 0


flow_published = Hook(
    "flows.flow_published",
    "flow_published.announce(flow=Flow, trigger_existing_segment_members=bool, report=PublishReport): "
    "a version was published (inside its transaction). The triggers app counts the customers already "
    "in the segments of the flow's `entered` triggers into `report`, and starts them when asked; the "
    "starts are sent once the publish commits.",
)


@dataclass(frozen=True)
class RecordedAnalyticsEvent:
    """One analytics event a run wrote (SPEC section 1 names), as subscribers see it."""

    environment_id: int
    name: str
    user_id: str
    flow_id: int
    flow_invocation_id: str
    test: bool
    occurred_at: datetime
    # The chain depth of the invocation whose run wrote it (the recursion guard).
    chain_depth: int
    properties: dict[str, Any] = field(default_factory=dict)


analytics_recorded = Hook(
    "flows.analytics_recorded",
    "analytics_recorded.announce(events=list[RecordedAnalyticsEvent]): runs wrote analytics events "
    "(flow-run-started, card-published, flow-run-completed, flow-run-failed), inside the transaction "
    "that executes them. The triggers app starts other flows' event triggers listening to those names.",
)


@dataclass(frozen=True)
class ExistingMembers:
    """Customers already in the segment of one of the flow's `entered` triggers."""

    segment_name: str
    members: int
    test_only: bool  # the trigger is in test mode: only test users among them would start


@dataclass
class PublishPreview:
    """What subscribers of `publish_previewed` add to the publish confirmation."""

    existing_segment_members: list[ExistingMembers] = field(default_factory=list)


publish_previewed = Hook(
    "flows.publish_previewed",
    "publish_previewed.announce(flow=Flow, preview=PublishPreview): the Workbench is about to ask "
    "whether to publish. The triggers app lists the segments of the flow's `entered` triggers with "
    "their current member counts, so the page can offer to start them too.",
)


@dataclass(frozen=True)
class TakenUpInvocation:
    """An accepted invocation the fan-out has just taken up, as subscribers see it."""

    environment_id: int
    flow_id: int
    flow_invocation_id: str
    test: bool
    source: str
    trigger_id: int | None
    accepted_at: datetime


invocations_taken_up = Hook(
    "flows.invocations_taken_up",
    "invocations_taken_up.announce(invocations=list[TakenUpInvocation]): the fan-out took up accepted "
    "invocations (inside its transaction, once per invocation). The triggers app records the "
    "`webhook-received` events of webhook starts here, so that a webhook's answer waits for two rows, "
    "not three.",
)
