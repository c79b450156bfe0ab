"""Writes for action flows: editing and publishing, the start pipeline, and run execution.

Every trigger ends in `invocations_accept`: it validates a start request, makes the accepted
starts durable in one transaction, and only then lets the caller answer 2xx. Execution is
asynchronous and idempotent: `invocations_fan_out` creates one run per target user (a unique
constraint makes a second impossible), `runs_execute` claims runs with row locks and executes
their steps, and `flows_sweep` resends whatever was committed but never picked up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Model, OuterRef, Q
from django.utils import timezone

from customers.hooks import customers_changed
from customers.models import Customer, TestUser
from workbench.celery import enqueue_items
from workbench.errors import Invalid, Refused
from workbench.models import Environment
from workbench.raw_rows import (
    NewRow,
    RowVersion,
    insert_new_rows,
    insert_rows_like,
    insert_rows_together,
    new_rows_insert,
)

from . import hooks
from .definitions import Definition, definition_clean, render_card, resolve_variables
from .models import (
    AnalyticsEvent,
    Card,
    Flow,
    FlowRun,
    FlowStatus,
    FlowVersion,
    Invocation,
    InvocationStatus,
    Mode,
    RunStatus,
    StartStatus,
)
from .selectors import FlowForStart, flow_for_start
from .start_requests import StartRequest, parse_start_requests

RUN_CHUNK_SIZE = 500
# SPEC 5 "Recursion guard": a chain of flows starting flows stops here; the start that began the
# chain (an API call, a webhook, ...) is depth 1, and a start deeper than this is refused.
MAX_CHAIN_DEPTH = 5
# Invocation columns that executing a run never reads (see runs_execute).
INVOCATION_UNUSED_BY_RUNS = ("target_user_ids", "ignored_user_ids", "request")


class FlowRefused(Refused):
    """A refusal of a flow operation, raised before anything is written."""


class StaleRead(Exception):
    """Starts made from rows read earlier were not written: one of those rows has changed (or
    the starts repeat a key). Nothing was written; read again and start over."""


# --- Editing and publishing -------------------------------------------------------------


def _clean_definition(variables: Any, steps: Any) -> Definition:
    try:
        return definition_clean(variables, steps)
    except Invalid as invalid:
        raise FlowRefused(400, "invalid_request", "The flow definition is not valid.", invalid.errors) from None


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise FlowRefused(400, "invalid_request", "The flow needs a name.", {"name": ["Use 1 to 200 characters."]})
    return name.strip()


def flow_create(
    *, environment: Environment, name: str, variables: Any = None, steps: Any = None, by: User | None = None
) -> Flow:
    # Only an omitted field means empty: a wrong type (even a falsy one, "" or {}) is refused.
    definition = _clean_definition([] if variables is None else variables, [] if steps is None else steps)
    with transaction.atomic():
        flow = Flow.objects.create(environment=environment, name=_clean_name(name), draft=definition, created_by=by)
        hooks.flow_created.announce(flow=flow)
    return flow


def flow_update(*, flow: Flow, name: str | None = None, variables: Any = None, steps: Any = None) -> Flow:
    """Change the name or the draft; published versions never change."""
    if flow.status == FlowStatus.ARCHIVED:
        raise FlowRefused(409, "flow_archived", "This flow is archived; it can no longer be edited.")
    definition = _clean_definition(
        flow.draft["variables"] if variables is None else variables,
        flow.draft["steps"] if steps is None else steps,
    )
    if name is not None:
        flow.name = _clean_name(name)
    flow.draft = definition
    flow.save(update_fields=["name", "draft", "updated_at"])
    return flow


def flow_latest_version(*, flow: Flow) -> FlowVersion | None:
    return FlowVersion.objects.filter(flow=flow).order_by("-number").first()


@dataclass(frozen=True)
class PublishResult:
    flow: Flow
    version: FlowVersion
    # Customers already in the segments of the flow's `entered` triggers (None: no such
    # trigger), and how many of them this publish started.
    existing_segment_members: int | None = None
    existing_segment_members_started: int = 0
    # How many more are being started in the background (too many for the publish's transaction).
    existing_segment_members_queued: int = 0


def flow_publish(
    *, flow: Flow, by: User | None = None, trigger_existing_segment_members: bool = False
) -> PublishResult:
    """Snapshot the draft as the next numbered version and make it the live one.

    Refused: an archived flow (409 flow_archived), a draft without steps (400) and a draft
    identical to the latest version (409 nothing_to_publish). In the same transaction
    `flow_published` is announced: the triggers app reports the customers already in the
    segments of `entered` triggers and, with `trigger_existing_segment_members`, starts them.
    """
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status == FlowStatus.ARCHIVED:
            raise FlowRefused(409, "flow_archived", "This flow is archived; it cannot be published.")
        if not locked.draft.get("steps"):
            raise FlowRefused(400, "invalid_request", "Add at least one step before publishing.", {"steps": ["Empty."]})
        latest = flow_latest_version(flow=locked)
        if latest is not None and latest.definition == locked.draft:
            # An identical version would only make the history longer and say nothing.
            raise FlowRefused(
                409,
                "nothing_to_publish",
                f"The draft is the same as version {latest.number}: nothing to publish. Change the draft first.",
            )
        version = FlowVersion.objects.create(
            flow=locked, number=(latest.number + 1) if latest else 1, definition=locked.draft, published_by=by
        )
        locked.status = FlowStatus.PUBLISHED
        locked.published_version = version.number
        locked.save(update_fields=["status", "published_version", "updated_at"])
        report = hooks.PublishReport()
        hooks.flow_published.announce(
            flow=locked, trigger_existing_segment_members=trigger_existing_segment_members, report=report
        )
    # The caller's instance is current too, whichever of the two it goes on using.
    flow.status, flow.published_version = locked.status, locked.published_version
    return PublishResult(
        flow=locked,
        version=version,
        existing_segment_members=report.existing_segment_members,
        existing_segment_members_started=report.existing_segment_members_started,
        existing_segment_members_queued=report.existing_segment_members_queued,
    )


def flow_archive(*, flow: Flow) -> Flow:
    """Archived flows start nothing; runs already accepted still finish."""
    flow.status = FlowStatus.ARCHIVED
    flow.save(update_fields=["status", "updated_at"])
    return flow


def flow_delete(*, flow: Flow) -> None:
    flow.delete()


# --- The start pipeline -----------------------------------------------------------------


@dataclass(frozen=True)
class StartOutcome:
    flow_invocation_id: str
    status: StartStatus
    target_count: int
    ignored_user_ids: list[str]
    invocation_id: int

    def as_json(self) -> dict[str, Any]:
        return {
            "flowInvocationId": self.flow_invocation_id,
            "status": self.status,
            "targetCount": self.target_count,
            "ignoredUserIds": self.ignored_user_ids,
        }


@dataclass(frozen=True)
class AcceptResult:
    outcomes: list[StartOutcome]
    # Whether the caller's `extra_rows` were written with the starts (see invocations_accept).
    extra_rows_written: bool = False

    @property
    def any_accepted(self) -> bool:
        return any(outcome.status == StartStatus.ACCEPTED for outcome in self.outcomes)


def start_requests_check(body: Any) -> list[StartRequest]:
    """The starts of a start request in any accepted shape (SPEC section 2), or 400 invalid_request."""
    try:
        return parse_start_requests(body)
    except Invalid as invalid:
        raise FlowRefused(400, "invalid_request", "The start request is not valid.", invalid.errors) from None


def invocations_accept(
    *,
    flow: FlowForStart,
    mode: str,
    starts: list[StartRequest],
    source: str,
    trigger_id: int | None = None,
    extra_rows: Sequence[NewRow[Any]] = (),
    chain_depth: int = 1,
    started_by_id: int | None = None,
    unchanged: Sequence[RowVersion] = (),
) -> AcceptResult:
    """Accept every start, or none of them; the caller answers 2xx once this returns.

    1. Pick the definition (the draft for tests, the latest version for live: 409s) and
       resolve each start's variables (400 missing_variables). A request that only repeats
       accepted starts gets their original results instead, even if the flow changed since.
    2. Test starts keep only test users.
    3. Write the invocations and `extra_rows` (the caller's rows that belong with the starts,
       such as a webhook's request-log entry, made for the starts being accepted) in ONE
       statement. Nearly every start ends here, with `extra_rows_written`. A key that is
       already taken leaves the statement without effect, and then:
    4. a request repeating accepted starts gets their original results; any other is written
       start by start in one transaction, each under its key (accepted, a duplicate, or a 409).
       `extra_rows` are not written on these paths: the caller writes what its outcomes need.
    5. After commit the fan-outs are sent; the sweep sends whatever could not be.

    `started_by_id` is the member who made a manual start (a Workbench send, a CSV, the
    dashboard, the test sender); the invocation page shows it beside its source.

    `unchanged`: the rows (of the flow, of the caller's trigger) as the caller read them some
    time ago (PostgreSQL). The starts are written as in step 3 only while those rows are
    unchanged; otherwise, and whenever step 3 writes nothing, StaleRead is raised and nothing
    is written: the caller reads again and calls again without it.

    `chain_depth` is the start's place in a chain of flows starting flows (1 unless an event
    of another flow's run caused it). Deeper than MAX_CHAIN_DEPTH: nothing starts, each target
    gets a `flow-run-failed` event with reason `recursion_limit`, and 409 recursion_limit is
    raised (the events are written in the caller's transaction, outside any savepoint here).
    """
    if chain_depth > MAX_CHAIN_DEPTH:
        _record_recursion_limit(flow, mode, starts, source, trigger_id, chain_depth)
        raise FlowRefused(
            409,
            "recursion_limit",
            f"A chain of flows starting flows stops at a depth of {MAX_CHAIN_DEPTH}; "
            f"this start would be {chain_depth}.",
        )
    try:
        definition, version_number, resolved = _checked_starts(flow, mode, starts)
    except FlowRefused:
        if unchanged:
            raise StaleRead from None  # the flow, read earlier, may have changed since
        repeats = _repeated_outcomes(flow, mode, starts)
        if repeats is None:
            raise
        return AcceptResult(outcomes=repeats)
    test_users = _test_user_ids(flow.environment_id) if mode == Mode.TEST else set()

    def new_invocations() -> list[NewRow[Invocation]]:
        return [
            _new_invocation(
                flow,
                mode,
                start,
                variables,
                definition,
                version_number,
                source,
                trigger_id,
                test_users,
                chain_depth,
                started_by_id,
            )
            for start, variables in zip(starts, resolved, strict=True)
        ]

    invocations = new_invocations()
    keyed = any(start.flow_invocation_id is not None for start in starts)
    try:
        ids = _insert_at_once(invocations, extra_rows, keyed=keyed, unchanged=unchanged)
    except IntegrityError:
        if not keyed:
            raise  # generated keys cannot be taken: this is some other failure
        ids = None
    if ids is None and unchanged:
        raise StaleRead
    if ids is not None:
        accepted_ids = list(ids.values())
        # Outside a transaction the statement has committed and this sends at once.
        transaction.on_commit(lambda: _send_fan_outs(accepted_ids))
        outcomes = [_accepted_outcome(invocation.values, ids) for invocation in invocations]
        return AcceptResult(outcomes=outcomes, extra_rows_written=True)
    # Mostly a sender retrying a delivery it was answered for: its original results.
    repeats = _repeated_outcomes(flow, mode, starts)
    if repeats is not None:
        return AcceptResult(outcomes=repeats)
    # New instances: the statement that failed may have given some of the first ones ids.
    return AcceptResult(outcomes=_accept_one_by_one(new_invocations(), starts))


def _record_recursion_limit(
    flow: FlowForStart, mode: str, starts: list[StartRequest], source: str, trigger_id: int | None, chain_depth: int
) -> None:
    """What a refused chain leaves behind: one `flow-run-failed` per target, so that the flow's
    activity and analytics show the start that did not happen and why."""
    now = timezone.now()
    properties = {"reason": "recursion_limit", "chainDepth": chain_depth, "source": source, "triggerId": trigger_id}
    AnalyticsEvent.objects.bulk_create(
        [
            AnalyticsEvent(
                environment_id=flow.environment_id,
                name="flow-run-failed",
                user_id=user_id,
                flow_id=flow.id,
                flow_invocation_id=start.flow_invocation_id or "",
                test=mode == Mode.TEST,
                properties=properties,
                occurred_at=now,
            )
            for start in starts
            for user_id in start.target_user_ids
        ]
    )


def flow_test_send(*, flow: Flow, start_request: dict[str, Any], by: User | None) -> StartOutcome:
    """A member's test of the saved draft from the Workbench (the flow's testing tab, a test
    user's profile): one start through the pipeline, recorded with who sent it. Refusals are
    FlowRefused, as for any start."""
    result = invocations_accept(
        flow=flow_for_start(flow=flow),
        mode=Mode.TEST,
        starts=start_requests_check(start_request),
        source="workbench",
        started_by_id=by.pk if by is not None else None,
    )
    return result.outcomes[0]


def _definition_for(flow: FlowForStart, mode: str) -> tuple[Definition, int | None]:
    """Test starts run the draft; live starts the latest published version."""
    if flow.status == FlowStatus.ARCHIVED:
        raise FlowRefused(409, "flow_archived", "This flow is archived; it starts nothing.")
    if mode == Mode.TEST:
        return flow.definition_run_by(mode), None
    if flow.latest_version_number is None:
        raise FlowRefused(409, "flow_not_published", "Live starts need a published flow; publish it first.")
    return flow.definition_run_by(mode), flow.latest_version_number


def _checked_starts(
    flow: FlowForStart, mode: str, starts: list[StartRequest]
) -> tuple[Definition, int | None, list[dict[str, Any]]]:
    """The definition the starts run, its version number, and each start's resolved variables."""
    definition, version_number = _definition_for(flow, mode)
    resolved: list[dict[str, Any]] = []
    missing_errors: dict[str, list[str]] = {}
    for index, start in enumerate(starts):
        variables, missing = resolve_variables(definition, start.variables)
        if missing:
            location = "variables" if len(starts) == 1 else f"{index}.variables"
            missing_errors[location] = [f"Missing required variable: {name}." for name in missing]
        resolved.append(variables)
    if missing_errors:
        raise FlowRefused(400, "missing_variables", "Required variables have no value and no default.", missing_errors)
    return definition, version_number, resolved


def _content_hash(start: StartRequest) -> str:
    content = {**start.as_canonical(), "flowInvocationId": None}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _repeated_outcomes(flow: FlowForStart, mode: str, starts: list[StartRequest]) -> list[StartOutcome] | None:
    """The original results when every start repeats an accepted one with the same content.

    A client retrying a start it was already answered for gets that answer again, even if
    the flow has been archived or its variables changed since; anything else is checked.
    """
    keys = {start.flow_invocation_id for start in starts}
    if None in keys:
        return None
    existing = {
        invocation.flow_invocation_id: invocation
        for invocation in Invocation.objects.filter(flow_id=flow.id, mode=mode, flow_invocation_id__in=keys).only(
            "flow_invocation_id", "content_hash", "target_user_ids", "ignored_user_ids"
        )
    }
    outcomes = []
    for start in starts:
        original = existing.get(start.flow_invocation_id or "")
        if original is None or original.content_hash != _content_hash(start):
            return None
        outcomes.append(_outcome(original, StartStatus.DUPLICATE, original.pk))
    return outcomes


def _test_user_ids(environment_id: int) -> set[str]:
    return set(TestUser.objects.filter(environment_id=environment_id).values_list("user_id", flat=True))


def _new_invocation(
    flow: FlowForStart,
    mode: str,
    start: StartRequest,
    variables: dict[str, Any],
    definition: Definition,
    version_number: int | None,
    source: str,
    trigger_id: int | None,
    test_users: set[str],
    chain_depth: int = 1,
    started_by_id: int | None = None,
) -> NewRow[Invocation]:
    """The invocation of one start, as a new row (no instance: most are written by one INSERT).
    Test starts deliver only to test users: every other id is listed as ignored."""
    flow_invocation_id = start.flow_invocation_id or uuid.uuid4().hex
    targets = start.target_user_ids
    if mode == Mode.TEST:
        targets, ignored = [u for u in targets if u in test_users], [u for u in targets if u not in test_users]
    else:
        ignored = []
    values = {
        "environment_id": flow.environment_id,
        "flow_id": flow.id,
        "mode": mode,
        "flow_invocation_id": flow_invocation_id,
        "source": source,
        "trigger_id": trigger_id,
        "chain_depth": chain_depth,
        "started_by_id": started_by_id,
        "content_hash": _content_hash(start),
        "request": {**start.as_canonical(), "flowInvocationId": flow_invocation_id},
        "definition": definition,
        "version_number": version_number,
        "variables": variables,
        "notification_detail": start.notification_detail,
        "metadata": start.metadata,
        "card_options": start.card_options,
        "target_user_ids": targets,
        "ignored_user_ids": ignored,
    }
    return NewRow(Invocation, values)


def _insert_at_once(
    invocations: list[NewRow[Invocation]],
    extra_rows: Sequence[NewRow[Any]],
    *,
    keyed: bool,
    unchanged: Sequence[RowVersion] = (),
) -> dict[str, int] | None:
    """Insert the invocations and the extra rows in ONE statement; their ids by key.

    All of it is durable when this returns, or none of it: a taken key returns None (one
    keyed start, the usual sender retry: ON CONFLICT DO NOTHING, and the rest only if the
    invocation was inserted) or raises IntegrityError (several starts, or SQLite). Outside a
    transaction the statement is its own transaction; inside one, a savepoint keeps a
    failure from breaking the caller's. SQLite (the embedded default) takes the same rows
    in a transaction. With `unchanged` (rows at the versions read earlier), the statement
    writes only while they are, and returns None when they are not.
    """
    if connection.vendor != "postgresql":  # data-modifying CTEs are PostgreSQL's
        if unchanged:
            raise ValueError("Row versions are PostgreSQL's: there is nothing to compare them with here.")
        saved = [row.instance() for row in invocations]
        with transaction.atomic():
            for invocation in saved:
                invocation.save()
            _save_rows(extra_rows)
        return {invocation.flow_invocation_id: invocation.pk for invocation in saved}
    one_keyed = keyed and len(invocations) == 1
    parts = [new_rows_insert(invocations, returning=("id", "flow_invocation_id"), ignore_conflicts=one_keyed)]
    parts.extend(new_rows_insert(rows) for rows in _by_model(extra_rows))
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with savepoint:
        rows = insert_rows_together(parts, only_if_first_inserts=one_keyed or bool(unchanged), unchanged=unchanged)
    if not rows:
        return None
    return {key: pk for pk, key in rows}  # one flow and mode: keys are unique here


def _accept_one_by_one(invocations: list[NewRow[Invocation]], starts: list[StartRequest]) -> list[StartOutcome]:
    """The path of a request that reuses a key: each start under its key, in one transaction."""
    outcomes: list[StartOutcome] = []
    with transaction.atomic():
        for row, start in zip(invocations, starts, strict=True):
            outcomes.append(_insert_once(row.instance(), key_was_given=start.flow_invocation_id is not None))
        accepted_ids = [outcome.invocation_id for outcome in outcomes if outcome.status == StartStatus.ACCEPTED]
        if accepted_ids:
            transaction.on_commit(lambda: _send_fan_outs(accepted_ids))
    return outcomes


def _insert_once(invocation: Invocation, *, key_was_given: bool) -> StartOutcome:
    """Insert under the idempotency key: accepted, a duplicate, or 409 for other content."""
    if not key_was_given:
        invocation.save()  # a freshly generated key cannot collide
        return _outcome(invocation, StartStatus.ACCEPTED, invocation.pk)
    try:
        # A savepoint, so that losing the race for a key leaves the transaction usable;
        # a concurrent insert of the same key waits for the winner and then fails here.
        with transaction.atomic():
            invocation.save()
    except IntegrityError:
        existing = Invocation.objects.get(
            flow_id=invocation.flow_id, mode=invocation.mode, flow_invocation_id=invocation.flow_invocation_id
        )
        if existing.content_hash != invocation.content_hash:
            raise FlowRefused(
                409,
                "idempotency_mismatch",
                f"flowInvocationId {invocation.flow_invocation_id!r} was already used with different content.",
            ) from None
        return _outcome(existing, StartStatus.DUPLICATE, existing.pk)
    return _outcome(invocation, StartStatus.ACCEPTED, invocation.pk)


def _outcome(invocation: Invocation, status: StartStatus, invocation_id: int) -> StartOutcome:
    return StartOutcome(
        flow_invocation_id=invocation.flow_invocation_id,
        status=status,
        target_count=len(invocation.target_user_ids),
        ignored_user_ids=list(invocation.ignored_user_ids),
        invocation_id=invocation_id,
    )


def _accepted_outcome(values: dict[str, Any], ids: dict[str, int]) -> StartOutcome:
    """The outcome of an invocation written from these values, given the ids by key."""
    key = values["flow_invocation_id"]
    return StartOutcome(
        flow_invocation_id=key,
        status=StartStatus.ACCEPTED,
        target_count=len(values["target_user_ids"]),
        ignored_user_ids=list(values["ignored_user_ids"]),
        invocation_id=ids[key],
    )


def _by_model(rows: Sequence[NewRow[Any]]) -> list[list[NewRow[Any]]]:
    grouped: dict[type[Model], list[NewRow[Any]]] = defaultdict(list)
    for row in rows:
        grouped[row.model].append(row)
    return list(grouped.values())


def _save_rows(rows: Sequence[NewRow[Any]]) -> None:
    for same_model in _by_model(rows):
        same_model[0].model._default_manager.bulk_create([row.instance() for row in same_model])


def _send_fan_outs(invocation_ids: Iterable[int]) -> None:
    """Run on commit: the accepted starts to the fan-out task, by its name (services never
    import tasks), batched with other requests' (`enqueue_items`). If they are lost, the
    sweep fans the starts out later."""
    enqueue_items("flows.fan_out_invocations", invocation_ids)


# --- Execution ----------------------------------------------------------------------------


def _create_missing_profiles(environment_id: int, user_ids: list[str], now: Any) -> None:
    """A live start to a userId with no profile creates a minimal one (existing ones are
    left alone), announced to segments as the API's new profiles are. In userId order, so
    that concurrent fan-outs lock rows in the same order."""
    unique = sorted(set(user_ids))
    for start in range(0, len(unique), 1000):
        chunk = unique[start : start + 1000]
        known = Customer.objects.filter(environment_id=environment_id, user_id__in=chunk).values_list(
            "user_id", flat=True
        )
        missing = sorted(set(chunk) - set(known))
        if not missing:
            continue
        # A concurrent fan-out may create some of them first: the conflict is skipped, and
        # both announce them (a second mark only re-evaluates the customer).
        insert_rows_like(
            Customer(environment_id=environment_id, user_id="", created_at=now, updated_at=now),
            [{"user_id": user_id} for user_id in missing],
            ignore_conflicts=True,
        )
        # A bare profile may match a segment ("no vip tag", "created this week").
        customers_changed.announce(environment_id=environment_id, user_ids=missing, fields={"*"})


def invocations_fan_out(*, invocation_ids: Sequence[int]) -> list[list[int]]:
    """Take up accepted invocations, each at most once whatever happens, and return run chunks.

    One transaction for the whole batch (a fan-out message holds up to 100 invocations: a
    CSV task's or a busy API's starts of one target each would otherwise cost a transaction
    and a message per customer):
    1. Lock the batch's invocations still in status accepted, in id order (concurrent
       fan-outs of overlapping batches lock in the same order; one that waited re-reads the
       status and skips what the other took up).
    2. Drop those whose flow is gone: deleted while they were being accepted (invocations
       have no foreign-key constraints, see the model; a delete cascades in Django, which
       cannot see a start that commits after it looked).
    3. Record their `flow-invocation-accepted` events (at the time each was accepted) and,
       for live ones, the minimal profiles of target users who have none, and announce
       them (`hooks.invocations_taken_up`: a webhook's `webhook-received` event). They are
       written here rather than with the acceptance so that a start's answer waits for
       one row only.
    4. Create one run per target user and mark each invocation running (or completed, with
       no targets).

    Idempotent: a second call finds the invocations already running and only returns the
    chunks of their runs still queued, so a redelivered message resends their execution.
    """
    with transaction.atomic():
        # The status is tested here, not in SQL: by primary key alone the plan stays an
        # index lookup whatever the table's statistics say about statuses.
        locked = Invocation.objects.select_for_update(of=("self",)).filter(pk__in=list(invocation_ids)).order_by("pk")
        flow_kept = Exists(Flow.objects.filter(pk=OuterRef("flow_id")))
        invocations = list(locked.only("status", *FAN_OUT_FIELDS).annotate(flow_kept=flow_kept))
        accepted = [invocation for invocation in invocations if invocation.status == InvocationStatus.ACCEPTED]
        orphans = [invocation.pk for invocation in accepted if not invocation.flow_kept]
        if orphans:
            Invocation.objects.filter(pk__in=orphans).delete()
            accepted = [invocation for invocation in accepted if invocation.flow_kept]
        run_ids = _take_up(accepted, timezone.now()) if accepted else []
    # Invocations taken up before (a redelivered message): their runs still queued. Usually
    # none, and then no query: a fan-out during a bulk load must not depend on the planner's
    # statistics of a table that grows by the second.
    earlier = [invocation.pk for invocation in invocations if invocation.status != InvocationStatus.ACCEPTED]
    if earlier:
        runs = FlowRun.objects.filter(invocation_id__in=earlier).values_list("pk", "status")
        run_ids.extend(pk for pk, status in runs if status == RunStatus.QUEUED)
    run_ids.sort()
    return [run_ids[i : i + RUN_CHUNK_SIZE] for i in range(0, len(run_ids), RUN_CHUNK_SIZE)]


# What a fan-out reads of an invocation (the definition and the request stay in the table).
FAN_OUT_FIELDS = (
    "environment_id",
    "flow_id",
    "flow_invocation_id",
    "mode",
    "source",
    "trigger_id",
    "target_user_ids",
    "created_at",
)


def _take_up(invocations: Sequence[Invocation], now: Any) -> list[int]:
    """Steps 3 and 4 of invocations_fan_out, for locked invocations in status accepted (so
    none of their runs exists yet): one statement per kind of row. The new runs' ids."""
    first = invocations[0]
    insert_rows_like(
        AnalyticsEvent(
            environment_id=first.environment_id, name="flow-invocation-accepted", flow_id=first.flow_id, occurred_at=now
        ),
        [
            {
                "environment_id": invocation.environment_id,
                "flow_id": invocation.flow_id,
                "flow_invocation_id": invocation.flow_invocation_id,
                "test": invocation.is_test,
                "properties": {"source": invocation.source, "targetCount": len(invocation.target_user_ids)},
                "occurred_at": invocation.created_at,
            }
            for invocation in invocations
        ],
    )
    live_targets: dict[int, list[str]] = defaultdict(list)
    for invocation in invocations:
        if not invocation.is_test:
            live_targets[invocation.environment_id].extend(invocation.target_user_ids)
    for environment_id, user_ids in live_targets.items():
        _create_missing_profiles(environment_id, user_ids, now)
    hooks.invocations_taken_up.announce(invocations=[_taken_up(invocation) for invocation in invocations])
    run_ids = insert_rows_like(
        FlowRun(
            environment_id=first.environment_id, invocation=first, flow_id=first.flow_id, created_at=now, updated_at=now
        ),
        [
            {
                "environment_id": invocation.environment_id,
                "invocation_id": invocation.pk,
                "flow_id": invocation.flow_id,
                "user_id": user_id,
                "test": invocation.is_test,
            }
            for invocation in invocations
            for user_id in invocation.target_user_ids
        ],
        returning="id",
    )
    with_targets = [invocation.pk for invocation in invocations if invocation.target_user_ids]
    without_targets = [invocation.pk for invocation in invocations if not invocation.target_user_ids]
    if with_targets:
        Invocation.objects.filter(pk__in=with_targets).update(status=InvocationStatus.RUNNING, fanned_out_at=now)
    if without_targets:
        Invocation.objects.filter(pk__in=without_targets).update(
            status=InvocationStatus.COMPLETED, fanned_out_at=now, completed_at=now
        )
    return run_ids


def _taken_up(invocation: Invocation) -> hooks.TakenUpInvocation:
    return hooks.TakenUpInvocation(
        environment_id=invocation.environment_id,
        flow_id=invocation.flow_id,
        flow_invocation_id=invocation.flow_invocation_id,
        test=invocation.is_test,
        source=invocation.source,
        trigger_id=invocation.trigger_id,
        accepted_at=invocation.created_at,
    )


@dataclass
class _RunProgress:
    """What executing one run produced, applied to the database in bulk."""

    run: FlowRun
    cards: list[Card] = field(default_factory=list)
    events: list[AnalyticsEvent] = field(default_factory=list)


def runs_execute(*, run_ids: Sequence[int]) -> list[tuple[int, float]]:
    """Execute the given runs that are due, each exactly once; return (run id, delay) of waits.

    1. Lock the due runs (queued, or waiting with resume_at passed), skipping rows another
       worker holds: whoever holds the lock executes the run.
    2. Execute each run's steps from its step_index until a wait step or the end.
    3. Write cards (unique per run and step), events and run states, then commit: a worker
       killed before the commit leaves every run as it was, to be executed again.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock the run rows alone (`of`), in id order: the model's default ordering would join
        # the invocation and lock its row too, making concurrent chunks of one invocation
        # skip each other's runs entirely.
        runs = list(
            FlowRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(run_ids))
            .filter(Q(status=RunStatus.QUEUED) | Q(status=RunStatus.WAITING, resume_at__lte=now))
            .order_by("pk")
        )
        if not runs:
            return []
        # The chunk's invocations (usually one) once, rather than their definition and
        # variables decoded again on every run row; execution never reads the target list.
        invocations = Invocation.objects.defer(*INVOCATION_UNUSED_BY_RUNS).in_bulk({run.invocation_id for run in runs})
        for run in runs:
            run.invocation = invocations[run.invocation_id]
        progress = [_execute_run(run, now) for run in runs]
        # The runs are locked and due, so none of their cards (unique per run and step) exists.
        insert_new_rows([card for item in progress for card in item.cards])
        events = [event for item in progress for event in item.events]
        insert_new_rows(events)
        _save_run_states([item.run for item in progress], now)
        _announce_analytics(events, invocations)
    _complete_finished_invocations({run.invocation_id for run in runs})
    return [
        (run.pk, max(0.0, (run.resume_at - now).total_seconds()))
        for run in runs
        if run.status == RunStatus.WAITING and run.resume_at is not None
    ]


def _announce_analytics(events: list[AnalyticsEvent], invocations: dict[int, Invocation]) -> None:
    """Tell the triggers app which analytics events the runs wrote, with the chain depth of
    the invocation behind each (other flows' event triggers may listen; the recursion guard
    needs the depth). In the runs' transaction: a start they cause commits with them."""
    if not events:
        return
    depth_by_key = {(inv.flow_id, inv.flow_invocation_id, inv.mode): inv.chain_depth for inv in invocations.values()}
    hooks.analytics_recorded.announce(
        events=[
            hooks.RecordedAnalyticsEvent(
                environment_id=event.environment_id,
                name=event.name,
                user_id=event.user_id,
                flow_id=event.flow_id or 0,
                flow_invocation_id=event.flow_invocation_id,
                test=event.test,
                occurred_at=event.occurred_at,
                chain_depth=depth_by_key.get(
                    (event.flow_id or 0, event.flow_invocation_id, Mode.TEST if event.test else Mode.LIVE), 1
                ),
                properties=dict(event.properties),
            )
            for event in events
        ]
    )


def _execute_run(run: FlowRun, now: Any) -> _RunProgress:
    invocation = run.invocation
    progress = _RunProgress(run=run)
    steps = invocation.definition.get("steps", [])

    def event(name: str, **properties: Any) -> None:
        progress.events.append(
            AnalyticsEvent(
                environment_id=run.environment_id,
                name=name,
                user_id=run.user_id,
                flow_id=run.flow_id,
                flow_invocation_id=invocation.flow_invocation_id,
                test=run.test,
                properties=properties,
                occurred_at=now,
            )
        )

    if run.step_index == 0 and run.status == RunStatus.QUEUED:
        event("flow-run-started")
    try:
        while run.step_index < len(steps):
            step = steps[run.step_index]
            if step["type"] == "wait":
                run.step_index += 1
                run.status = RunStatus.WAITING
                run.resume_at = now + timedelta(seconds=int(step["seconds"]))
                return progress
            if step["type"] == "send_card":
                progress.cards.append(_card_for(run, invocation, step, now))
                event("card-published", stepIndex=run.step_index)
            else:
                raise ValueError(f"Unknown step type {step['type']!r}")
            run.step_index += 1
    except Exception as error:  # a run that fails records why; the others go on
        run.status = RunStatus.FAILED
        run.error = f"Step {run.step_index + 1}: {error}"
        run.finished_at = now
        event("flow-run-failed", error=run.error)
        return progress
    run.status = RunStatus.COMPLETED
    run.resume_at = None
    run.finished_at = now
    event("flow-run-completed")
    return progress


def _card_for(run: FlowRun, invocation: Invocation, step: dict[str, Any], now: Any) -> Card:
    content = render_card(step["card"], invocation.variables)
    return Card(
        environment_id=run.environment_id,
        flow_id=run.flow_id,
        invocation=invocation,
        run=run,
        flow_invocation_id=invocation.flow_invocation_id,
        step_index=run.step_index,
        user_id=run.user_id,
        title=content["title"],
        body=content["body"],
        actions=content["actions"],
        test=run.test,
        version_number=invocation.version_number,
        published_at=now,
    )


def _save_run_states(runs: list[FlowRun], now: Any) -> None:
    """Write run states with one UPDATE per distinct outcome rather than one per run."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    failed: list[FlowRun] = []
    for run in runs:
        if run.status == RunStatus.FAILED:
            failed.append(run)
        else:
            groups[(run.status, run.step_index, run.resume_at, run.finished_at)].append(run.pk)
    for (status, step_index, resume_at, finished_at), ids in groups.items():
        FlowRun.objects.filter(pk__in=ids).update(
            status=status, step_index=step_index, resume_at=resume_at, finished_at=finished_at, updated_at=now
        )
    for run in failed:
        FlowRun.objects.filter(pk=run.pk).update(
            status=run.status, step_index=run.step_index, error=run.error[:2000], finished_at=now, updated_at=now
        )


def _complete_finished_invocations(invocation_ids: Iterable[int]) -> None:
    unfinished = FlowRun.objects.filter(invocation_id=OuterRef("pk"), status__in=[RunStatus.QUEUED, RunStatus.WAITING])
    Invocation.objects.filter(pk__in=list(invocation_ids), status=InvocationStatus.RUNNING).exclude(
        Exists(unfinished)
    ).update(status=InvocationStatus.COMPLETED, completed_at=timezone.now())


@dataclass(frozen=True)
class SweepResult:
    invocations: list[int]
    run_chunks: list[list[int]]


def flows_sweep(*, now: Any = None) -> SweepResult:
    """Find committed work nobody picked up, and waits that are due.

    1. Invocations accepted but not fanned out for a while (the broker was down, the
       message was lost with a worker, or it named a task that no longer exists).
    2. Runs queued but untouched for a while; their updated_at is moved forward so that the
       next sweep does not send them again while they wait in a busy queue.
    3. Waiting runs whose resume_at has passed become queued: the sweep is the only thing
       that resumes a wait, so its interval is a wait's resolution.
    4. Running invocations whose runs have all finished are completed.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SWEEP_STALE_SECONDS)
    invocations = list(
        Invocation.objects.filter(status=InvocationStatus.ACCEPTED, created_at__lte=stale).values_list("pk", flat=True)[
            :1000
        ]
    )
    with transaction.atomic():
        due = list(
            FlowRun.objects.select_for_update(skip_locked=True)
            .filter(Q(status=RunStatus.QUEUED, updated_at__lte=stale) | Q(status=RunStatus.WAITING, resume_at__lte=now))
            .order_by("pk")
            .values_list("pk", flat=True)[:20_000]
        )
        FlowRun.objects.filter(pk__in=due).update(status=RunStatus.QUEUED, updated_at=now)
    running = Invocation.objects.filter(status=InvocationStatus.RUNNING).values_list("pk", flat=True)[:1000]
    _complete_finished_invocations(list(running))
    chunks = [due[i : i + RUN_CHUNK_SIZE] for i in range(0, len(due), RUN_CHUNK_SIZE)]
    return SweepResult(invocations=invocations, run_chunks=chunks)


# --- Test data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedTestData:
    invocations: int
    cards: int
    events: int


def environment_test_data_delete(*, environment: Environment) -> DeletedTestData:
    """Delete every test invocation, run, card and analytics event of the environment."""
    with transaction.atomic():
        cards = Card.objects.filter(environment=environment, test=True).count()
        # delete() counts the cascaded runs and cards too; report the invocations alone.
        _, deleted = Invocation.objects.filter(environment=environment, mode=Mode.TEST).delete()
        invocations = deleted.get(Invocation._meta.label, 0)
        events, _ = AnalyticsEvent.objects.filter(environment=environment, test=True).delete()
    return DeletedTestData(invocations=invocations, cards=cards, events=events)


# --- Environment settings -----------------------------------------------------------------


def environment_analytics_setting_set(*, environment: Environment, include_test_data: bool) -> Environment:
    """Whether the environment's analytics count test data (shown apart from live data)."""
    environment.analytics_include_test_data = include_test_data
    environment.save(update_fields=["analytics_include_test_data"])
    return environment


# --- Restoring a version into the draft ---------------------------------------------------

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    flow: Flow
    version: FlowVersion
    changed: bool  # False: the draft already was that version's definition


def flow_draft_restore(*, flow: Flow, version_number: int, by: User | None = None) -> RestoreResult:
    """Copy a published version's definition into the draft; published versions never change.

    The live version stays live until the draft is published again. Refused: an archived flow
    (409 flow_archived) and a version number the flow does not have (404 not_found).
    """
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status == FlowStatus.ARCHIVED:
            raise FlowRefused(
                409,
                "flow_archived",
                "This flow is archived: its draft can no longer change, so no version can be restored.",
            )
        version = FlowVersion.objects.filter(flow=locked, number=version_number).first()
        if version is None:
            raise FlowRefused(404, "not_found", f"This flow has no version {version_number}.")
        changed = locked.draft != version.definition
        if changed:
            locked.draft = version.definition
            locked.save(update_fields=["draft", "updated_at"])
    # The draft has no author column: the restore is recorded in the log, with who asked.
    logger.info("Flow %s: version %s restored into the draft by %s", locked.pk, version.number, by or "the API")
    flow.draft = locked.draft
    return RestoreResult(flow=locked, version=version, changed=changed)
