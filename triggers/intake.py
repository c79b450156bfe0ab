"""The webhook intake service: what happens to a request to /hooks/{token} (SPEC section 4).

Checks run in this order, each answering with its own code: body size (middleware) → token →
sample capture → mode → IP allowlist → signature over the raw body → JSON → paused (held) →
shape check (pause and hold) → mapping → start request validation → durable acceptance.
Every request to a known token is written to the trigger's request log, refused or not.
Members replay logged and held requests through the same steps after the security checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from flows.models import AnalyticsEvent, Flow
from flows.selectors import FlowStartColumns, flow_start_columns
from flows.services import FlowRefused, StartOutcome, invocations_accept
from flows.start_requests import InvalidStartRequest, parse_start_requests
from workbench.client_address import client_address
from workbench.json_values import UnstorableJSON, check_storable, loads_storable
from workbench.raw_rows import ModelColumns, prepared_cursor

from . import services
from .ip_allowlist import address_allowed
from .mapping import (
    InvalidMappingConfig,
    MappingError,
    WebhookInput,
    apply_mapping,
    shape_mismatches,
    validate_mapping_config,
)
from .models import HeldState, RequestOutcome, Trigger, TriggerMode, TriggerType, WebhookRequest
from .signatures import SignatureInvalid, verify_signature

# Headers never written to the request log.
UNLOGGED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
MAX_LOGGED_HEADER = 1000


@dataclass
class Answer:
    """What the sender gets back, and what the log records."""

    status: int
    body: dict[str, Any]
    outcome: str = RequestOutcome.REFUSED
    errors: Any = None
    mode: str = ""
    flow_invocation_id: str = ""
    held: bool = False

    @classmethod
    def refused(cls, status: int, code: str, detail: str, errors: Any = None) -> Answer:
        body: dict[str, Any] = {"detail": detail, "code": code}
        if errors is not None:
            body["errors"] = errors
        return cls(status=status, body=body, errors=errors)


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    headers: dict[str, str]  # names lower-case
    query: dict[str, str]
    body: bytes
    remote_addr: str
    forwarded_for: str | None = None
    received_at: Any = field(default_factory=timezone.now)


def webhook_receive(*, token: str, request: IncomingRequest) -> Answer:
    trigger = _webhook_trigger(token)
    if trigger is None:
        return Answer.refused(404, "not_found", "No webhook at this URL.")
    source_ip = client_address(request.remote_addr, request.forwarded_for, settings.TRUSTED_PROXIES)
    answer = _capture_sample(trigger, request)
    if answer is None:
        answer = _check_and_process(trigger, request, source_ip)
    if answer.outcome != RequestOutcome.ACCEPTED and answer.outcome != RequestOutcome.DUPLICATE:
        _log(trigger, request, source_ip, answer)  # accepted requests were logged with their start
    return answer


@cache
def _webhook_trigger_query() -> tuple[str, ModelColumns[Trigger], FlowStartColumns]:
    """The statement of `_webhook_trigger`, built once from the models' metadata."""
    quote = connection.ops.quote_name
    trigger, flow = ModelColumns.of(Trigger, "t"), flow_start_columns()
    meta = Trigger._meta
    flow_pk, trigger_flow = quote(Flow._meta.pk.column), quote(meta.get_field("flow").column)
    # Only names from the models' metadata and a TriggerType value are formatted in; the token
    # is a parameter.
    sql = (
        f"SELECT {trigger.sql}, {flow.sql} FROM {quote(meta.db_table)} t "  # noqa: S608
        f"JOIN {quote(Flow._meta.db_table)} f ON f.{flow_pk} = t.{trigger_flow} "
        f"{flow.join} WHERE t.{quote(meta.get_field('token').column)} = %s "
        f"AND t.{quote(meta.get_field('type').column)} = '{TriggerType.WEBHOOK.value}'"
    )
    return sql, trigger, flow


def _webhook_trigger(token: str) -> Trigger | None:
    """The trigger with its flow and the flow's latest version, in one prepared statement.

    The version comes as the flow's `start_version_number` and `start_version_definition`,
    as `flows.selectors.flow_for_start` gives them, so `invocations_accept` reads no version
    of its own for a live start.
    """
    sql, trigger_columns, flow_columns = _webhook_trigger_query()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    trigger = trigger_columns.instance(row)
    trigger.flow = flow_columns.read(row, trigger_columns.width)
    return trigger


def _capture_sample(trigger: Trigger, request: IncomingRequest) -> Answer | None:
    """While capture is armed, the next JSON request becomes the sample, unchecked, and starts nothing."""
    if trigger.capture_until is None or trigger.capture_until <= request.received_at:
        return None
    try:
        body = loads_storable(request.body)
    except UnstorableJSON as error:
        return Answer.refused(400, "invalid_payload", f"{error} Capture stays armed.")
    captured = Trigger.objects.filter(pk=trigger.pk, capture_until__gt=request.received_at).update(
        sample=body, capture_until=None
    )
    if not captured:  # another request was captured first
        return None
    return Answer(status=202, body={"status": "sample_captured"}, outcome=RequestOutcome.SAMPLE_CAPTURED)


def _check_and_process(trigger: Trigger, request: IncomingRequest, source_ip: str) -> Answer:
    if trigger.mode == TriggerMode.DISABLED:
        return Answer.refused(403, "trigger_disabled", "This webhook trigger is disabled.")
    security = trigger.config.get("security") or {}
    if not address_allowed(source_ip, security.get("allowedIps") or []):
        return Answer.refused(403, "ip_not_allowed", f"Requests from {source_ip} are not allowed.")
    signature = security.get("signature")
    if signature:
        try:
            verify_signature(signature, request.headers, request.body, now=time.time())
        except SignatureInvalid as invalid:
            return Answer.refused(401, "signature_invalid", f"The signature is not valid: {invalid.reason}")
    try:
        body = loads_storable(request.body)
    except UnstorableJSON as error:
        return Answer.refused(400, "invalid_payload", str(error))
    if trigger.mode == TriggerMode.PAUSED:
        return _held()
    if trigger.config.get("shapeCheck") and trigger.sample is not None:
        mismatches = shape_mismatches(trigger.sample, body)
        if mismatches:
            reason = "A request was not shaped like the sample: " + "; ".join(mismatches[:5])
            services.trigger_pause(trigger=trigger, reason=reason)
            return _held()
    return _map_and_accept(trigger, request, source_ip, body, mode=trigger.mode)


def _held() -> Answer:
    return Answer(status=202, body={"status": "held"}, outcome=RequestOutcome.HELD, held=True)


def _map_and_accept(
    trigger: Trigger,
    request: IncomingRequest,
    source_ip: str,
    body: Any,
    mode: str,
    replay_of: WebhookRequest | None = None,
) -> Answer:
    """Map the body, then accept the start and log the request in one transaction."""
    mapped = _mapped(
        trigger, WebhookInput(body=body, headers=request.headers, query=request.query, method=request.method)
    )
    if isinstance(mapped, Answer):
        return mapped

    def log_rows(outcomes: list[StartOutcome]) -> list[Model]:
        return _log_rows(trigger, request, source_ip, _accepted(outcomes, mode), replay_of)

    try:
        result = invocations_accept(
            flow=trigger.flow,
            mode=mode,
            body=mapped,
            source=TriggerType.WEBHOOK,
            trigger_id=trigger.pk,
            companions=log_rows,  # the log entry is written with the start, in its statement
        )
    except FlowRefused as refused:
        return _refused_start(refused)
    return _accepted(result.outcomes, mode)


def _mapped(trigger: Trigger, webhook_input: WebhookInput) -> Any:
    """The start request the saved mapping makes of the input, or the 422 answer saying why not."""
    try:
        mapped = apply_mapping(trigger.config.get("mapping") or services.DEFAULT_MAPPING, webhook_input)
    except MappingError as failed:
        return Answer.refused(422, "mapping_failed", "The mapping failed.", {"mapping": failed.errors})
    try:
        check_storable(mapped)  # a script can make what the start could not store
    except UnstorableJSON as error:
        return Answer.refused(422, "mapping_failed", "The mapping failed.", {"mapping": [f"The output: {error}"]})
    return mapped


def _refused_start(refused: FlowRefused) -> Answer:
    """A refused start as a sender sees it: a mapped output that is no valid start request is
    the mapping's failure (422); the flow's own refusals (409s) keep their codes."""
    if refused.code in ("invalid_request", "missing_variables"):
        detail = f"The mapped output is not a valid start request: {refused.detail}"
        return Answer.refused(422, "mapping_failed", detail, refused.errors)
    return Answer.refused(refused.status, refused.code, refused.detail, refused.errors)


def _accepted(outcomes: list[Any], mode: str) -> Answer:
    any_accepted = any(outcome.status == "accepted" for outcome in outcomes)
    ids = [outcome.flow_invocation_id for outcome in outcomes]
    body: dict[str, Any] = {
        "status": "accepted" if any_accepted else "duplicate",
        "flowInvocationId": ids[0],
        "mode": mode,
    }
    if len(ids) > 1:
        body["flowInvocationIds"] = ids
    return Answer(
        status=202 if any_accepted else 200,
        body=body,
        outcome=RequestOutcome.ACCEPTED if any_accepted else RequestOutcome.DUPLICATE,
        mode=mode,
        flow_invocation_id=ids[0],
    )


def _storable(value: Any) -> Any:
    """`value` with every U+0000 replaced, as PostgreSQL can store it (the log keeps what came)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _log(
    trigger: Trigger,
    request: IncomingRequest,
    source_ip: str,
    answer: Answer,
    replay_of: WebhookRequest | None = None,
) -> None:
    """Write the request log entry of a request that started nothing."""
    for row in _log_rows(trigger, request, source_ip, answer, replay_of):
        row.save()


def _log_rows(
    trigger: Trigger,
    request: IncomingRequest,
    source_ip: str,
    answer: Answer,
    replay_of: WebhookRequest | None,
) -> list[Model]:
    """The request log entry; a request that started a flow also records the
    `webhook-received` analytics event (refusals leave the log entry alone)."""
    rows: list[Model] = [
        WebhookRequest(
            environment_id=trigger.environment_id,
            trigger=trigger,
            received_at=request.received_at,
            source_ip=source_ip,
            method=request.method,
            headers=_storable(
                {
                    name: value[:MAX_LOGGED_HEADER]
                    for name, value in request.headers.items()
                    if name not in UNLOGGED_HEADERS
                }
            ),
            query=_storable(request.query),
            body=_storable(request.body.decode("utf-8", errors="replace")),
            outcome=answer.outcome,
            status_code=answer.status,
            code=str(answer.body.get("code", "")),
            detail=_storable(str(answer.body.get("detail", ""))),
            errors=_storable(answer.errors),
            mode=answer.mode,
            flow_invocation_id=answer.flow_invocation_id,
            held_state=HeldState.HELD if answer.held else "",
            replay_of=replay_of,
        )
    ]
    if answer.outcome in (RequestOutcome.ACCEPTED, RequestOutcome.DUPLICATE):
        rows.append(
            AnalyticsEvent(
                environment_id=trigger.environment_id,
                name="webhook-received",
                flow_id=trigger.flow_id,
                flow_invocation_id=answer.flow_invocation_id,
                test=answer.mode != TriggerMode.LIVE,
                properties={"triggerId": trigger.pk, "outcome": answer.outcome},
                occurred_at=request.received_at,
            )
        )
    return rows


# --- Replays --------------------------------------------------------------------------------


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
    replayed on its own leaves the held ones, so that held_replay does not start it again."""
    mode = _effective_mode(trigger)
    request = _stored_request(logged)
    with transaction.atomic():
        WebhookRequest.objects.filter(pk=logged.pk, held_state=HeldState.HELD).update(held_state=HeldState.REPLAYED)
        try:
            body = loads_storable(request.body)
        except UnstorableJSON as error:
            answer = Answer.refused(400, "invalid_payload", f"The logged body cannot be started: {error}")
        else:
            answer = _map_and_accept(trigger, request, logged.source_ip, body, mode=mode, replay_of=logged)
        if answer.outcome not in (RequestOutcome.ACCEPTED, RequestOutcome.DUPLICATE):
            _log(trigger, request, logged.source_ip, answer, replay_of=logged)
    return answer


@dataclass(frozen=True)
class HeldResult:
    request_id: int
    status: int
    body: dict[str, Any]


def held_replay(*, trigger: Trigger) -> list[HeldResult]:
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


def held_discard(*, trigger: Trigger) -> int:
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


def send_test(*, trigger: Trigger) -> Answer:
    """Run the sample through the saved mapping as a test start (nothing is logged)."""
    if trigger.sample is None:
        return Answer.refused(409, "no_sample", "Capture or paste a sample first.")
    mapped = _mapped(trigger, WebhookInput(body=trigger.sample, headers={}, query={}, method="POST"))
    if isinstance(mapped, Answer):
        return mapped
    try:
        result = invocations_accept(
            flow=trigger.flow, mode=TriggerMode.TEST, body=mapped, source=TriggerType.WEBHOOK, trigger_id=trigger.pk
        )
    except FlowRefused as refused:
        return _refused_start(refused)
    answer = _accepted(result.outcomes, TriggerMode.TEST)
    answer.body["invocations"] = [outcome.as_json() for outcome in result.outcomes]
    return answer


def mapping_preview(
    *, trigger: Trigger, payload: Any = None, payload_given: bool = False, mapping: Any = None
) -> dict[str, Any]:
    """What a payload (the sample when none is given) maps to with a mapping (the saved one
    when none is given), and every problem with the result. Starts nothing."""
    body = payload if payload_given else trigger.sample
    if body is None and not payload_given:
        return {"output": None, "errors": ["There is no sample yet: capture or paste one, or send a payload."]}
    try:
        config = validate_mapping_config(mapping) if mapping is not None else trigger.config.get("mapping")
        output = apply_mapping(
            config or services.DEFAULT_MAPPING, WebhookInput(body=body, headers={}, query={}, method="POST")
        )
    except InvalidMappingConfig as invalid:
        return {"output": None, "errors": _located(invalid.errors)}
    except MappingError as failed:
        return {"output": None, "errors": list(failed.errors)}
    try:
        parse_start_requests(output)
    except InvalidStartRequest as invalid:
        return {"output": output, "errors": _located(invalid.errors)}
    return {"output": output, "errors": []}


def _located(errors: dict[str, list[str]]) -> list[str]:
    """Errors by location as one list of "location: message" lines."""
    return [f"{where}: {message}" for where, messages in errors.items() for message in messages]
