"""Segment triggers: a flow starts when a customer enters or exits a segment (SPEC section 5).

Configuration `{"segmentId", "on": "entered"|"exited", "reentry": "always"|"once"}`.

How a membership change becomes a start (`transitions_start`, subscribed to customers'
`segment_transitions`, inside the ledger's transaction):
1. One query finds the segment triggers of every segment in the batch, test or live.
2. Each matching transition is one start for that customer, keyed by the transition
   (`SegmentTransition.key`): a redelivered change is a duplicate of the same key and starts
   nothing new. Test triggers start test invocations for test users only (other customers are
   left out before the start pipeline, rather than making empty test invocations); a live
   trigger starts only while its flow is published.
3. `once`: the customers a trigger ever started are rows of `TriggerOnceStart` (unique per
   trigger and customer), claimed in the chunk's savepoint with the starts.

Publishing a flow with `entered` triggers (`existing_members_publish`, subscribed to
`flow_published`) counts the current members of their segments and, when asked, starts them
under the key of the entry that made them members (the membership's current sequence), so the
transition path can never start them again and a second publish starts nobody twice. Up to
INLINE_MEMBER_LIMIT members per trigger start inside the publish's transaction; a bigger
segment is started after the commit by the `triggers.start_segment_members` task, in chunks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from customers.hooks import SegmentTransition
from flows.hooks import ExistingMembers, PublishPreview, PublishReport
from flows.models import Flow, Mode
from flows.selectors import flow_for_start
from flows.start_requests import StartRequest
from workbench.celery import enqueue
from workbench.errors import FieldErrors
from workbench.raw_rows import insert_rows_together, rows_insert

from . import selectors, services
from .auto_starts import start_mode, starts_accept, test_user_ids
from .models import (
    MemberBackfill,
    Reentry,
    SegmentOn,
    SegmentTriggerConfig,
    Trigger,
    TriggerMode,
    TriggerOnceStart,
    TriggerType,
)

# Members of one trigger's segment started inside a publish's transaction; more go to a task.
INLINE_MEMBER_LIMIT = 2000
# A backfill's lease (a worker that dies is replaced after it) and how long its first message has
# before the sweep sends another.
BACKFILL_LEASE = timedelta(minutes=10)
BACKFILL_FIRST_MESSAGE_GRACE = timedelta(seconds=30)
MEMBER_PAGE = 2000


# --- Configuration --------------------------------------------------------------------------


def segment_config_clean(
    *, environment_id: int, segment_id: Any = None, on: Any = None, reentry: Any = None, current: Any = None
) -> SegmentTriggerConfig:
    """The configuration from what was given over what it had; 400 invalid_request with every problem.

    The segment must be one of the environment's (another environment's is as unknown as a
    made-up id).
    """
    config: dict[str, Any] = {"on": SegmentOn.ENTERED.value, "reentry": Reentry.ALWAYS.value}
    if current:
        config.update(current)
    errors: FieldErrors = {}
    if segment_id is not None:
        segment = selectors.segment_find(environment_id=environment_id, segment_id=segment_id)
        if segment is None:
            errors["segmentId"] = ["No such segment in this environment."]
        else:
            config["segmentId"] = segment.pk
    elif "segmentId" not in config:
        errors["segmentId"] = ["Choose the segment whose members start the flow."]
    if on is not None:
        if on in SegmentOn.values:
            config["on"] = on
        else:
            errors["on"] = ["Use entered or exited."]
    if reentry is not None:
        if reentry in Reentry.values:
            config["reentry"] = reentry
        else:
            errors["reentry"] = ["Use always or once."]
    if errors:
        raise services.TriggerRefused(400, "invalid_request", "The segment trigger is not valid.", errors)
    clean: SegmentTriggerConfig = {
        "segmentId": config["segmentId"],
        "on": config["on"],
        "reentry": config["reentry"],
    }
    return clean


def segment_trigger_create(
    *,
    flow: Flow,
    by: User | None = None,
    name: str = "",
    segment_id: Any = None,
    on: Any = None,
    reentry: Any = None,
    mode: str = TriggerMode.TEST,
) -> Trigger:
    """A new segment trigger, in test mode unless `mode` says (live needs a published flow)."""
    config = segment_config_clean(environment_id=flow.environment_id, segment_id=segment_id, on=on, reentry=reentry)
    return services.configured_trigger_create(
        flow=flow, type=TriggerType.SEGMENT, config=config, by=by, name=name, mode=mode
    )


def segment_trigger_update(
    *,
    trigger: Trigger,
    by: User | None = None,
    name: str | None = None,
    segment_id: Any = None,
    on: Any = None,
    reentry: Any = None,
    mode: str | None = None,
) -> Trigger:
    """Change a segment trigger's configuration, name and mode; nothing is written when any part is refused."""
    config = segment_config_clean(
        environment_id=trigger.environment_id, segment_id=segment_id, on=on, reentry=reentry, current=trigger.config
    )
    return services.configured_trigger_save(trigger=trigger, config=config, by=by, name=name, mode=mode)


def triggers_using(*, segment_id: int, environment_id: int) -> list[str]:
    """The segment triggers that start flows from this segment, as a member would name them."""
    triggers = Trigger.objects.filter(
        environment_id=environment_id, type=TriggerType.SEGMENT, config__segmentId=segment_id
    ).select_related("flow")
    return [f"trigger {trigger.display_name!r} of flow {trigger.flow.name!r}" for trigger in triggers]


# --- Starting -------------------------------------------------------------------------------


def _start_for(segment_id: int, user_id: str, sequence: int, entered: bool) -> StartRequest:
    """The start of one transition: the customer, under the transition's key. Every path (the
    transition itself, a redelivery, a publish starting existing members) makes the same one."""
    key = SegmentTransition(
        environment_id=0,
        segment_id=segment_id,
        segment_name="",
        user_id=user_id,
        entered=entered,
        sequence=sequence,
        at=timezone.now(),
    ).key
    return StartRequest(target_user_ids=[user_id], flow_invocation_id=key)


def _once_claimer(trigger: Trigger) -> Any:
    """For a `once` trigger: the function that claims the chunk's customers and keeps the starts
    of those claimed now (a customer this trigger ever started is never claimed again)."""
    if trigger.segment_config.get("reentry") != Reentry.ONCE:
        return None

    def claim(starts: Sequence[StartRequest]) -> Sequence[StartRequest]:
        user_ids = {start.target_user_ids[0] for start in starts}
        claimed = _claim_once(trigger, user_ids)
        kept, seen = [], set()
        for start in starts:
            user_id = start.target_user_ids[0]
            if user_id in claimed and user_id not in seen:
                seen.add(user_id)
                kept.append(start)
        return kept

    return claim


def _claim_once(trigger: Trigger, user_ids: set[str]) -> set[str]:
    """Write a once-row per customer; the customers whose row this call wrote."""
    if not user_ids:
        return set()
    now = timezone.now()
    rows = [TriggerOnceStart(trigger=trigger, user_id=user_id, started_at=now) for user_id in sorted(user_ids)]
    if connection.vendor == "postgresql":
        # ON CONFLICT DO NOTHING RETURNING: a row another transaction wrote (committed, or
        # committing while this one waits on it) is not returned, so it is not started here.
        inserted = insert_rows_together([rows_insert(rows, returning=("user_id",), ignore_conflicts=True)])
        return {user_id for (user_id,) in inserted}
    # SQLite (the embedded default) has one writer at a time: read, then write the rest.
    taken = set(
        TriggerOnceStart.objects.filter(trigger=trigger, user_id__in=user_ids).values_list("user_id", flat=True)
    )
    fresh = [row for row in rows if row.user_id not in taken]
    TriggerOnceStart.objects.bulk_create(fresh)
    return {row.user_id for row in fresh}


def transitions_start(*, transitions: Sequence[SegmentTransition]) -> int:
    """Start the segment-triggered flows of a batch of transitions (see the module docstring);
    the number of invocations started."""
    if not transitions:
        return 0
    triggers = list(selectors.segment_triggers_of_segments(segment_ids={t.segment_id for t in transitions}))
    if not triggers:
        return 0
    by_segment: dict[tuple[int, bool], list[SegmentTransition]] = defaultdict(list)
    for transition in transitions:
        by_segment[(transition.segment_id, transition.entered)].append(transition)
    test_users: dict[int, set[str]] = {}
    started = 0
    for trigger in triggers:
        config = trigger.segment_config
        matching = by_segment.get((config["segmentId"], config.get("on") == SegmentOn.ENTERED), [])
        # The trigger's own environment only (a segment id belongs to one environment anyway).
        matching = [t for t in matching if t.environment_id == trigger.environment_id]
        if not matching:
            continue
        flow = flow_for_start(flow=trigger.flow)
        mode = start_mode(trigger, flow)
        if mode is None:
            continue
        if mode == Mode.TEST:
            if trigger.environment_id not in test_users:
                test_users[trigger.environment_id] = test_user_ids(trigger.environment_id)
            matching = [t for t in matching if t.user_id in test_users[trigger.environment_id]]
        starts = list({t.key: _start_for(t.segment_id, t.user_id, t.sequence, t.entered) for t in matching}.values())
        started += starts_accept(
            trigger=trigger, flow=flow, mode=mode, starts=starts, before_each_chunk=_once_claimer(trigger)
        )
    return started


def _entered_triggers(flow: Flow) -> list[Trigger]:
    return list(
        Trigger.objects.filter(
            flow=flow, type=TriggerType.SEGMENT, mode__in=[TriggerMode.TEST, TriggerMode.LIVE], config__on="entered"
        ).order_by("id")
    )


def existing_members_publish(*, flow: Flow, trigger_existing_segment_members: bool, report: PublishReport) -> None:
    """On publish: count the customers already in the segments of the flow's `entered` triggers
    and, when asked, start them (see the module docstring)."""
    triggers = _entered_triggers(flow)
    if not triggers:
        return
    segment_ids = sorted({trigger.segment_config["segmentId"] for trigger in triggers})
    members = selectors.current_memberships(segment_ids=segment_ids)
    report.existing_segment_members = members.values("user_id").distinct().count()
    if not trigger_existing_segment_members or not report.existing_segment_members:
        return
    for trigger in triggers:
        segment_id = trigger.segment_config["segmentId"]
        count = selectors.current_memberships(segment_ids=[segment_id]).count()
        if count > INLINE_MEMBER_LIMIT:
            MemberBackfill.objects.update_or_create(
                trigger=trigger, defaults={"requested_at": timezone.now(), "claimed_until": None}
            )
            transaction.on_commit(partial(enqueue, "triggers.start_segment_members", trigger.pk))
            report.existing_segment_members_queued += count
        else:
            report.existing_segment_members_started += segment_members_start(trigger=trigger)


def existing_members_preview(*, flow: Flow, preview: PublishPreview) -> None:
    """For the publish confirmation: each `entered` trigger's segment and its current members."""
    triggers = _entered_triggers(flow)
    if not triggers:
        return
    segment_ids = {trigger.segment_config["segmentId"] for trigger in triggers}
    names = selectors.segment_names(segment_ids=segment_ids)
    counts = selectors.member_counts(segment_ids=segment_ids)
    for trigger in triggers:
        segment_id = trigger.segment_config["segmentId"]
        if segment_id in names:
            preview.existing_segment_members.append(
                ExistingMembers(
                    segment_name=names[segment_id],
                    members=counts.get(segment_id, 0),
                    test_only=trigger.mode == TriggerMode.TEST,
                )
            )


def segment_members_start(*, trigger: Trigger) -> int:
    """Start the current members of a trigger's segment, each under the key of the entry that
    made them members: idempotent (a second call, or a later redelivery of that entry, starts
    nobody again). The number of invocations started."""
    flow = flow_for_start(flow=trigger.flow)
    mode = start_mode(trigger, flow)
    if mode is None:
        return 0
    segment_id = trigger.segment_config["segmentId"]
    test_users = test_user_ids(trigger.environment_id) if mode == Mode.TEST else None
    memberships = selectors.current_memberships(segment_ids=[segment_id]).order_by("user_id")
    started, after = 0, ""
    while True:
        page = list(memberships.filter(user_id__gt=after).values_list("user_id", "sequence")[:MEMBER_PAGE])
        if not page:
            return started
        after = page[-1][0]
        starts = [
            _start_for(segment_id, user_id, sequence, True)
            for user_id, sequence in page
            if test_users is None or user_id in test_users
        ]
        started += starts_accept(
            trigger=trigger, flow=flow, mode=mode, starts=starts, before_each_chunk=_once_claimer(trigger)
        )


def segment_members_start_by_id(*, trigger_id: int, now: datetime | None = None) -> int:
    """The task's entry: claim the trigger's backfill (another worker may hold it), start the
    members, then forget it. The trigger may have been deleted, disabled or changed since."""
    now = now or timezone.now()
    claimed = (
        MemberBackfill.objects.filter(trigger_id=trigger_id)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + BACKFILL_LEASE)
    )
    if claimed != 1:
        return 0  # done already, or another worker holds it
    trigger = Trigger.objects.filter(pk=trigger_id, type=TriggerType.SEGMENT).select_related("flow").first()
    started = 0
    if trigger is not None and trigger.segment_config.get("on") == SegmentOn.ENTERED:
        started = segment_members_start(trigger=trigger)
    MemberBackfill.objects.filter(trigger_id=trigger_id).delete()
    return started


def member_backfills_resend(*, now: datetime | None = None) -> list[int]:
    """The sweep: the triggers whose backfill nobody holds and that waited long enough for its
    first message (the task is idempotent, so an early resend costs only work)."""
    now = now or timezone.now()
    waiting = MemberBackfill.objects.filter(requested_at__lt=now - BACKFILL_FIRST_MESSAGE_GRACE).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    return list(waiting.values_list("trigger_id", flat=True))
