"""Writes for action flows: editing and publishing, the start pipeline, and run execution.

Every trigger ends in `invocations_accept`: it validates a start request, makes the accepted
starts durable in one transaction, and only then lets the caller answer 2xx. Execution is
asynchronous and idempotent: `invocation_fan_out` creates one run per target user (a unique
constraint makes a second impossible), `runs_execute` claims runs with row locks and executes
their steps, and `flows_sweep` resends whatever was committed but never picked up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Model, OuterRef, Q
from django.utils import timezone

from customers.models import Customer, TestUser
from workbench.celery import enqueue_batched
from workbench.errors import Refused
from workbench.models import Environment
from workbench.raw_rows import insert_rows_together, json_rows_insert

from . import hooks
from .bulk import insert_new_rows
from .definitions import InvalidDefinition, describe_changes, render_card, resolve_variables, validate_definition
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
)
from .start_requests import InvalidStartRequest, StartRequest, parse_start_requests

RUN_CHUNK_SIZE = 500
# Invocation columns that executing a run never reads (see runs_execute).
INVOCATION_UNUSED_BY_RUNS = ("target_user_ids", "ignored_user_ids", "request")


class FlowRefused(Refused):
    """A refusal of a flow operation, raised before anything is written."""


# --- Editing and publishing -------------------------------------------------------------


def _clean_definition(variables: Any, steps: Any) -> dict[str, Any]:
    try:
        return validate_definition(variables, steps)
    except InvalidDefinition as invalid:
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


def flow_pending_changes(*, flow: Flow) -> list[str]:
    """What publishing now would change, in sentences, for the confirmation."""
    latest = flow_latest_version(flow=flow)
    return describe_changes(latest.definition if latest else None, flow.draft)


@dataclass(frozen=True)
class PublishResult:
    flow: Flow
    version: FlowVersion
    changes: list[str]


def flow_publish(*, flow: Flow, by: User | None = None) -> PublishResult:
    """Snapshot the draft as the next numbered version and make it the live one."""
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status == FlowStatus.ARCHIVED:
            raise FlowRefused(409, "flow_archived", "This flow is archived; it cannot be published.")
        if not locked.draft.get("steps"):
            raise FlowRefused(400, "invalid_request", "Add at least one step before publishing.", {"steps": ["Empty."]})
        latest = flow_latest_version(flow=locked)
        changes = describe_changes(latest.definition if latest else None, locked.draft)
        version = FlowVersion.objects.create(
            flow=locked, number=(latest.number + 1) if latest else 1, definition=locked.draft, published_by=by
        )
        locked.status = FlowStatus.PUBLISHED
        locked.published_version = version.number
        locked.save(update_fields=["status", "published_version", "updated_at"])
    # The caller's instance is current too, whichever of the two it goes on using.
    flow.status, flow.published_version = locked.status, locked.published_version
    return PublishResult(flow=locked, version=version, changes=changes)


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
    status: str  # "accepted" or "duplicate"
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


@dataclass
class AcceptResult:
    outcomes: list[StartOutcome] = field(default_factory=list)

    @property
    def any_accepted(self) -> bool:
        return any(outcome.status == "accepted" for outcome in self.outcomes)


def _content_hash(start: StartRequest) -> str:
    content = {**start.as_canonical(), "flowInvocationId": None}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _definition_for(flow: Flow, mode: str) -> tuple[dict[str, Any], int | None]:
    """Test starts run the draft; live starts the latest published version."""
    if flow.status == FlowStatus.ARCHIVED:
        raise FlowRefused(409, "flow_archived", "This flow is archived; it starts nothing.")
    if mode == Mode.TEST:
        return flow.draft, None
    if not flow.published_version:
        raise FlowRefused(409, "flow_not_published", "Live starts need a published flow; publish it first.")
    if hasattr(flow, "start_version_number"):  # selectors.flow_for_start read it with the flow
        number, definition = flow.start_version_number, flow.start_version_definition  # type: ignore[attr-defined]
    else:
        latest = flow_latest_version(flow=flow)
        number, definition = (latest.number, latest.definition) if latest else (None, None)
    if number is None:
        raise FlowRefused(409, "flow_not_published", "Live starts need a published flow; publish it first.")
    return definition, number


def _location(index: int, count: int) -> str:
    return "variables" if count == 1 else f"{index}.variables"


# Rows a caller writes together with the starts (the webhook intake's request log entry),
# made from the outcomes. On the one-statement path they are made before the insert, when
# every outcome is "accepted" and has no invocation_id yet.
Companions = Callable[[list[StartOutcome]], Sequence[Model]]


def invocations_accept(
    *,
    flow: Flow,
    mode: str,
    body: Any,
    source: str,
    trigger_id: int | None = None,
    companions: Companions | None = None,
) -> AcceptResult:
    """Accept every start of a start request, or none of them.

    1. Parse and validate the whole request (400 invalid_request / missing_variables) and
       pick the definition: the draft for tests, the latest version for live (409s). A
       request that only repeats accepted starts gets their original results instead.
    2. Test starts keep only test users.
    3. Write the invocations and the caller's companion rows in ONE statement. Nearly
       every start ends here. A given key that is already taken leaves the statement
       without effect; a request repeating accepted starts then gets their original
       results, and any other:
    4. in a transaction, per start: insert under its key with a savepoint; an existing one
       with the same content is a duplicate, with other content a 409.
    5. After commit, hand the fan-outs to the batched publisher; if the broker is down the
       sweep sends them later. The fan-out records the acceptance event and creates the
       missing profiles (`invocation_fan_out`): the answer waits only for the invocation.
    """
    try:
        starts = parse_start_requests(body)
    except InvalidStartRequest as invalid:
        raise FlowRefused(400, "invalid_request", "The start request is not valid.", invalid.errors) from None
    try:
        definition, version_number, resolved = _checked_starts(flow, mode, starts)
    except FlowRefused:
        repeated = _repeated(flow, mode, starts, companions)
        if repeated is None:
            raise
        return repeated

    test_users = _test_user_ids(flow.environment_id) if mode == Mode.TEST else set()
    invocations = [
        _new_invocation(flow, mode, start, variables, definition, version_number, source, trigger_id)
        for start, variables in zip(starts, resolved, strict=True)
    ]
    for invocation in invocations:
        _keep_test_users_only(invocation, test_users)
    keyed = any(start.flow_invocation_id is not None for start in starts)
    try:
        inserted = _insert_at_once(invocations, companions, keyed=keyed)
    except IntegrityError:
        if not keyed:
            raise  # generated keys cannot be taken: this is some other failure
        inserted = False
    if not inserted:
        # Mostly a sender retrying a delivery it was answered for: its original results.
        repeated = _repeated(flow, mode, starts, companions)
        return repeated or _accept_one_by_one(invocations, starts, companions)
    accepted_ids = [invocation.pk for invocation in invocations]
    # Outside a transaction the statement has committed and this sends at once.
    transaction.on_commit(lambda: _send_fan_outs(accepted_ids))
    return AcceptResult(outcomes=[_outcome(invocation, "accepted") for invocation in invocations])


def _repeated(flow: Flow, mode: str, starts: list[StartRequest], companions: Companions | None) -> AcceptResult | None:
    """The original results (with the caller's companion rows written) when every start
    repeats an accepted one with the same content; None otherwise."""
    repeats = _repeated_outcomes(flow, mode, starts)
    if repeats is None:
        return None
    if companions is not None:
        _save_rows(companions(repeats))
    return AcceptResult(outcomes=repeats)


def _checked_starts(
    flow: Flow, mode: str, starts: list[StartRequest]
) -> tuple[dict[str, Any], int | None, list[dict[str, Any]]]:
    """The definition the starts run, its version number, and each start's resolved variables."""
    definition, version_number = _definition_for(flow, mode)
    resolved: list[dict[str, Any]] = []
    missing_errors: dict[str, list[str]] = {}
    for index, start in enumerate(starts):
        variables, missing = resolve_variables(definition, start.variables)
        if missing:
            missing_errors[_location(index, len(starts))] = [f"Missing required variable: {name}." for name in missing]
        resolved.append(variables)
    if missing_errors:
        raise FlowRefused(400, "missing_variables", "Required variables have no value and no default.", missing_errors)
    return definition, version_number, resolved


def _accept_one_by_one(
    invocations: list[Invocation],
    starts: list[StartRequest],
    companions: Companions | None,
) -> AcceptResult:
    """The path of a request that reuses a key: each start under its key, in one transaction."""
    result = AcceptResult()
    accepted: list[Invocation] = []
    with transaction.atomic():
        for invocation, start in zip(invocations, starts, strict=True):
            invocation.pk, invocation._state.adding = None, True  # in case SQLite's try saved it
            outcome = _insert_once(invocation, start.flow_invocation_id is not None)
            result.outcomes.append(outcome)
            if outcome.status == "accepted":
                accepted.append(invocation)
        if accepted:
            accepted_ids = [invocation.pk for invocation in accepted]
            transaction.on_commit(lambda: _send_fan_outs(accepted_ids))
        if companions is not None:
            _save_rows(companions(result.outcomes))
    return result


def _repeated_outcomes(flow: Flow, mode: str, starts: list[StartRequest]) -> list[StartOutcome] | None:
    """The original results when every start repeats an accepted one with the same content.

    A client retrying a start it was already answered for gets that answer again, even if
    the flow has been archived or its variables changed since; anything else is checked.
    """
    keys = {start.flow_invocation_id for start in starts}
    if None in keys:
        return None
    existing = {
        invocation.flow_invocation_id: invocation
        for invocation in Invocation.objects.filter(flow=flow, mode=mode, flow_invocation_id__in=keys).only(
            "flow_invocation_id", "content_hash", "target_user_ids", "ignored_user_ids"
        )
    }
    outcomes = []
    for start in starts:
        original = existing.get(start.flow_invocation_id or "")
        if original is None or original.content_hash != _content_hash(start):
            return None
        outcomes.append(_outcome(original, "duplicate"))
    return outcomes


def _test_user_ids(environment_id: int) -> set[str]:
    return set(TestUser.objects.filter(environment_id=environment_id).values_list("user_id", flat=True))


def _new_invocation(
    flow: Flow,
    mode: str,
    start: StartRequest,
    variables: dict[str, Any],
    definition: dict[str, Any],
    version_number: int | None,
    source: str,
    trigger_id: int | None,
) -> Invocation:
    flow_invocation_id = start.flow_invocation_id or uuid.uuid4().hex
    return Invocation(
        environment_id=flow.environment_id,
        flow=flow,
        mode=mode,
        flow_invocation_id=flow_invocation_id,
        source=source,
        trigger_id=trigger_id,
        content_hash=_content_hash(start),
        request={**start.as_canonical(), "flowInvocationId": flow_invocation_id},
        definition=definition,
        version_number=version_number,
        variables=variables,
        notification_detail=start.notification_detail,
        metadata=start.metadata,
        card_options=start.card_options,
        target_user_ids=start.target_user_ids,
        ignored_user_ids=[],
    )


def _keep_test_users_only(invocation: Invocation, test_users: set[str]) -> None:
    """Test starts deliver only to test users; every other id is listed as ignored."""
    if invocation.mode != Mode.TEST:
        return
    targets = invocation.target_user_ids
    invocation.target_user_ids = [user_id for user_id in targets if user_id in test_users]
    invocation.ignored_user_ids = [user_id for user_id in targets if user_id not in test_users]


def _insert_once(invocation: Invocation, key_was_given: bool) -> StartOutcome:
    """Insert under the idempotency key: accepted, a duplicate, or 409 for other content."""
    if not key_was_given:
        invocation.save()  # a freshly generated key cannot collide
        return _outcome(invocation, "accepted")
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
        return _outcome(existing, "duplicate")
    return _outcome(invocation, "accepted")


def _outcome(invocation: Invocation, status: str) -> StartOutcome:
    return StartOutcome(
        flow_invocation_id=invocation.flow_invocation_id,
        status=status,
        target_count=len(invocation.target_user_ids),
        ignored_user_ids=list(invocation.ignored_user_ids),
        invocation_id=invocation.pk,
    )


def _insert_at_once(invocations: list[Invocation], companions: Companions | None, *, keyed: bool) -> bool:
    """Insert the invocations and the companion rows in ONE statement
    (workbench.raw_rows.insert_rows_together).

    All of it is durable when this returns True, or none of it: a taken key returns False
    (one keyed start, the usual sender retry: ON CONFLICT DO NOTHING, and the rest only if
    the invocation was inserted) or raises IntegrityError (several starts, or SQLite).
    Outside a transaction the statement is its own transaction; inside one, a savepoint
    keeps a failure from breaking the caller's transaction. Other databases (SQLite, the
    embedded default) take the same rows in a transaction.
    """
    extra_rows: list[Model] = []
    if companions is not None:
        extra_rows = list(companions([_outcome(invocation, "accepted") for invocation in invocations]))
    if connection.vendor != "postgresql":  # data-modifying CTEs are PostgreSQL's
        with transaction.atomic():
            for invocation in invocations:
                invocation.save()
            _save_rows(extra_rows)
        return True
    one_keyed = keyed and len(invocations) == 1
    parts = [json_rows_insert(invocations, returning=("id", "flow_invocation_id"), ignore_conflicts=one_keyed)]
    parts.extend(json_rows_insert(rows) for rows in _by_model(extra_rows))
    # Inside a transaction, a savepoint: a taken key must not break the caller's transaction.
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with savepoint:
        rows = insert_rows_together(parts, only_if_first_inserts=one_keyed)
    if not rows:
        return False
    ids = dict((key, pk) for pk, key in rows)  # one flow and mode: keys are unique here
    for invocation in invocations:
        invocation.pk = ids[invocation.flow_invocation_id]
        invocation._state.adding = False
        invocation._state.db = connection.alias
    return True


def _by_model(rows: Sequence[Model]) -> list[list[Model]]:
    grouped: dict[type[Model], list[Model]] = defaultdict(list)
    for row in rows:
        grouped[type(row)].append(row)
    return list(grouped.values())


def _save_rows(rows: Sequence[Model]) -> None:
    for same_model in _by_model(rows):
        type(same_model[0])._default_manager.bulk_create(same_model)


def _send_fan_outs(invocation_ids: Iterable[int]) -> None:
    from .tasks import fan_out_invocations  # tasks import services; import here to avoid a cycle

    enqueue_batched(fan_out_invocations, invocation_ids)


# --- Execution ----------------------------------------------------------------------------


def _create_missing_profiles(environment_id: int, user_ids: list[str], now: Any) -> None:
    """A live start to a userId with no profile creates a minimal one (existing ones are
    left alone). In userId order, so that concurrent fan-outs lock rows in the same order."""
    profiles = [
        Customer(environment_id=environment_id, user_id=user_id, created_at=now, updated_at=now)
        for user_id in sorted(set(user_ids))
    ]
    Customer.objects.bulk_create(profiles, ignore_conflicts=True, batch_size=1000)


def invocation_fan_out(*, invocation_id: int) -> list[list[int]]:
    """Take up an accepted invocation, at most once whatever happens, and return run chunks.

    1. Lock the invocation; only one in status accepted is taken up.
    2. Record its `flow-invocation-accepted` event (at the time it was accepted) and, for a
       live one, the minimal profiles of target users who have none. They are written here
       rather than with the acceptance so that a start's answer waits for one row only.
    3. Create one run per target user and mark the invocation running (or completed, with
       no targets).

    Idempotent: a second call finds the invocation already running and only returns the
    chunks of runs still queued, so a redelivered message resends their execution.
    """
    with transaction.atomic():
        invocation = Invocation.objects.select_for_update().filter(pk=invocation_id).first()
        if invocation is None:
            return []
        if invocation.status == InvocationStatus.ACCEPTED:
            now = timezone.now()
            AnalyticsEvent.objects.create(
                environment_id=invocation.environment_id,
                name="flow-invocation-accepted",
                flow_id=invocation.flow_id,
                flow_invocation_id=invocation.flow_invocation_id,
                test=invocation.is_test,
                properties={"source": invocation.source, "targetCount": len(invocation.target_user_ids)},
                occurred_at=invocation.created_at,
            )
            if not invocation.is_test:
                _create_missing_profiles(invocation.environment_id, invocation.target_user_ids, now)
            # Under the invocation's lock, in status accepted, none of its runs exists yet.
            insert_new_rows(
                FlowRun,
                [
                    FlowRun(
                        environment_id=invocation.environment_id,
                        invocation=invocation,
                        flow_id=invocation.flow_id,
                        user_id=user_id,
                        test=invocation.is_test,
                        created_at=now,
                        updated_at=now,
                    )
                    for user_id in invocation.target_user_ids
                ],
            )
            invocation.status = InvocationStatus.RUNNING if invocation.target_user_ids else InvocationStatus.COMPLETED
            invocation.fanned_out_at = now
            invocation.completed_at = None if invocation.target_user_ids else now
            invocation.save(update_fields=["status", "fanned_out_at", "completed_at"])
    run_ids = list(
        FlowRun.objects.filter(invocation_id=invocation_id, status=RunStatus.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [run_ids[i : i + RUN_CHUNK_SIZE] for i in range(0, len(run_ids), RUN_CHUNK_SIZE)]


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
        insert_new_rows(Card, [card for item in progress for card in item.cards])
        insert_new_rows(AnalyticsEvent, [event for item in progress for event in item.events])
        _save_run_states([item.run for item in progress], now)
    _complete_finished_invocations({run.invocation_id for run in runs})
    return [
        (run.pk, max(0.0, (run.resume_at - now).total_seconds()))
        for run in runs
        if run.status == RunStatus.WAITING and run.resume_at is not None
    ]


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

    1. Invocations accepted but not fanned out for a while (the broker was down, or the
       message was lost with a worker).
    2. Runs queued but untouched for a while; their updated_at is moved forward so that the
       next sweep does not send them again while they wait in a busy queue.
    3. Waiting runs whose resume_at has passed become queued.
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
