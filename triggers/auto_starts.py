"""How segment and event triggers hand their starts to the start pipeline.

These triggers start flows on their own, inside the transaction of what caused the start (a
change of segment membership, recorded events, a run's analytics events, a publish), so
nothing here may break that transaction: a refusal (missing variables, an archived flow, a
key reused with other content, the recursion limit) starts nothing for the starts it concerns
and is logged, and the rest go ahead.

1. Starts go to `invocations_accept` in chunks (one statement per chunk on the usual path).
2. A chunk that is refused as a whole is retried start by start, so one bad start (say a
   repeated key with other content) does not keep the others from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

from customers.models import TestUser
from flows.models import FlowStatus, Mode
from flows.selectors import FlowForStart
from flows.services import FlowRefused, invocations_accept
from flows.start_requests import StartRequest

from .models import Trigger, TriggerMode

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500


def start_mode(trigger: Trigger, flow: FlowForStart) -> str | None:
    """The mode a trigger starts its flow in now, or None when it starts nothing.

    Disabled and paused triggers start nothing. A live trigger starts only while its flow is
    published: the trigger of an archived flow skips silently (archived flows start nothing,
    SPEC section 2, and nobody is waiting for an answer); a live trigger cannot exist on a flow
    never published (going live is refused then).
    """
    if trigger.mode == TriggerMode.TEST:
        return Mode.TEST if flow.status != FlowStatus.ARCHIVED else None
    if trigger.mode == TriggerMode.LIVE:
        if flow.status == FlowStatus.ARCHIVED or flow.latest_version_number is None:
            return None
        return Mode.LIVE
    return None


def test_user_ids(environment_id: int) -> set[str]:
    return set(TestUser.objects.filter(environment_id=environment_id).values_list("user_id", flat=True))


def starts_accept(
    *,
    trigger: Trigger,
    flow: FlowForStart,
    mode: str,
    starts: Sequence[StartRequest],
    chain_depth: int = 1,
    before_each_chunk: Callable[[Sequence[StartRequest]], Sequence[StartRequest]] | None = None,
) -> int:
    """Accept the starts (see the module docstring); the number of new invocations.

    `before_each_chunk` runs inside the chunk's savepoint before the starts are accepted and
    returns the starts to accept (a `once` trigger claims its customers there): a refused
    chunk rolls back what it wrote.
    """
    accepted = 0
    for index in range(0, len(starts), CHUNK_SIZE):
        chunk = list(starts[index : index + CHUNK_SIZE])
        try:
            accepted += _accept(trigger, flow, mode, chunk, chain_depth, before_each_chunk)
        except FlowRefused as refused:
            if len(chunk) == 1 or refused.code == "recursion_limit":
                _log_refusal(trigger, refused, chunk)
                continue
            for start in chunk:
                try:
                    accepted += _accept(trigger, flow, mode, [start], chain_depth, before_each_chunk)
                except FlowRefused as alone:
                    _log_refusal(trigger, alone, [start])
    return accepted


def _accept(
    trigger: Trigger,
    flow: FlowForStart,
    mode: str,
    starts: list[StartRequest],
    chain_depth: int,
    before: Callable[[Sequence[StartRequest]], Sequence[StartRequest]] | None,
) -> int:
    if chain_depth > 1 and before is None:
        # No savepoint: a refusal for the recursion limit writes its flow-run-failed events
        # first, and those must stay (refusals write nothing else).
        result = invocations_accept(
            flow=flow, mode=mode, starts=starts, source=trigger.type, trigger_id=trigger.pk, chain_depth=chain_depth
        )
        return sum(1 for outcome in result.outcomes if outcome.status == "accepted")
    with transaction.atomic():
        chosen = list(before(starts)) if before is not None else starts
        if not chosen:
            return 0
        result = invocations_accept(
            flow=flow, mode=mode, starts=chosen, source=trigger.type, trigger_id=trigger.pk, chain_depth=chain_depth
        )
    return sum(1 for outcome in result.outcomes if outcome.status == "accepted")


def _log_refusal(trigger: Trigger, refused: FlowRefused, starts: list[StartRequest]) -> None:
    logger.warning(
        "Trigger %s of flow %s: %d start(s) refused (%s: %s), first key %s",
        trigger.pk,
        trigger.flow_id,
        len(starts),
        refused.code,
        refused.detail,
        starts[0].flow_invocation_id if starts else None,
    )
