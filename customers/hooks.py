"""What the customers app announces to apps above it (see workbench/hooks.py).

customers sits below segments, flows and triggers, so it never imports them. When customer data
changes, or an event is recorded, or (declared here because both flows and triggers listen and
neither may import segments) a customer enters or leaves a segment, the news goes out on one of
these hooks. Subscribers run inside the announcer's transaction: what they write commits or
rolls back with the change itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.hooks import Hook


@dataclass(frozen=True)
class RecordedEvent:
    """One stored custom event (customers.Event), as subscribers see it."""

    event_id: int
    environment_id: int
    user_id: str
    name: str
    properties: dict[str, Any]
    occurred_at: datetime
    message_id: str | None
    # The flow whose run caused the event (None for events from the Events API), and the depth of
    # the chain of starts that led to it: triggers use both for the recursion guard.
    source_flow_id: int | None = None
    chain_depth: int = 0


@dataclass(frozen=True)
class SegmentTransition:
    """A customer entered or exited a segment (one committed change of the membership ledger)."""

    environment_id: int
    segment_id: int
    segment_name: str
    user_id: str
    entered: bool  # True: entered; False: exited
    # Which change of this membership it is (1 = first entry, 2 = first exit, ...): with the
    # segment and the customer it makes a key no redelivery can reuse.
    sequence: int
    at: datetime
    # An entry because the segment was created or edited, not because the customer changed.
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "segment-entered" if self.entered else "segment-exited"

    @property
    def key(self) -> str:
        """A stable id of this transition: the flowInvocationId of the starts it causes.

        At most 255 characters whatever the userId: a long one is replaced by its hash.
        """
        user = self.user_id if len(self.user_id) <= 200 else hashlib.sha256(self.user_id.encode()).hexdigest()
        return f"seg-{self.segment_id}-{'in' if self.entered else 'out'}-{self.sequence}-{user}"


customers_changed = Hook(
    "customers.customers_changed",
    "customers_changed.announce(environment_id=int, user_ids=list[str], fields=set[str]): profiles "
    "were created or changed (fields: the profile fields written, 'tags', 'customFields.<key>' or "
    "'*' for all). segments marks the customers for re-evaluation.",
)

events_recorded = Hook(
    "customers.events_recorded",
    "events_recorded.announce(events=list[RecordedEvent]): new custom events were stored (duplicates "
    "are not announced). segments marks their customers; triggers starts event-triggered flows.",
)

segment_transitions = Hook(
    "customers.segment_transitions",
    "segment_transitions.announce(transitions=list[SegmentTransition]): customers entered or exited "
    "segments. flows writes segment-entered/exited analytics events; triggers starts segment-"
    "triggered flows. Announced by segments in the transaction that changes the ledger.",
)
