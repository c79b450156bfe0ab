"""Segments' writes: segments themselves, their full evaluation, and keeping membership current.

How membership stays current (SPEC section 5, "Membership is kept current"):

- Creating or editing rules sets the segment `computing` and sends `segments.evaluate` after the
  commit. `segment_evaluate` holds a lease on the segment (not an "is computing" flag: a worker
  that dies leaves a lease that runs out and the sweep starts again), diffs the rules' matching
  set against the ledger in SQL and flips the ledger in batches (segments.ledger), each batch a
  transaction that also announces its transitions.
- A change of customer data is announced by customers (customers_changed, events_recorded); we
  write CustomerMark rows in that same transaction and send `segments.process_marks` after it.
  `marks_process` re-evaluates the marked customers for the segments whose rules read what
  changed, and deletes the marks in the transaction that applies the transitions (a crash
  redoes them).
- Time alone changes rules like `lastSeenAt withinLastDays 7`: `segments_time_recheck` (beat,
  every minute) marks the customers whose timestamps crossed a boundary since the last check.
- `segments_sweep` (beat) sends again what was committed and never picked up.

Exactly once: the ledger's statements flip a row only if it is not already in the new state and
return only the rows they flipped; the transaction that flips them announces them on
customers.hooks.segment_transitions (flows writes the analytics events, triggers the starts).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.hooks import RecordedEvent, SegmentTransition, segment_transitions
from customers.models import Customer, Event, EventDailyCount
from workbench.celery import enqueue
from workbench.errors import Invalid, Refused
from workbench.models import Environment

from . import hooks, ledger
from .ledger import SegmentRef
from .models import CustomerMark, Segment, SegmentSize, SegmentStatus
from .rules import CUSTOM_PREFIX, DATE_FIELDS, References, rules_clean, rules_references

logger = logging.getLogger(__name__)

NAME_MAX = 200


# Read at call time (workbench/settings.py explains them), so tests can override them.
def statement_timeout_ms() -> int:
    return int(settings.SEGMENT_STATEMENT_TIMEOUT_MS)


def lease_seconds() -> int:
    return int(settings.SEGMENT_LEASE_SECONDS)


def evaluation_batch() -> int:
    return int(settings.SEGMENT_EVALUATION_BATCH)


# --- segments -----------------------------------------------------------------------------


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid({"name": ["A segment needs a name."]})
    name = name.strip()
    if len(name) > NAME_MAX:
        raise Invalid({"name": [f"At most {NAME_MAX} characters."]})
    return name


def _send_evaluation(segment_id: int) -> None:
    transaction.on_commit(lambda: enqueue("segments.evaluate", segment_id))


def segment_create(*, environment: Environment, name: str, rules: dict[str, Any], by: Any | None = None) -> Segment:
    """Save a segment and have it evaluated fully in the background (`computing` until done)."""
    errors: dict[str, list[str]] = {}
    try:
        name = _clean_name(name)
    except Invalid as error:
        errors.update(error.errors)
    try:
        rules = rules_clean(rules, environment_id=environment.pk)
    except Invalid as error:
        errors.update(error.errors)  # keyed "rules.conditions[2].op" already
    if errors:
        raise Invalid(errors)
    with transaction.atomic():
        moment = timezone.now()
        segment = Segment.objects.create(
            environment=environment,
            name=name,
            rules=rules,
            status=SegmentStatus.COMPUTING,
            created_by=by if getattr(by, "pk", None) else None,
            created_at=moment,
            updated_at=moment,
        )
        _send_evaluation(segment.pk)
    return segment


def segment_update(*, segment: Segment, name: str | None = None, rules: dict[str, Any] | None = None) -> Segment:
    """Rename a segment and/or change its rules; new rules are evaluated fully in the background:
    members who no longer match exit, new matches enter, those who stay emit nothing."""
    errors: dict[str, list[str]] = {}
    new_name = segment.name
    new_rules: dict[str, Any] | None = None
    if name is not None:
        try:
            new_name = _clean_name(name)
        except Invalid as error:
            errors.update(error.errors)
    if rules is not None:
        try:
            new_rules = rules_clean(rules, environment_id=segment.environment_id, segment_id=segment.pk)
        except Invalid as error:
            errors.update(error.errors)  # keyed "rules.conditions[2].op" already
    if errors:
        raise Invalid(errors)
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        changes: dict[str, Any] = {"name": new_name, "updated_at": timezone.now()}
        # Saving the rules of a failed segment again, even unchanged, is a retry.
        if new_rules is not None and (new_rules != locked.rules or locked.status == SegmentStatus.FAILED):
            changes.update(rules=new_rules, status=SegmentStatus.COMPUTING, last_error="")
            changes["rules_version"] = F("rules_version") + 1
            _send_evaluation(segment.pk)
        Segment.objects.filter(pk=segment.pk).update(**changes)
    segment.refresh_from_db()
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment and its ledger; refused while another segment's rules or a trigger
    (through `segment_deleting`) use it."""
    segments = sorted(
        repr(other.name)
        for other in Segment.objects.filter(environment_id=segment.environment_id).exclude(pk=segment.pk)
        if segment.pk in _references(other).segments
    )
    triggers: list[str] = []
    hooks.segment_deleting.announce(segment=segment, users=triggers)
    if segments or triggers:
        users = [f"the rules of {name}" for name in segments] + sorted(triggers)
        raise Refused(
            409,
            "segment_in_use",
            f"The segment is used by {', '.join(users)}: change or remove those first.",
            errors={"segments": [name.strip("'") for name in segments], "triggers": sorted(triggers)},
        )
    segment.delete()


@lru_cache(maxsize=4096)
def _references_of(segment_id: int, rules_version: int, rules_text: str) -> References:
    return rules_references(json.loads(rules_text))


def _references(segment: Segment) -> References:
    """A segment's References, parsed once per version of its rules."""
    return _references_of(segment.pk, segment.rules_version, json.dumps(segment.rules, sort_keys=True))


# --- full evaluation ----------------------------------------------------------------------


class Outcome(StrEnum):
    READY = "ready"  # evaluated; the segment is ready
    FAILED = "failed"  # evaluated with an error; the segment shows it
    BUSY = "busy"  # another worker holds the lease, or nothing to compute
    LOST = "lost"  # the lease was taken over (it ran out); the new holder finishes
    PAUSED = "paused"  # stopped early (time limit): left computing for the sweep


class _Stop(Exception):
    def __init__(self, outcome: Outcome | None) -> None:
        self.outcome = outcome  # None: the rules changed under us; start again


def _claim(segment_id: int, now: datetime) -> str | None:
    """Take the segment's lease (healthchecks-style conditional update): free, or run out."""
    token = secrets.token_hex(16)
    claimed = (
        Segment.objects.filter(pk=segment_id, status=SegmentStatus.COMPUTING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_token=token, lease_until=now + timedelta(seconds=lease_seconds()))
    )
    return token if claimed == 1 else None


def _renew(segment_id: int, token: str, version: int) -> None:
    renewed = Segment.objects.filter(pk=segment_id, lease_token=token, rules_version=version).update(
        lease_until=timezone.now() + timedelta(seconds=lease_seconds())
    )
    if renewed != 1:
        still_ours = Segment.objects.filter(pk=segment_id, lease_token=token).exists()
        raise _Stop(None if still_ours else Outcome.LOST)


def _release(segment_id: int, token: str) -> None:
    Segment.objects.filter(pk=segment_id, lease_token=token).update(lease_token="", lease_until=None)


def segment_evaluate(*, segment_id: int, previous: PreviousRules | None = None) -> Outcome:
    """Evaluate a `computing` segment fully; idempotent (a redelivered message finds nothing to do).

    1. Take the lease. 2. Write the diff of the rules' matching set against the ledger (one
    statement; or, after an edit that can only narrow or only widen the rules it was `previous`ly
    ready with, only the members' or only the possible entrants' part of it: see edit_plan).
    3. In batches of user ids from the diff, each in its own transaction: renew the
    lease, lock the customers, flip their rows with the predicate re-checked, announce. 4. Mark
    the segment ready with its member count and a size point; if the rules changed meanwhile,
    start again with the new ones instead. An error marks the segment failed with `lastError`.
    """
    while True:
        started = timezone.now()
        token = _claim(segment_id, started)
        if token is None:
            return Outcome.BUSY
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            return Outcome.BUSY
        version = segment.rules_version
        ref = SegmentRef(segment.pk, segment.environment_id, segment.name, segment.rules)
        if previous is None and segment.evaluated_rules is not None:
            # The ledger is in line with the rules last evaluated, whatever edits came between.
            previous = PreviousRules(rules=segment.evaluated_rules, version=version)
        plan = None
        if previous is not None and previous.version == version and segment.time_checked_at is not None:
            plan = edit_plan(previous.rules, segment.rules)
        outcome: Outcome | None
        try:
            partial = _evaluate_batches(ref, token, version, started, plan)
            outcome = _finish(ref, token, version, started, partial=partial)
        except _Stop as stop:
            outcome = stop.outcome
        except SoftTimeLimitExceeded:
            # Out of time, not wrong: what is flipped stays flipped; the sweep sends it again
            # once the lease is released, and the next run's diff is what is left.
            _release(segment_id, token)
            return Outcome.PAUSED
        except Exception as error:
            logger.exception("Evaluating segment %s failed", segment_id)
            outcome = _fail(segment_id, token, version, error)
        finally:
            try:
                ledger.diff_drop()
            except DatabaseError:
                logger.warning("Could not drop the evaluation's scratch table", exc_info=True)
        if outcome is not None:
            return outcome
        _release(segment_id, token)  # the rules changed meanwhile: evaluate the new ones


def _evaluate_batches(
    segment: SegmentRef, token: str, version: int, started: datetime, plan: EditPlan | None = None
) -> bool:
    """Flip the ledger in batches; returns whether only part of the customers were looked at
    (an edit plan's shortcut) rather than all of them."""
    with transaction.atomic():
        ledger.statement_timeout(statement_timeout_ms())
        changed = _diff_prepare_shortcut(segment, started, plan) if plan is not None else None
        if changed is None:
            ledger.diff_prepare(segment=segment, now=started)
    dependents = _dependents(segment)
    after: str | None = None
    size = evaluation_batch()
    while True:
        user_ids = ledger.diff_batch(after=after, size=size)
        if not user_ids:
            return changed is not None
        after = user_ids[-1]
        _renew(segment.id, token, version)
        with transaction.atomic():
            ledger.statement_timeout(statement_timeout_ms())
            transitions = ledger.ledger_reconcile(segment=segment, user_ids=user_ids, now=timezone.now())
            _announce(transitions, dependents)


def _finish(
    segment: SegmentRef, token: str, version: int, started: datetime, *, partial: bool = False
) -> Outcome | None:
    """Mark the segment ready (None: its rules changed meanwhile; evaluate again).

    After a `partial` evaluation (an edit plan's shortcut) the time-relative re-check keeps its
    earlier mark: the customers left out were not looked at `started`, and those whom time moved
    across a boundary since that mark must still be re-checked (the new rules keep every
    boundary of the old ones: edit_plan allows no other edit)."""
    with transaction.atomic():
        # Locked first, counted after: an incremental change that commits after the count
        # waits for this row and adds its difference to the count written here.
        current = Segment.objects.select_for_update().filter(pk=segment.id).first()
        if current is None or current.lease_token != token:
            return Outcome.LOST
        if current.rules_version != version:
            return None
        count = ledger.members_count(segment_id=segment.id)
        finished = timezone.now()
        Segment.objects.filter(pk=segment.id).update(
            status=SegmentStatus.READY,
            member_count=count,
            last_computed_at=finished,
            last_error="",
            lease_token="",
            lease_until=None,
            time_checked_at=current.time_checked_at if partial else started,
            evaluated_rules=segment.rules,
        )
        SegmentSize.objects.create(segment_id=segment.id, measured_at=finished, member_count=count)
    return Outcome.READY


def _fail(segment_id: int, token: str, version: int, error: Exception) -> Outcome | None:
    """Show the error on the segment (None: its rules changed meanwhile; evaluate again)."""
    message = str(error).strip() or type(error).__name__
    if isinstance(error, DatabaseError) and "statement timeout" in message:
        message = f"The evaluation took longer than {statement_timeout_ms() // 1000} s per statement and was stopped."
    failed = Segment.objects.filter(pk=segment_id, lease_token=token, rules_version=version).update(
        status=SegmentStatus.FAILED,
        last_error=message[:2000],
        last_computed_at=timezone.now(),
        lease_token="",
        lease_until=None,
    )
    if failed:
        return Outcome.FAILED
    return None if Segment.objects.filter(pk=segment_id, lease_token=token).exists() else Outcome.LOST


def _dependents(segment: SegmentRef) -> bool:
    """Whether another segment's rules read this one (its transitions then re-mark customers)."""
    return any(
        segment.id in _references(other).segments
        for other in Segment.objects.filter(environment_id=segment.environment_id).exclude(pk=segment.id)
    )


def _announce(transitions: Sequence[SegmentTransition], dependents: bool) -> None:
    """Inside the transaction that flipped the rows: tell flows and triggers; re-mark the
    customers for the segments that contain this one."""
    if not transitions:
        return
    segment_transitions.announce(transitions=list(transitions))
    if dependents:
        marks = [
            CustomerMark(
                environment_id=transition.environment_id,
                user_id=transition.user_id,
                fields=[f"segment:{transition.segment_id}"],
            )
            for transition in transitions
        ]
        CustomerMark.objects.bulk_create(marks, batch_size=1000)
        transaction.on_commit(lambda: enqueue("segments.process_marks"))


# --- edits that can only narrow or only widen the rules ----------------------------------


@dataclass(frozen=True)
class PreviousRules:
    """The rules a segment was ready with (its ledger brought fully in line with them) just
    before the edit that made `version` of its rules."""

    rules: dict[str, Any]
    version: int


class Direction(StrEnum):
    SAME = "same"
    NARROWER = "narrower"  # every customer the new rules match, the old ones matched
    WIDER = "wider"  # every customer the old rules matched, the new ones match


@dataclass(frozen=True)
class EditPlan:
    """Which customers an edit can move. NARROWER: only members can change (they can only exit),
    so the new rules are evaluated over the members alone. WIDER: only non-members can change
    (enter), and each of them matches `entrants`, a test cheaper than the rules (for
    `plan in [a, b]` -> `[a, b, c]`: `plan in [c]`); the new rules are evaluated over the
    customers it matches, less the members."""

    direction: Direction
    entrants: dict[str, Any] | None = None


# Past this many customers to look at, a shortcut is no cheaper than the full computation
# (each batch of them is a statement with their ids as an array).
SHORTCUT_MAX_CUSTOMERS = 200_000
SHORTCUT_CHUNK = 10_000


def edit_plan(old: dict[str, Any], new: dict[str, Any]) -> EditPlan | None:
    """What an edit from `old` to `new` rules can change, or None: evaluate everyone.

    Recognised edits (anything else is None): conditions added to the top-level group (under
    `all` the rules narrow, under `any` they widen), and value-set tests whose set grew or
    shrank (`in`/`notIn`, `hasAny`/`hasAll`/`hasNone`), alone or together, as long as every
    change goes the same way. Rules without a change are NARROWER (nothing can enter).
    """
    direction = _group_direction(old, new)
    if direction is None:
        return None
    if direction != Direction.WIDER:
        return EditPlan(Direction.NARROWER)
    entrants = _entrants(old, new)
    return EditPlan(Direction.WIDER, entrants) if entrants is not None else None


def _group_direction(old: dict[str, Any], new: dict[str, Any]) -> Direction | None:
    if old.get("match") != new.get("match") or old.get("match") not in ("all", "any"):
        return None
    before, after = list(old.get("conditions") or []), list(new.get("conditions") or [])
    if len(after) > len(before):
        added = _added(before, after)
        if added is None:
            return None
        return Direction.NARROWER if old["match"] == "all" else Direction.WIDER
    if len(after) != len(before):
        return None
    found = {_condition_direction(a, b) for a, b in zip(before, after, strict=True)}
    if None in found:
        return None
    found.discard(Direction.SAME)
    if not found:
        return Direction.SAME
    return found.pop() if len(found) == 1 else None


def _added(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conditions of `after` that `before` does not have, if `after` has all of `before`'s."""
    rest = list(after)
    for condition in before:
        if condition not in rest:
            return None
        rest.remove(condition)
    return rest


_VALUE_SET_OPS: dict[str, Direction] = {
    # op: how the test moves when its set of values grows
    "in": Direction.WIDER,
    "notIn": Direction.NARROWER,
    "hasAny": Direction.WIDER,
    "hasAll": Direction.NARROWER,
    "hasNone": Direction.NARROWER,
}


def _opposite(direction: Direction) -> Direction:
    return Direction.WIDER if direction == Direction.NARROWER else Direction.NARROWER


def _condition_direction(old: dict[str, Any], new: dict[str, Any]) -> Direction | None:
    if old == new:
        return Direction.SAME
    if "conditions" in old and "conditions" in new:
        return _group_direction(old, new)
    sets = _value_sets(old, new)
    if sets is None:
        return None
    before, after = sets
    grows = _VALUE_SET_OPS[old["op"]]
    if before == after:
        return Direction.SAME
    if before <= after:
        return grows
    if after <= before:
        return _opposite(grows)
    return None


def _value_sets(old: dict[str, Any], new: dict[str, Any]) -> tuple[set[str], set[str]] | None:
    """The two value sets of a value-set test that only its values changed, as JSON texts
    (a subset of texts is a subset of what they match, whatever the comparison's case or type)."""
    if old.get("op") != new.get("op") or old.get("op") not in _VALUE_SET_OPS:
        return None
    key = "value" if "field" in old else "tags"
    if {k: v for k, v in old.items() if k != key} != {k: v for k, v in new.items() if k != key}:
        return None
    if not isinstance(old.get(key), list) or not isinstance(new.get(key), list):
        return None
    return {json.dumps(v, sort_keys=True) for v in old[key]}, {json.dumps(v, sort_keys=True) for v in new[key]}


def _entrants(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """A test that every customer entering on a WIDER edit of the top-level group passes.

    An entrant matches the new rules and not the old ones. Added alternatives of an `any`:
    it matches one of them. Changed conditions: it fails an old condition whose new version it
    passes, so it matches one of the changes' differences ("in [c]" for "in [a, b]" -> "in [a,
    b, c]"; the new condition itself where no simpler difference is known)."""
    before, after = list(old.get("conditions") or []), list(new.get("conditions") or [])
    if len(after) > len(before):
        return {"match": "any", "conditions": _added(before, after) or []}
    differences = [
        _difference(a, b)
        for a, b in zip(before, after, strict=True)
        if _condition_direction(a, b) != Direction.SAME  # the same set in another order too
    ]
    return {"match": "any", "conditions": differences}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A test every customer passes who passes the WIDER `new` condition and fails `old`: the
    values that a grown `in`/`hasAny` gained, or that a shrunk `notIn`/`hasNone` lost (their
    customers hold one of those), else the new condition itself."""
    sets = _value_sets(old, new)
    if sets is None:
        return new
    op = old["op"]
    key = "value" if "field" in old else "tags"
    if op in ("in", "hasAny"):
        source, texts, positive = new[key], sets[1] - sets[0], op
    elif op in ("notIn", "hasNone"):
        source, texts, positive = old[key], sets[0] - sets[1], "in" if op == "notIn" else "hasAny"
    else:
        return new
    return {**new, "op": positive, key: [value for value in source if json.dumps(value, sort_keys=True) in texts]}


def _diff_prepare_shortcut(segment: SegmentRef, now: datetime, plan: EditPlan) -> int | None:
    """The diff of an edit plan's shortcut, or None when it would look at too many customers."""
    if plan.direction == Direction.WIDER:
        assert plan.entrants is not None
        return ledger.diff_prepare_entries(
            segment=segment, entrants=plan.entrants, now=now, limit=SHORTCUT_MAX_CUSTOMERS, chunk=SHORTCUT_CHUNK
        )
    return ledger.diff_prepare_exits(segment=segment, now=now, limit=SHORTCUT_MAX_CUSTOMERS, chunk=SHORTCUT_CHUNK)


# --- incremental --------------------------------------------------------------------------


def customers_mark(*, environment_id: int, user_ids: Iterable[str], fields: Iterable[str]) -> None:
    """Mark customers whose data changed (customers_changed subscriber), in the caller's
    transaction, if a segment of their environment reads what changed."""
    user_ids = list(dict.fromkeys(user_ids))
    fields = sorted(set(fields))
    if not user_ids or not fields:
        return
    if not _segments_reading(environment_id, fields):
        return
    CustomerMark.objects.bulk_create(
        [CustomerMark(environment_id=environment_id, user_id=user_id, fields=fields) for user_id in user_ids],
        batch_size=1000,
    )
    transaction.on_commit(lambda: enqueue("segments.process_marks"))


def events_mark(*, events: Sequence[RecordedEvent]) -> None:
    """Mark the customers of recorded events (events_recorded subscriber), as 'event:<name>'."""
    by_customer: dict[tuple[int, str], set[str]] = defaultdict(set)
    for event in events:
        by_customer[(event.environment_id, event.user_id)].add(f"event:{event.name}")
    wanted: dict[int, bool] = {}
    marks = []
    for (environment_id, user_id), fields in by_customer.items():
        if environment_id not in wanted:
            names = {f"event:{event.name}" for event in events if event.environment_id == environment_id}
            wanted[environment_id] = _segments_reading(environment_id, sorted(names))
        if wanted[environment_id]:
            marks.append(CustomerMark(environment_id=environment_id, user_id=user_id, fields=sorted(fields)))
    if marks:
        CustomerMark.objects.bulk_create(marks, batch_size=1000)
        transaction.on_commit(lambda: enqueue("segments.process_marks"))


def _segments_reading(environment_id: int, fields: Sequence[str]) -> bool:
    # A segment created while this transaction runs is not seen here; its full evaluation,
    # which starts after its own commit, reads whatever this transaction commits before it.
    segments = Segment.objects.filter(environment_id=environment_id).only("id", "rules", "rules_version")
    return any(_reads(_references(segment), segment.pk, fields) for segment in segments)


def _reads(references: References, segment_id: int, fields: Iterable[str]) -> bool:
    """Whether a segment whose rules read `references` must look again at a customer whose
    `fields` changed ('*' everything, 'tags', 'customFields.<key>', a profile field,
    'event:<name>', 'segment:<id>' its membership of another segment, 'time:<id>' a boundary
    of this segment's time-relative rules)."""
    for changed in fields:
        if changed == "*" or changed == f"time:{segment_id}":
            return True
        if changed == "tags":
            if references.tags:
                return True
        elif changed.startswith("event:"):
            if changed[6:] in references.events:
                return True
        elif changed.startswith("segment:"):
            if changed[8:].isdigit() and int(changed[8:]) in references.segments:
                return True
        elif changed in references.fields:
            return True
    return False


@dataclass
class MarksResult:
    processed: int = 0
    transitions: int = 0
    more: bool = False


def marks_process(*, limit: int = 500) -> MarksResult:
    """Re-evaluate marked customers for the segments that read what changed (one batch).

    1. Claim up to `limit` marks (FOR UPDATE SKIP LOCKED on PostgreSQL: several workers share
    the queue; SQLite has one writer at a time). 2. Lock the claimed customers (sorted; see
    segments.ledger). 3. Per segment that reads what changed for some of them, flip their rows
    with the ledger's statements and announce. 4. Adjust member counts; delete the marks. All in
    one transaction: a crash leaves the marks to be done again, and the ledger flips nothing twice.
    """
    result = MarksResult()
    with transaction.atomic():
        claimed = CustomerMark.objects.order_by("pk")
        if connection.vendor == "postgresql":
            claimed = claimed.select_for_update(skip_locked=True)
        marks = list(claimed.values_list("pk", "environment_id", "user_id", "fields")[:limit])
        if not marks:
            return result
        changed: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for _, environment_id, user_id, fields in marks:
            changed[environment_id][user_id].update(fields or ["*"])
        now = timezone.now()
        transitions: list[SegmentTransition] = []
        for environment_id in sorted(changed):
            transitions += _reevaluate(environment_id, changed[environment_id], now)
        CustomerMark.objects.filter(pk__in=[mark[0] for mark in marks]).delete()
        result.processed = len(marks)
        result.transitions = len(transitions)
    result.more = len(marks) == limit or CustomerMark.objects.exists()
    return result


def _reevaluate(environment_id: int, customers: dict[str, set[str]], now: datetime) -> list[SegmentTransition]:
    ledger.customers_lock(environment_id, list(customers))
    transitions: list[SegmentTransition] = []
    segments = list(Segment.objects.filter(environment_id=environment_id).order_by("pk"))
    dependents: dict[int, bool] = {}
    for segment in segments:
        references = _references(segment)
        user_ids = sorted(user for user, fields in customers.items() if _reads(references, segment.pk, fields))
        if not user_ids:
            continue
        ref = SegmentRef(segment.pk, environment_id, segment.name, segment.rules)
        try:
            with transaction.atomic():  # a savepoint: one segment's error spares the others
                ledger.statement_timeout(statement_timeout_ms())
                flipped = ledger.ledger_reconcile(segment=ref, user_ids=user_ids, now=now)
        except DatabaseError:
            logger.exception("Re-evaluating segment %s for %d customers failed", segment.pk, len(user_ids))
            continue
        if not flipped:
            continue
        if segment.pk not in dependents:
            dependents[segment.pk] = any(segment.pk in _references(other).segments for other in segments)
        _announce(flipped, dependents[segment.pk])
        delta = sum(1 if transition.entered else -1 for transition in flipped)
        if delta:
            Segment.objects.filter(pk=segment.pk).update(member_count=F("member_count") + delta)
        transitions += flipped
    return transitions


# --- time-relative rules ------------------------------------------------------------------


@dataclass(frozen=True)
class _Boundary:
    """Where time alone moves a customer across a time-relative condition (compiler.py's
    semantics: `withinLastDays N` is [now - N days, now], an event window without `where`
    counts the rollup's last N UTC days, one with `where` raw events since now - N days)."""

    kind: str  # "field" (a Customer column), "custom" (a custom field), "rollup", "events", "event_where"
    name: str  # the column, custom key or event name
    offsets: tuple[int, ...] = ()  # days: the condition flips where value == moment + offset


def _boundaries(rules: dict[str, Any]) -> list[_Boundary]:
    found: list[_Boundary] = []

    def walk(group: dict[str, Any]) -> None:
        for condition in group.get("conditions", ()):
            if "conditions" in condition:
                walk(condition)
            elif "field" in condition:
                offsets = _offsets(condition.get("op"), condition.get("value"))
                name = condition["field"]
                if offsets and name in DATE_FIELDS:
                    found.append(_Boundary("field", DATE_FIELDS[name], offsets))
                elif offsets and name.startswith(CUSTOM_PREFIX):
                    found.append(_Boundary("custom", name.removeprefix(CUSTOM_PREFIX), offsets))
            elif "event" in condition:
                days = condition.get("withinLastDays")
                where = condition.get("where") or []
                if days is not None:
                    found.append(_Boundary("events" if where else "rollup", condition["event"], (-int(days),)))
                if any(_offsets(test.get("op"), test.get("value")) for test in where):
                    found.append(_Boundary("event_where", condition["event"]))

    walk(rules)
    return found


def _offsets(op: Any, value: Any) -> tuple[int, ...]:
    if op in ("withinLastDays", "notWithinLastDays"):
        return (-int(value), 0)
    if op == "withinNextDays":
        return (0, int(value))
    if op == "betweenDaysAgo" and isinstance(value, list | tuple) and len(value) == 2:
        return (-int(value[0]), -int(value[1]))
    return ()


def segments_time_recheck(*, now: datetime | None = None) -> int:
    """Mark, for each segment with time-relative rules, the customers that time moved across a
    boundary since `time_checked_at`, then advance it (one transaction per segment). Returns
    how many marks were written.

    A field test flips where `value == moment + offset` for a moment between the last check
    and now, so the customers to look at are those whose value lies in
    (checked_at + offset, now + offset]: an index range on that timestamp, not a rescan. An
    event window loses a UTC day at each midnight: the customers with rollup rows on the days
    that left it, once per UTC day (through the rollup's unique (environment, name, user_id,
    day) index; raw events: those whose events left the window). Custom fields have no index
    to range on: their range is filtered on every customer with the key; a property filter
    with a time test re-checks every customer who has that event.
    """
    now = now or timezone.now()
    written = 0
    segments = Segment.objects.filter(
        status=SegmentStatus.READY, time_checked_at__isnull=False, time_checked_at__lt=now
    )
    for segment in segments.only("id", "environment_id", "rules", "rules_version", "time_checked_at"):
        if not _references(segment).time_relative:
            continue
        since = segment.time_checked_at
        assert since is not None
        with transaction.atomic():
            checked = Segment.objects.filter(pk=segment.pk, time_checked_at=since)
            if not checked.select_for_update().exists():
                continue  # another check or an evaluation moved it
            user_ids: set[str] = set()
            for boundary in _boundaries(segment.rules):
                user_ids |= _crossed(segment.environment_id, boundary, since, now)
            if user_ids:
                CustomerMark.objects.bulk_create(
                    [
                        CustomerMark(
                            environment_id=segment.environment_id, user_id=user_id, fields=[f"time:{segment.pk}"]
                        )
                        for user_id in sorted(user_ids)
                    ],
                    batch_size=1000,
                )
                transaction.on_commit(lambda: enqueue("segments.process_marks"))
            checked.update(time_checked_at=now)
            written += len(user_ids)
    return written


def _crossed(environment_id: int, boundary: _Boundary, since: datetime, now: datetime) -> set[str]:
    customers = Customer.objects.filter(environment_id=environment_id)
    found: set[str] = set()
    if boundary.kind == "field":
        column = boundary.name
        for offset in boundary.offsets:
            crossed = customers.filter(
                **{f"{column}__gt": since + timedelta(days=offset), f"{column}__lte": now + timedelta(days=offset)}
            )
            if offset == 0:
                # A value reaching "now" matters only if it was written while still ahead:
                # a write after it was already evaluated (its own mark) with the value behind.
                crossed = crossed.filter(updated_at__lt=F(column))
            found |= set(crossed.values_list("user_id", flat=True))
    elif boundary.kind == "custom":
        for offset in boundary.offsets:
            found |= _custom_crossed(
                environment_id, boundary.name, since + timedelta(days=offset), now + timedelta(days=offset)
            )
    elif boundary.kind == "rollup":
        days = _days_left_window(since, now, -boundary.offsets[0])
        if days:
            found = set(
                EventDailyCount.objects.filter(environment_id=environment_id, name=boundary.name, day__in=days)
                .values_list("user_id", flat=True)
                .distinct()
            )
    elif boundary.kind == "events":
        window = timedelta(days=boundary.offsets[0])
        found = set(
            Event.objects.filter(
                environment_id=environment_id,
                name=boundary.name,
                occurred_at__gt=since + window,
                occurred_at__lte=now + window,
            )
            .values_list("user_id", flat=True)
            .distinct()
        )
    else:
        found = set(
            Event.objects.filter(environment_id=environment_id, name=boundary.name)
            .values_list("user_id", flat=True)
            .distinct()
        )
    return found


def _custom_crossed(environment_id: int, key: str, lower: datetime, upper: datetime) -> set[str]:
    """Customers whose custom field `key` holds an ISO moment on a UTC day around (lower, upper]
    (a day either side: a value with an offset may belong to the next or previous UTC day)."""
    first = (lower - timedelta(days=1)).date().isoformat()
    last = (upper + timedelta(days=1)).date().isoformat()
    if connection.vendor == "postgresql":
        value = "substr(c.custom_fields ->> %s, 1, 10)"
        params: list[Any] = [key]
    else:
        value = "substr(json_extract(c.custom_fields, %s), 1, 10)"
        params = ['$."' + key.replace('"', "") + '"']
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.user_id FROM customers_customer c WHERE c.environment_id = %s AND {value} BETWEEN %s AND %s",  # noqa: S608
            [environment_id, *params, first, last],
        )
        return {row[0] for row in cursor.fetchall()}


def window_first_day(moment: datetime, days: int) -> date:
    """The first UTC day of a `withinLastDays: days` rollup window at `moment` (compiler.py:
    the last N days including today)."""
    return moment.astimezone(UTC).date() - timedelta(days=days - 1)


def _days_left_window(since: datetime, now: datetime, days: int) -> list[date]:
    """The days that were inside the window at `since` and are outside it at `now`."""
    first, last = window_first_day(since, days), window_first_day(now, days)
    return [first + timedelta(days=n) for n in range((last - first).days)]


# --- the sweep ----------------------------------------------------------------------------


@dataclass
class SweepResult:
    segment_ids: list[int] = field(default_factory=list)
    marks_waiting: bool = False


def segments_sweep(*, now: datetime | None = None) -> SweepResult:
    """What was committed and never picked up: computing segments whose lease ran out or that
    no worker took within SWEEP_STALE_SECONDS, and marks left over for as long. Also records a
    size point for segments whose count moved since their last one (the incremental path)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SWEEP_STALE_SECONDS)
    waiting = Segment.objects.filter(status=SegmentStatus.COMPUTING).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, updated_at__lt=stale)
    )
    result = SweepResult(segment_ids=list(waiting.values_list("pk", flat=True)))
    result.marks_waiting = CustomerMark.objects.filter(marked_at__lt=stale).exists()
    return result


def segment_sizes_record(*, now: datetime | None = None) -> int:
    """A size point for each ready segment whose count changed since its last point."""
    now = now or timezone.now()
    points = []
    for segment_id, count in Segment.objects.filter(status=SegmentStatus.READY).values_list("pk", "member_count"):
        last = SegmentSize.objects.filter(segment_id=segment_id).order_by("-measured_at").first()
        if last is None or last.member_count != count:
            points.append(SegmentSize(segment_id=segment_id, measured_at=now, member_count=count))
    SegmentSize.objects.bulk_create(points)
    return len(points)
