"""What the flows app announces to apps above it (see workbench/hooks.py)."""

from __future__ import annotations

from workbench.hooks import Hook

flow_created = Hook(
    "flows.flow_created",
    "flow_created.announce(flow=Flow): a flow was created; the triggers app gives it its api trigger.",
)
