"""What the segments app announces to apps above it (see workbench/hooks.py)."""

from __future__ import annotations

from workbench.hooks import Hook

segment_deleting = Hook(
    "segments.segment_deleting",
    "segment_deleting.announce(segment=Segment, users=list[str]): a member asked to delete a segment. "
    "Subscribers add what still uses it (the triggers app: its segment triggers, as \"trigger 'name' of "
    "flow 'name'\"); the delete is refused while anything does.",
)
