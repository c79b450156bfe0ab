"""What the triggers app does when lower apps announce something (see workbench/hooks.py).

Every subscriber runs inside the announcer's transaction: the starts it makes commit with the
change that caused them, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from customers.hooks import RecordedEvent, SegmentTransition
from flows.hooks import PublishPreview, PublishReport, RecordedAnalyticsEvent, TakenUpInvocation
from flows.models import Flow
from segments.models import Segment

from . import event_triggers, intake, segment_triggers, services


def give_flow_its_api_trigger(*, flow: Flow) -> None:
    services.api_trigger_ensure(flow=flow)


def start_segment_triggers(*, transitions: Sequence[SegmentTransition]) -> None:
    segment_triggers.transitions_start(transitions=transitions)


def start_event_triggers(*, events: Sequence[RecordedEvent]) -> None:
    event_triggers.events_start(events=events)


def start_analytics_event_triggers(*, events: Sequence[RecordedAnalyticsEvent]) -> None:
    event_triggers.analytics_start(events=events)


def record_webhooks_received(*, invocations: Sequence[TakenUpInvocation]) -> None:
    intake.received_events_record(invocations=invocations)


def report_existing_segment_members(
    *, flow: Flow, trigger_existing_segment_members: bool, report: PublishReport
) -> None:
    segment_triggers.existing_members_publish(
        flow=flow, trigger_existing_segment_members=trigger_existing_segment_members, report=report
    )


def preview_existing_segment_members(*, flow: Flow, preview: PublishPreview) -> None:
    segment_triggers.existing_members_preview(flow=flow, preview=preview)


def name_triggers_using_segment(*, segment: Segment, users: list[str]) -> None:
    users.extend(segment_triggers.triggers_using(segment_id=segment.pk, environment_id=segment.environment_id))
