"""What members do with a webhook trigger's requests, beside the senders' own (SPEC section 4).

Each runs the receiving pipeline's steps after its security checks (`triggers.intake`):
- `sample_send_test`: the sample through the saved mapping, as a test start;
- `mapping_preview`: what a payload maps to, and every problem with it, starting nothing;
- `request_replay`: a logged request again, through the current mapping;
- `held_requests_replay` / `held_requests_discard`: the requests held while the trigger was
  paused, once it is reactivated.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows.selectors import flow_for_start
from flows.services import FlowRefused, invocations_accept, start_requests_check
from flows.start_requests import MAX_ID_LENGTH, StartRequest, parse_start_requests
from workbench.errors import Invalid
from workbench.json_values import UnstorableJSON, loads_storable

from . import services
from .intake import Answer, IncomingRequest, accepted_answer, log, map_and_accept, mapped_start_request, refused_start
from .mapping import MappingError, WebhookInput, apply_mapping, validate_mapping_config
from .models import HeldState, RequestOutcome, Trigger, TriggerMode, WebhookRequest


def _effective_mode(trigger: Trigger) -> str:
    mode = trigger.mode_before_pause if trigger.mode == TriggerMode.PAUSED else trigger.mode
    if mode == TriggerMode.DISABLED:
        raise services.TriggerRefused(409, "trigger_disabled", "Enable the trigger (test or live) to replay requests.")
    return mode or TriggerMode.TEST


def _stored_request(logged: WebhookRequest) -> IncomingRequest:
    return IncomingRequest(
        method=logged.method,
        headers=dict(logged.headers),
        query=dict(logged.query),
        body=logged.body.encode("utf-8"),
        remote_addr=logged.source_ip,
        received_at=timezone.now(),
    )


def request_replay(*, trigger: Trigger, logged: WebhookRequest) -> Answer:
    """Replay one logged request through the current mapping, as a member vouching for it
    (no IP, signature or shape check). The replay gets its own log entry. A held request
    replayed on its own leaves the held ones, so that held_requests_replay does not start it
    again."""
    mode = _effective_mode(trigger)
    request = _stored_request(logged)
    with transaction.atomic():
        WebhookRequest.objects.filter(pk=logged.pk, held_state=HeldState.HELD).update(held_state=HeldState.REPLAYED)
        try:
            body = loads_storable(request.body)
        except UnstorableJSON as error:
            answer = Answer.refused(400, "invalid_payload", f"The logged body cannot be started: {error}")
        else:
            flow = flow_for_start(flow=trigger.flow)
            answer = map_and_accept(trigger, flow, request, logged.source_ip, body, mode=mode, replay_of=logged)
        if answer.outcome not in (RequestOutcome.ACCEPTED, RequestOutcome.DUPLICATE):
            log(trigger, request, logged.source_ip, answer, replay_of=logged)
    return answer


@dataclass(frozen=True)
class HeldResult:
    request_id: int
    status: int
    body: dict[str, Any]


def held_requests_replay(*, trigger: Trigger) -> list[HeldResult]:
    """Replay every held request once, oldest first. The trigger must be reactivated first."""
    if trigger.mode == TriggerMode.PAUSED:
        raise services.TriggerRefused(409, "trigger_paused", "Reactivate the trigger before replaying held requests.")
    results = []
    for held_id in _held_ids(trigger):
        with transaction.atomic():
            # Claiming and processing commit together: each held request is replayed once.
            claimed = WebhookRequest.objects.filter(pk=held_id, held_state=HeldState.HELD).update(
                held_state=HeldState.REPLAYED
            )
            if not claimed:
                continue
            answer = request_replay(trigger=trigger, logged=WebhookRequest.objects.get(pk=held_id))
        results.append(HeldResult(request_id=held_id, status=answer.status, body=answer.body))
    return results


def held_requests_discard(*, trigger: Trigger) -> int:
    """Discard every held request; they stay in the log, marked discarded."""
    return WebhookRequest.objects.filter(trigger=trigger, held_state=HeldState.HELD).update(
        held_state=HeldState.DISCARDED
    )


def _held_ids(trigger: Trigger) -> list[int]:
    return list(
        WebhookRequest.objects.filter(trigger=trigger, held_state=HeldState.HELD)
        .order_by("received_at", "id")
        .values_list("pk", flat=True)
    )


def sample_send_test(*, trigger: Trigger) -> Answer:
    """Run the sample through the saved mapping as a test start (nothing is logged).

    Every send is a new test: the mapped flowInvocationId gets a unique suffix (see
    `fresh_test_key`), else the sample's own id would make every send after the first a duplicate.
    """
    if trigger.sample is None:
        return Answer.refused(409, "no_sample", "Capture or paste a sample first.")
    mapped = mapped_start_request(trigger, WebhookInput(body=trigger.sample, headers={}, query={}, method="POST"))
    if isinstance(mapped, Answer):
        return mapped
    try:
        starts = start_requests_check(mapped)
    except FlowRefused as refused:
        return refused_start(refused)
    return starts_send_as_test(trigger=trigger, starts=starts)


def starts_send_as_test(*, trigger: Trigger, starts: list[StartRequest]) -> Answer:
    """A member's test card from a trigger's sample (webhook, event, SFMC): the mapped starts
    as test starts, each under a key no send used before (`fresh_test_key`); the answer lists
    what each start did."""
    try:
        result = invocations_accept(
            flow=flow_for_start(flow=trigger.flow),
            mode=TriggerMode.TEST,
            starts=[fresh_test_key(start) for start in starts],
            source=trigger.type,
            trigger_id=trigger.pk,
        )
    except FlowRefused as refused:
        return refused_start(refused)
    keys = [outcome.flow_invocation_id for outcome in result.outcomes]
    answer = accepted_answer(keys, TriggerMode.TEST, result.any_accepted)
    answer.body["invocations"] = [outcome.as_json() for outcome in result.outcomes]
    return answer


TEST_KEY_SUFFIX = "-test-"


def fresh_test_key(start: StartRequest) -> StartRequest:
    """The start with a flowInvocationId no send used before: the mapped key and a unique suffix
    ("evt-1001-test-3f9c2a1b"), so the invocation still shows which sample it came from. Without
    a mapped key the start pipeline generates a new one for each send already."""
    if start.flow_invocation_id is None:
        return start
    suffix = TEST_KEY_SUFFIX + uuid.uuid4().hex[:12]
    key = start.flow_invocation_id[: MAX_ID_LENGTH - len(suffix)] + suffix
    return dataclasses.replace(start, flow_invocation_id=key)


def mapping_preview(
    *, trigger: Trigger, payload: Any = None, payload_given: bool = False, mapping: Any = None
) -> dict[str, Any]:
    """What a payload (the sample when none is given) maps to with a mapping (the saved one
    when none is given), and every problem with the result. Starts nothing."""
    body = payload if payload_given else trigger.sample
    if body is None and not payload_given:
        return {"output": None, "errors": ["There is no sample yet: capture or paste one, or send a payload."]}
    return mapping_output(body=body, mapping=mapping, saved=trigger.config.get("mapping"))


def mapping_output(*, body: Any, mapping: Any, saved: Any) -> dict[str, Any]:
    """What `body` maps to with `mapping` (checked first; the `saved` one when None), and every
    problem with the result, as previews answer it (event triggers' previews too)."""
    try:
        config = validate_mapping_config(mapping) if mapping is not None else saved
        output = apply_mapping(
            config or services.DEFAULT_MAPPING, WebhookInput(body=body, headers={}, query={}, method="POST")
        )
    except Invalid as invalid:
        return {"output": None, "errors": _located(invalid.errors)}
    except MappingError as failed:
        return {"output": None, "errors": list(failed.errors)}
    try:
        parse_start_requests(output)
    except Invalid as invalid:
        return {"output": output, "errors": _located(invalid.errors)}
    return {"output": output, "errors": []}


def _located(errors: dict[str, list[str]]) -> list[str]:
    """Errors by location as one list of "location: message" lines."""
    return [f"{where}: {message}" for where, messages in errors.items() for message in messages]
