"""The segment-entered and segment-exited analytics events (SPEC section 5).

segments announces each committed change of its membership ledger on
customers.hooks.segment_transitions, inside the transaction that changes the ledger; this
writes one analytics event per transition in that same transaction, so an event exists exactly
when the change does. flows never imports segments: the hook and its SegmentTransition live in
customers.
"""

from __future__ import annotations

from collections.abc import Sequence

from customers.hooks import SegmentTransition
from workbench.raw_rows import insert_new_rows

from .models import AnalyticsEvent


def segment_events_write(*, transitions: Sequence[SegmentTransition]) -> None:
    insert_new_rows(
        [
            AnalyticsEvent(
                environment_id=transition.environment_id,
                name=transition.name,
                user_id=transition.user_id,
                test=False,
                properties={"segmentId": transition.segment_id, "segmentName": transition.segment_name},
                occurred_at=transition.at,
            )
            for transition in transitions
        ]
    )
