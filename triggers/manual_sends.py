"""Manual starts made in the Workbench (SPEC section 6): the customers dashboard's "Send to N
customers" and the test sender.

They live in the triggers app because choosing customers by segment rules needs `segments` and
starting them needs `flows` (imports point down only).

A dashboard send is a `ManualSend`:

1. `dashboard_audience` counts who the filter (rules or a saved segment) matches, for the page.
2. `manual_send_create` fixes the audience when the member confirms (at most the environment's
   manual send limit; a larger one is refused with its count), records who sent it and sends
   "triggers.run_manual_send" after the commit.
3. `manual_send_run` (the task) claims the send under a lease and starts its customers in
   chunks through the one start pipeline. Each chunk and the progress it makes commit together,
   and each customer starts under the key `dash-<send>-<userId>`, so a retried or resumed run
   starts nobody twice.
4. `manual_sends_resend` is the sweep's part: sends that were committed but never picked up,
   or whose worker died (lease expired), are sent again.

The test sender (`test_sender_send`) sends a batch of test starts, one start request per row,
and answers per row: what started, which ids were ignored (not test users), what was refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from flows.definitions import resolve_variables
from flows.models import Flow, FlowStatus, Mode
from flows.selectors import flow_for_start
from flows.services import FlowRefused, StartStatus, invocations_accept
from flows.start_requests import MAX_ID_LENGTH, MAX_STARTS, StartRequest, parse_start_requests
from segments import selectors as segment_selectors
from segments.models import Segment, SegmentStatus
from workbench.celery import enqueue
from workbench.errors import Invalid, Refused
from workbench.models import Environment

from . import csv_tasks
from .models import ManualSend, ManualSendStatus

logger = logging.getLogger(__name__)

RUN_TASK = "triggers.run_manual_send"
SOURCE = "dashboard"
TEST_SENDER_SOURCE = "test-sender"
# Starts per statement of the pipeline, and per committed step of progress.
CHUNK_SIZE = 500
# How long a worker holds a send without making progress before the sweep hands it to another.
LEASE = timedelta(minutes=5)
# A queued send nobody picked up for this long is sent again by the sweep.
PICKUP_GRACE = timedelta(minutes=1)
# Refusals that concern the flow, not a customer: every other start would be refused the same way.
FLOW_REFUSALS = {"flow_archived", "flow_not_published", "missing_variables"}
# How many matching customers the dashboard lists, each with a box to pick them.
AUDIENCE_SAMPLE = 50


# --- The audience ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Who a dashboard filter matches now: how many, and the first userIds (by userId)."""

    count: int
    user_ids: list[str]


def dashboard_audience(
    *, environment: Environment, rules: dict[str, Any] | None = None, segment: Segment | None = None, sample_size: int
) -> Audience:
    """The customers that `rules` (already cleaned) or the saved `segment` match: the count and
    the first `sample_size` userIds, ordered by userId."""
    if segment is not None:
        members = segment_selectors.segment_members(segment=segment).order_by("user_id")
        return Audience(
            count=segment_selectors.segment_member_count(segment=segment),
            user_ids=list(members.values_list("user_id", flat=True)[:sample_size]),
        )
    preview = segment_selectors.matching_count_and_sample(
        environment=environment, rules=rules or {"match": "all", "conditions": []}, sample_size=sample_size
    )
    return Audience(count=preview.count, user_ids=list(preview.sample))


def dashboard_flow_list(*, environment: Environment) -> QuerySet[Flow]:
    """The flows a dashboard send can start: published ones (live starts need a version)."""
    return Flow.objects.filter(environment=environment, status=FlowStatus.PUBLISHED).order_by("name", "id")


def send_refusal(*, flow: Flow, variables: dict[str, Any] | None = None) -> Refused | None:
    """Why a dashboard send of `flow` with these variable values would start nobody, or None:
    archived, unpublished, or a required variable with neither a value nor a default."""
    if flow.status == FlowStatus.ARCHIVED:
        return Refused(409, "flow_archived", f"“{flow.name}” is archived; it starts nothing.")
    start_flow = flow_for_start(flow=flow)
    if start_flow.latest_version_definition is None:
        return Refused(409, "flow_not_published", f"“{flow.name}” is not published; publish it before sending.")
    _resolved, missing = resolve_variables(start_flow.latest_version_definition, variables or {})
    if missing:
        names = ", ".join(missing)
        return Refused(400, "missing_variables", f"“{flow.name}” needs a value for {names}: give one for this send.")
    return None


@dataclass(frozen=True)
class SendVariable:
    """One of a flow's variables as the send form offers it: its value for this send, if given."""

    name: str
    default: Any
    required: bool
    value: str


def send_variables(*, flow: Flow, given: dict[str, str]) -> list[SendVariable]:
    """The variables of the flow's live version, with the values given so far."""
    definition = flow_for_start(flow=flow).definition_run_by(Mode.LIVE)
    return [
        SendVariable(
            name=variable["name"],
            default=variable.get("default"),
            required=bool(variable.get("required")),
            value=given.get(variable["name"], ""),
        )
        for variable in definition.get("variables", [])
    ]


def send_variables_clean(*, flow: Flow, given: dict[str, str]) -> dict[str, Any]:
    """The values given as text (blank: not given), typed like each variable's default;
    400 invalid_request for a value of the wrong type or a variable the flow does not have."""
    declared = {variable.name: variable for variable in send_variables(flow=flow, given={})}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, text in given.items():
        if name not in declared:
            errors[f"variables.{name}"] = [f"“{flow.name}” has no variable {name}."]
        elif text.strip():
            try:
                values[name] = csv_tasks.typed_text(text.strip(), declared[name].default)
            except ValueError as error:
                errors[f"variables.{name}"] = [f"{name}: {error}."]
    if errors:
        raise Invalid(errors)
    return values


def over_limit_refusal(*, environment: Environment, count: int) -> Refused | None:
    limit = environment.manual_send_limit
    if count <= limit:
        return None
    return Refused(
        409,
        "over_manual_send_limit",
        f"This audience has {count:,} customers, more than the {limit:,} one send may reach in this environment. "
        "Narrow the filter, or ask an owner to raise the limit.",
    )


# --- Creating a send ------------------------------------------------------------------------


def manual_send_create(
    *,
    environment: Environment,
    flow: Flow,
    by: User | None,
    rules: dict[str, Any] | None = None,
    segment: Segment | None = None,
    chosen_user_ids: Sequence[str] | None = None,
    description: str = "",
    variables: dict[str, Any] | None = None,
) -> ManualSend:
    """Fix the audience and record the send; its task is sent after the commit.

    1. The flow must start something (published, not archived, no variable left without a
       value: `variables` are this send's values, already typed by send_variables_clean).
    2. The audience is who matches now: the rules (already cleaned) or the segment's members,
       narrowed to `chosen_user_ids` when the member picked some. More than the environment's
       manual send limit is refused with the count; an empty one is refused too.
    3. The send is written with its user ids, and "triggers.run_manual_send" goes after commit.
    """
    if flow.environment_id != environment.pk:
        raise Http404("No such flow")
    refusal = send_refusal(flow=flow, variables=variables)
    if refusal is not None:
        raise refusal
    if segment is not None and segment.status == SegmentStatus.COMPUTING:
        raise Refused(409, "segment_computing", f"“{segment.name}” is still computing its members; try again shortly.")
    limit = environment.manual_send_limit
    # Picks come from the sample the page showed (the first AUDIENCE_SAMPLE by userId), so
    # reading the first max(limit, AUDIENCE_SAMPLE) + 1 finds every pick and tells an audience
    # over the limit.
    audience = dashboard_audience(
        environment=environment, rules=rules, segment=segment, sample_size=max(limit, AUDIENCE_SAMPLE) + 1
    )
    user_ids = audience.user_ids[:limit]
    if chosen_user_ids is not None:
        chosen = set(chosen_user_ids)
        user_ids = [user_id for user_id in audience.user_ids if user_id in chosen]
    else:
        over = over_limit_refusal(environment=environment, count=audience.count)
        if over is not None:
            raise over
    over = over_limit_refusal(environment=environment, count=len(user_ids))
    if over is not None:
        raise over
    if not user_ids:
        raise Refused(400, "empty_audience", "Nobody to send to: no customer matches, or none was chosen.")
    send = ManualSend.objects.create(
        environment=environment,
        flow=flow,
        created_by=by,
        rules=rules if segment is None else None,
        segment_id=segment.pk if segment is not None else None,
        description=description[:500],
        user_ids=user_ids,
        variables=variables or {},
    )
    send_id = send.pk
    transaction.on_commit(lambda: enqueue(RUN_TASK, send_id))
    return send


def manual_send_get(*, environment: Environment, send_id: int) -> ManualSend:
    send = ManualSend.objects.filter(environment=environment, pk=send_id).select_related("flow", "created_by").first()
    if send is None:
        raise Http404("No such send")
    return send


def manual_send_list(*, environment: Environment) -> QuerySet[ManualSend]:
    """The environment's dashboard sends, newest first, with their flow and sender."""
    return (
        ManualSend.objects.filter(environment=environment)
        .select_related("flow", "created_by")
        .order_by("-created_at", "-id")
    )


def manual_send_cancel(*, send: ManualSend) -> ManualSend:
    """Stop a send: customers not started yet are not started (the run checks between chunks)."""
    ManualSend.objects.filter(pk=send.pk, status__in=[ManualSendStatus.QUEUED, ManualSendStatus.RUNNING]).update(
        status=ManualSendStatus.CANCELLED, finished_at=timezone.now(), lease_until=None
    )
    send.refresh_from_db()
    return send


def environment_manual_send_limit_set(*, environment: Environment, limit: int) -> Environment:
    """An owner's change of how many customers one manual send may reach."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000_000:
        raise Invalid({"manual_send_limit": ["Give a whole number from 1 to 10,000,000."]})
    environment.manual_send_limit = limit
    environment.save(update_fields=["manual_send_limit"])
    return environment


# --- Running a send -------------------------------------------------------------------------


def send_key(send_id: int, user_id: str) -> str:
    """The customer's key in this send: at most one start per customer per send."""
    key = f"dash-{send_id}-{user_id}"
    if len(key) <= MAX_ID_LENGTH:
        return key
    return f"dash-{send_id}-h{hashlib.sha256(user_id.encode()).hexdigest()}"


def manual_send_run(*, send_id: int, slice_seconds: float = csv_tasks.SLICE_SECONDS) -> int:
    """Start the send's customers not started yet; the number of customers handled in this run.

    1. Claim the send (queued, or running with its lease released or expired) with a
       conditional update: another worker holding it keeps it.
    2. Chunk by chunk, from where the progress says: lock the send, stop if it was cancelled,
       accept the chunk's starts and count them, in one transaction with a fresh lease.
    3. A refusal of the flow itself (archived, unpublished, a variable without value) fails the
       send with the reason; a chunk refused otherwise is retried start by start.
    4. After `slice_seconds` the send hands itself on (lease released, its task sent again),
       within Celery's time limit for one task however large the send.
    """
    now = timezone.now()
    claimable = Q(status=ManualSendStatus.QUEUED) | Q(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), status=ManualSendStatus.RUNNING
    )
    claimed = ManualSend.objects.filter(claimable, pk=send_id).update(
        status=ManualSendStatus.RUNNING, lease_until=now + LEASE
    )
    if claimed != 1:
        return 0
    handled = 0
    slice_ends = time.monotonic() + slice_seconds
    while True:
        if handled and time.monotonic() > slice_ends:
            if ManualSend.objects.filter(pk=send_id, status=ManualSendStatus.RUNNING).update(lease_until=None):
                enqueue(RUN_TASK, send_id)
            return handled
        with transaction.atomic():
            send = ManualSend.objects.select_for_update().select_related("flow").get(pk=send_id)
            if send.status != ManualSendStatus.RUNNING:
                return handled  # cancelled between chunks
            position = send.started_count + send.failed_count
            chunk = list(send.user_ids[position : position + CHUNK_SIZE])
            if not chunk:
                send.status = ManualSendStatus.COMPLETED
                send.finished_at = timezone.now()
                send.lease_until = None
                send.save(update_fields=["status", "finished_at", "lease_until"])
                return handled
            try:
                started, failed = _start_chunk(send, chunk)
            except FlowRefused as refused:
                send.status = ManualSendStatus.FAILED
                send.last_error = refused.detail
                send.finished_at = timezone.now()
                send.lease_until = None
                send.save(update_fields=["status", "last_error", "finished_at", "lease_until"])
                return handled
            send.started_count += started
            send.failed_count += failed
            send.lease_until = timezone.now() + LEASE
            send.save(update_fields=["started_count", "failed_count", "lease_until"])
            handled += len(chunk)


def _start_chunk(send: ManualSend, chunk: list[str]) -> tuple[int, int]:
    """(started, failed) for the chunk; raises FlowRefused when the flow refuses every start."""
    flow = flow_for_start(flow=send.flow)
    starts = [
        StartRequest(target_user_ids=[user_id], flow_invocation_id=send_key(send.pk, user_id), variables=send.variables)
        for user_id in chunk
    ]
    try:
        with transaction.atomic():
            _accept(send, flow, starts)
        return len(chunk), 0
    except FlowRefused as refused:
        if refused.code in FLOW_REFUSALS:
            raise
    failed = 0
    for start in starts:
        try:
            with transaction.atomic():
                _accept(send, flow, [start])
        except FlowRefused as alone:
            if alone.code in FLOW_REFUSALS:
                raise
            failed += 1
            send.last_error = f"{start.target_user_ids[0]}: {alone.detail}"
            logger.warning("Manual send %s: %s refused (%s)", send.pk, start.target_user_ids[0], alone.code)
    if failed:
        send.save(update_fields=["last_error"])
    return len(chunk) - failed, failed


def _accept(send: ManualSend, flow: Any, starts: list[StartRequest]) -> None:
    # A duplicate (a key this send already used) counts as handled: that customer was started.
    invocations_accept(flow=flow, mode=Mode.LIVE, starts=starts, source=SOURCE, started_by_id=send.created_by_id)


def manual_sends_resend() -> list[int]:
    """The sweep's part: sends committed but never picked up, or held by a worker that died.
    Returns the ids sent again."""
    now = timezone.now()
    stale = ManualSend.objects.filter(
        Q(status=ManualSendStatus.QUEUED, created_at__lt=now - PICKUP_GRACE)
        | Q(status=ManualSendStatus.RUNNING, lease_until__lt=now)
        # Handed on between slices, and its message lost.
        | Q(status=ManualSendStatus.RUNNING, lease_until__isnull=True, created_at__lt=now - PICKUP_GRACE)
    )
    ids = list(stale.values_list("pk", flat=True)[:100])
    for send_id in ids:
        enqueue(RUN_TASK, send_id)
    return ids


# --- The test sender ------------------------------------------------------------------------


@dataclass
class TestRowResult:
    """What one row of the test sender did."""

    row: int
    request: dict[str, Any] = field(default_factory=dict)
    status: str = ""  # "accepted", "duplicate", or "" when refused
    flow_invocation_id: str = ""
    invocation_id: int | None = None
    started_user_ids: list[str] = field(default_factory=list)
    ignored_user_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    __test__ = False  # not a pytest class

    @property
    def ok(self) -> bool:
        return not self.errors


def test_sender_parse(text: str) -> list[tuple[int, StartRequest]]:
    """The start requests of pasted JSON (any shape of SPEC section 2, or an array), numbered
    from 1, or Invalid."""
    try:
        body = json.loads(text)
    except ValueError as error:
        raise Invalid({"json": [f"This is not JSON: {error}."]}, "The JSON could not be read.") from None
    return list(enumerate(parse_start_requests(body), start=1))


def test_sender_send(*, flow: Flow, rows: Sequence[tuple[int, StartRequest]], by: User | None) -> list[TestRowResult]:
    """Send each row's start as a test of the saved draft, on its own: a refused row does not
    keep the others from starting. `rows` pairs each start with its row number."""
    if flow.status == FlowStatus.ARCHIVED:
        raise Refused(409, "flow_archived", "This flow is archived; it starts nothing, not even tests.")
    start_flow = flow_for_start(flow=flow)
    by_id = by.pk if by is not None else None
    results = []
    for number, start in rows:
        result = TestRowResult(row=number, request=start.as_canonical())
        try:
            with transaction.atomic():
                accepted = invocations_accept(
                    flow=start_flow, mode=Mode.TEST, starts=[start], source=TEST_SENDER_SOURCE, started_by_id=by_id
                )
        except FlowRefused as refused:
            result.errors = _refusal_messages(refused)
        else:
            outcome = accepted.outcomes[0]
            result.status = str(outcome.status)
            result.flow_invocation_id = outcome.flow_invocation_id
            result.invocation_id = outcome.invocation_id
            result.ignored_user_ids = list(outcome.ignored_user_ids)
            ignored = set(outcome.ignored_user_ids)
            if outcome.status == StartStatus.ACCEPTED:
                result.started_user_ids = [user_id for user_id in start.target_user_ids if user_id not in ignored]
        results.append(result)
    return results


class _DryRunOnly(Exception):
    """Rolls back a CSV staged only to read its rows."""

    def __init__(self, dry_run: Any, task_id: int) -> None:
        super().__init__("rolled back")
        self.dry_run = dry_run
        self.task_id = task_id


def test_sender_csv_rows(
    *, flow: Flow, upload: IO[bytes], file_name: str, by: User | None
) -> tuple[list[tuple[int, StartRequest]], list[TestRowResult]]:
    """The rows of a CSV (the columns of a CSV send) as test starts, and the rows in error.

    The file is read by the CSV send's own code (`csv_task_stage` and its dry run), inside a
    transaction rolled back afterwards: a test batch leaves no CSV task behind. Keys the dry
    run derived from that task are dropped (a later task may get its id); keys from the file
    are kept. Whole-file refusals are raised as `Refused`.
    """
    try:
        with transaction.atomic():
            task = csv_tasks.csv_task_stage(
                flow=flow, mode=Mode.TEST, upload=upload, file_name=file_name, by=by, confirm=False
            )
            if task.rows_total > MAX_STARTS:
                raise Refused(
                    400,
                    "too_many_rows",
                    f"The test sender takes at most {MAX_STARTS} rows; this file has {task.rows_total:,}. "
                    "Use “Send with a CSV” (as a test) for more.",
                )
            raise _DryRunOnly(csv_tasks.csv_task_dry_run(task=task, sample_rows=MAX_STARTS), task.pk)
    except _DryRunOnly as read:
        dry_run, task_id = read.dry_run, read.task_id
    rows: list[tuple[int, StartRequest]] = []
    for sample in dry_run.sample:
        number = sample["row"]
        key = sample.get("flowInvocationId")
        start = StartRequest(
            target_user_ids=list(sample["targetUserIds"]),
            flow_invocation_id=None if key == f"csv-{task_id}-{number}" else key,
            variables=sample.get("variables") or {},
            notification_detail=sample.get("notificationDetail") or {},
            metadata=sample.get("metadata") or {},
            card_options=sample.get("cardOptions") or {},
        )
        rows.append((number, start))
    errors = [TestRowResult(row=error.row, errors=[error.message]) for error in dry_run.errors]
    return rows, errors


def _refusal_messages(refused: Refused) -> list[str]:
    messages = [refused.detail]
    for location, problems in (refused.errors or {}).items():
        for problem in problems if isinstance(problems, list) else [problems]:
            messages.append(f"{location}: {problem}" if location not in ("", "request") else str(problem))
    return messages
