"""What the flows app announces to apps above it (see workbench/hooks.py)."""

from __future__ import annotations

from dataclasses import dataclass

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


flow_published = Hook(
    "flows.flow_published",
    "flow_published.announce(flow=Flow, trigger_existing_segment_members=bool, report=PublishReport): "
    "a version was published (inside its transaction). The triggers app counts the customers already "
    "in the segments of the flow's `entered` triggers into `report`, and starts them when asked; the "
    "starts are sent once the publish commits.",
)
