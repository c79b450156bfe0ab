"""Event triggers: a flow starts for each matching event (SPEC section 5).

Configuration `{"eventName", "where": [...], "mapping"}`. The mapping is the webhook mapping
engine (`triggers.mapping`) applied to the event as this JSON body (`event_body`):

    {"userId", "name", "properties", "timestamp", "messageId"}

(analytics events of flows' runs also carry `flowId`, `flowInvocationId` and `test`, and their
`where` filters can test `flowId` as if it were a property: "when flow 12 completes"). The
default mapping takes `targetUserIds` from `$.userId` and `variables` from `$.properties`. The
sample a member maps and previews against is the newest event of that name.

What starts (`events_start` for the Events API's events, subscribed to customers'
`events_recorded`; `analytics_start` for runs' analytics events, subscribed to flows'
`analytics_recorded`), inside the transaction that recorded the events:
1. One query finds the event triggers listening to the batch's names, test or live.
2. Each event that passes the trigger's `where` is mapped; its `flowInvocationId` is always
   made from the event (`evt-<messageId>`, else `evt-id-<event id>`; for analytics events a
   hash of the run's event), whatever the mapping says, so an event delivered twice starts
   once. A mapping that fails skips that event (logged).
3. Recursion guard: an event caused by a flow's runs never starts that flow; the start gets the
   depth of the chain that caused the event plus one, and the pipeline refuses (and records)
   a start deeper than 5. A test run's analytics event never starts a live invocation.
4. Test triggers start test invocations for test users only (starts with none are left out).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from customers.hooks import RecordedEvent
from customers.models import Event
from flows.hooks import RecordedAnalyticsEvent
from flows.models import Flow, Mode
from flows.selectors import flow_for_start
from flows.start_requests import MAX_ID_LENGTH, StartRequest, parse_start_requests
from workbench.errors import FieldErrors, Invalid

from . import selectors, services
from .auto_starts import start_mode, starts_accept, test_user_ids
from .event_filters import where_clean, where_matches
from .intake import Answer
from .mapping import MappingConfig, MappingError, WebhookInput, apply_mapping, validate_mapping_config
from .models import EventTriggerConfig, Trigger, TriggerMode, TriggerType
from .webhook_actions import mapping_output, starts_send_as_test

logger = logging.getLogger(__name__)

DEFAULT_EVENT_MAPPING: MappingConfig = {
    "type": "structured",
    "structured": {"targetUserIds": "$.userId", "variables": "$.properties"},
}
MAX_EVENT_NAME = 255


# --- Configuration --------------------------------------------------------------------------


def event_config_clean(
    *, event_name: Any = None, where: Any = None, mapping: Any = None, current: Any = None
) -> EventTriggerConfig:
    """The configuration from what was given over what it had; 400 invalid_request with every problem."""
    config: dict[str, Any] = {"where": [], "mapping": DEFAULT_EVENT_MAPPING}
    if current:
        config.update(current)
    errors: FieldErrors = {}
    if event_name is not None:
        if isinstance(event_name, str) and event_name.strip() and len(event_name) <= MAX_EVENT_NAME:
            config["eventName"] = event_name.strip()
        else:
            errors["eventName"] = [f"Name the event (1 to {MAX_EVENT_NAME} characters)."]
    elif "eventName" not in config:
        errors["eventName"] = ["Name the event that starts the flow."]
    if where is not None:
        try:
            config["where"] = where_clean(where)
        except Invalid as invalid:
            errors.update(invalid.errors)
    if mapping is not None:
        try:
            config["mapping"] = validate_mapping_config(mapping)
        except Invalid as invalid:
            errors.update(invalid.within("mapping"))
    if errors:
        raise services.TriggerRefused(400, "invalid_request", "The event trigger is not valid.", errors)
    clean: EventTriggerConfig = {
        "eventName": config["eventName"],
        "where": config["where"],
        "mapping": config["mapping"],
    }
    return clean


def event_trigger_create(
    *,
    flow: Flow,
    by: User | None = None,
    name: str = "",
    event_name: Any = None,
    where: Any = None,
    mapping: Any = None,
    mode: str = TriggerMode.TEST,
) -> Trigger:
    """A new event trigger, in test mode unless `mode` says (live needs a published flow)."""
    config = event_config_clean(event_name=event_name, where=where, mapping=mapping)
    return services.configured_trigger_create(
        flow=flow, type=TriggerType.EVENT, config=config, by=by, name=name, mode=mode
    )


def event_trigger_update(
    *,
    trigger: Trigger,
    by: User | None = None,
    name: str | None = None,
    event_name: Any = None,
    where: Any = None,
    mapping: Any = None,
    mode: str | None = None,
) -> Trigger:
    """Change an event trigger's configuration, name and mode; nothing is written when any part is refused."""
    config = event_config_clean(event_name=event_name, where=where, mapping=mapping, current=trigger.config)
    return services.configured_trigger_save(trigger=trigger, config=config, by=by, name=name, mode=mode)


# --- The event as the mapping sees it -------------------------------------------------------


@dataclass(frozen=True)
class IncomingEvent:
    """An event of either kind, as the triggers match and map it."""

    environment_id: int
    name: str
    user_id: str
    properties: dict[str, Any]
    occurred_at: datetime
    key: str  # the flowInvocationId of what it starts
    body: dict[str, Any]  # what the mapping reads
    source_flow_id: int | None  # the flow whose run caused it (never started by it)
    chain_depth: int  # of the chain that caused it (0: it began outside any flow)
    test_only: bool  # a test run's analytics event: never starts live


def event_body(event: Event | RecordedEvent) -> dict[str, Any]:
    """A custom event as its trigger's mapping reads it (and members see it as the sample)."""
    return {
        "userId": event.user_id,
        "name": event.name,
        "properties": event.properties,
        "timestamp": event.occurred_at.isoformat(),
        "messageId": event.message_id,
    }


def _event_key(message_id: str | None, event_id: int) -> str:
    key = f"evt-{message_id}" if message_id else f"evt-id-{event_id}"
    if len(key) > MAX_ID_LENGTH:
        key = "evt-" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _incoming_recorded(event: RecordedEvent) -> IncomingEvent:
    return IncomingEvent(
        environment_id=event.environment_id,
        name=event.name,
        user_id=event.user_id,
        properties=event.properties,
        occurred_at=event.occurred_at,
        key=_event_key(event.message_id, event.event_id),
        body=event_body(event),
        source_flow_id=event.source_flow_id,
        chain_depth=event.chain_depth,
        test_only=False,
    )


def _incoming_analytics(event: RecordedAnalyticsEvent) -> IncomingEvent:
    # A run writes each of its events once (under the run's lock, with its state), so what
    # identifies the event is stable: the same event can never make a second key.
    identity = "|".join(
        str(part)
        for part in (
            event.flow_id,
            event.flow_invocation_id,
            event.test,
            event.user_id,
            event.name,
            event.properties.get("stepIndex", ""),
        )
    )
    return IncomingEvent(
        environment_id=event.environment_id,
        name=event.name,
        user_id=event.user_id,
        # `where` can name the flow whose runs are listened to ("when flow 12 completes").
        properties={**event.properties, "flowId": event.flow_id},
        occurred_at=event.occurred_at,
        key="afe-" + hashlib.sha256(identity.encode()).hexdigest()[:40],
        body={
            "userId": event.user_id,
            "name": event.name,
            "properties": event.properties,
            "timestamp": event.occurred_at.isoformat(),
            "flowId": event.flow_id,
            "flowInvocationId": event.flow_invocation_id,
            "test": event.test,
        },
        source_flow_id=event.flow_id,
        chain_depth=event.chain_depth,
        test_only=event.test,
    )


# --- Starting -------------------------------------------------------------------------------


def events_start(*, events: Sequence[RecordedEvent]) -> int:
    """Start the event-triggered flows of newly recorded custom events; invocations started."""
    return _start([_incoming_recorded(event) for event in events])


def analytics_start(*, events: Sequence[RecordedAnalyticsEvent]) -> int:
    """Start other flows' event triggers listening to runs' analytics events; invocations started."""
    return _start([_incoming_analytics(event) for event in events])


def _start(events: list[IncomingEvent]) -> int:
    if not events:
        return 0
    triggers = list(
        selectors.event_triggers_listening(
            environment_ids={event.environment_id for event in events}, names={event.name for event in events}
        )
    )
    if not triggers:
        return 0
    by_name: dict[tuple[int, str], list[IncomingEvent]] = defaultdict(list)
    for event in events:
        by_name[(event.environment_id, event.name)].append(event)
    now = timezone.now()
    test_users: dict[int, set[str]] = {}
    started = 0
    for trigger in triggers:
        config = trigger.event_config
        matching = [
            event
            for event in by_name.get((trigger.environment_id, config["eventName"]), [])
            if event.source_flow_id != trigger.flow_id  # a flow's own events never start it
            and where_matches(config.get("where") or [], event.properties, now=now)
        ]
        if not matching:
            continue
        flow = flow_for_start(flow=trigger.flow)
        mode = start_mode(trigger, flow)
        if mode is None:
            continue
        if mode == Mode.TEST and trigger.environment_id not in test_users:
            test_users[trigger.environment_id] = test_user_ids(trigger.environment_id)
        by_depth: dict[int, list[StartRequest]] = defaultdict(list)
        for event in matching:
            if mode == Mode.LIVE and event.test_only:
                continue
            for start in _mapped_starts(trigger, event):
                if mode == Mode.TEST:
                    targets = [u for u in start.target_user_ids if u in test_users[trigger.environment_id]]
                    if not targets:
                        continue
                    start = dataclasses.replace(start, target_user_ids=targets)
                by_depth[event.chain_depth + 1].append(start)
        for depth, starts in sorted(by_depth.items()):
            started += starts_accept(trigger=trigger, flow=flow, mode=mode, starts=starts, chain_depth=depth)
    return started


def _mapped_starts(trigger: Trigger, event: IncomingEvent) -> list[StartRequest]:
    """The event's starts through the trigger's mapping, keyed by the event; none if it fails."""
    mapping = trigger.event_config.get("mapping") or DEFAULT_EVENT_MAPPING
    try:
        output = apply_mapping(mapping, WebhookInput(body=event.body, headers={}, query={}, method="POST"))
        starts = parse_start_requests(output)
    except (MappingError, Invalid) as failed:
        logger.warning("Event trigger %s: event %s not started, the mapping failed: %s", trigger.pk, event.key, failed)
        return []
    return [keyed(start, event.key, index, len(starts)) for index, start in enumerate(starts)]


def keyed(start: StartRequest, key: str, index: int, count: int) -> StartRequest:
    return dataclasses.replace(start, flow_invocation_id=key if count == 1 else f"{key}-{index}")


# --- Sample, preview and test ---------------------------------------------------------------


def sample_event(*, trigger: Trigger) -> Event | None:
    """The newest event of the trigger's name: its sample."""
    return selectors.last_event(environment_id=trigger.environment_id, name=trigger.event_config["eventName"])


def sample_body(*, trigger: Trigger) -> dict[str, Any] | None:
    event = sample_event(trigger=trigger)
    return event_body(event) if event is not None else None


def no_sample_message(event_name: str) -> str:
    return (
        f"No {event_name!r} event has been received yet. Send one with POST events "
        f'(e.g. [{{"userId": "tester-1", "name": "{event_name}", "properties": {{}}}}]), or preview a payload.'
    )


def event_mapping_preview(
    *, trigger: Trigger, payload: Any = None, payload_given: bool = False, mapping: Any = None
) -> dict[str, Any]:
    """What an event (the newest of its name when none is given) maps to; starts nothing. The
    output shows the flowInvocationId the event would start under."""
    body = payload if payload_given else sample_body(trigger=trigger)
    if body is None:
        return {"output": None, "errors": [no_sample_message(trigger.event_config["eventName"])]}
    preview = mapping_output(body=body, mapping=mapping, saved=trigger.event_config.get("mapping"))
    output = preview["output"]
    if isinstance(output, dict) and isinstance(body, dict):
        message_id = body.get("messageId")
        output = {**output, "flowInvocationId": _event_key(message_id if isinstance(message_id, str) else None, 0)}
        if not isinstance(message_id, str) or not message_id:
            output["flowInvocationId"] = "evt-id-<the event's id>"
        preview = {**preview, "output": output}
    return preview


def event_sample_send_test(*, trigger: Trigger) -> Answer:
    """Run the newest event of the trigger's name through the saved mapping as a test start.
    Every send is a new test (a fresh key), as webhooks' test sends are."""
    event = sample_event(trigger=trigger)
    if event is None:
        return Answer.refused(409, "no_sample", no_sample_message(trigger.event_config["eventName"]))
    mapping = trigger.event_config.get("mapping") or DEFAULT_EVENT_MAPPING
    try:
        output = apply_mapping(mapping, WebhookInput(body=event_body(event), headers={}, query={}, method="POST"))
    except MappingError as failed:
        return Answer.refused(422, "mapping_failed", "The mapping failed.", {"mapping": failed.errors})
    try:
        parsed = parse_start_requests(output)
    except Invalid as invalid:
        detail = "The mapped output is not a valid start request."
        return Answer.refused(422, "mapping_failed", detail, invalid.errors)
    key = _event_key(event.message_id, event.pk)
    return starts_send_as_test(
        trigger=trigger, starts=[keyed(start, key, index, len(parsed)) for index, start in enumerate(parsed)]
    )
