"""Writes for customers and test users."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from workbench.errors import FieldErrors, Invalid
from workbench.models import Environment, Membership
from workbench.raw_rows import IGNORE, Upsert, insert_rows_together, prepared_cursor, records_insert
from workbench.shapes import NOT_ONLY_WHITE_SPACE, JSONObject, Shape, Text, validate_shape

from .hooks import RecordedEvent, customers_changed, events_recorded
from .models import (
    ACTIVITY_FIELDS,
    PROFILE_TEXT_FIELDS,
    Customer,
    Event,
    EventDailyCount,
    EventMessageKey,
    TestUser,
)

# Every column an upsert may write; the conflict update sets them all from the merged row.
UPSERT_FIELDS = [*PROFILE_TEXT_FIELDS, "tags", "custom_fields", *ACTIVITY_FIELDS, "updated_at"]


@dataclass(frozen=True)
class UpsertResult:
    created: list[str]
    updated: list[str]


# Columns the SELECT ... FOR UPDATE reads back: what a merge may keep from the stored row.
_STORED_FIELDS = [field for field in UPSERT_FIELDS if field != "updated_at"]
_DATETIME_FIELDS = frozenset((*ACTIVITY_FIELDS, "updated_at"))
# Database column of each field the PostgreSQL statement names.
_COLUMNS: dict[str, str] = {field.name: str(field.column) for field in Customer._meta.concrete_fields}


def _apply_profile(row: dict[str, Any], profile: Mapping[str, Any]) -> None:
    """Fields given replace their values; customFields merge key by key (None removes a key)."""
    for field in (*PROFILE_TEXT_FIELDS, *ACTIVITY_FIELDS):
        if field in profile:
            row[field] = profile[field]
    if "tags" in profile:
        row["tags"] = list(profile["tags"] or [])
    if "custom_fields" in profile:
        merged = dict(row["custom_fields"] or {})
        for key, value in (profile["custom_fields"] or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        row["custom_fields"] = merged


def _merge_duplicates(profiles: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Group a batch's profiles by user_id, keeping their order (a later one wins)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for profile in profiles:
        grouped.setdefault(profile["user_id"], []).append(profile)
    return grouped


def _json_moment(value: Any) -> str:
    """A datetime as ISO 8601 text for PostgreSQL, prepared as the model field would prepare it.

    The field's get_prep_value parses strings, widens dates and makes naive values aware
    (with Django's warning), so this path accepts exactly what bulk_create accepts.
    """
    if not (isinstance(value, datetime) and value.tzinfo is not None):
        value = Customer._meta.get_field("created_at").get_prep_value(value)
    return value.isoformat()


def _write_postgresql(environment: Environment, rows: list[dict[str, Any]], *, update: bool) -> set[str]:
    """One INSERT of the rows (`workbench.raw_rows.records_insert`); returns the userIds written.

    With `update`, a conflicting row is updated (ON CONFLICT DO UPDATE); without, it is left
    alone (DO NOTHING) and its userId is not returned, so the caller can merge into it. The
    rows are JSON objects by column, so no model instance or field preparation is paid per
    value; a missing key is NULL, so None values are left out to keep the payload small.
    """
    records = []
    for row in rows:
        record: dict[str, Any] = {_COLUMNS["environment"]: environment.pk}
        for field, value in row.items():
            if value is not None:
                record[_COLUMNS[field]] = _json_moment(value) if field in _DATETIME_FIELDS else value
        records.append(record)
    on_conflict = Upsert(unique=("environment", "user_id"), update=tuple(UPSERT_FIELDS)) if update else IGNORE
    insert = records_insert(Customer, records, returning=("user_id",), on_conflict=on_conflict)
    return {user_id for (user_id,) in insert_rows_together([insert])}


def _lock_stored(environment: Environment, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Lock the stored rows of these userIds and read back what a merge may keep."""
    stored = (
        Customer.objects.select_for_update()
        .filter(environment=environment, user_id__in=user_ids)
        .order_by("user_id")
        .values_list("user_id", *_STORED_FIELDS)
    )
    return {values[0]: dict(zip(_STORED_FIELDS, values[1:], strict=True)) for values in stored}


def _merged_rows(
    grouped: dict[str, list[Mapping[str, Any]]], existing: dict[str, dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Each userId's stored row (or a blank one) with its profiles applied in order."""
    blank = dict.fromkeys(_STORED_FIELDS)
    rows = []
    for user_id, versions in grouped.items():
        row = dict(existing.get(user_id) or {**blank, "tags": [], "custom_fields": {}, "created_at": now})
        for profile in versions:
            _apply_profile(row, profile)
        if row["created_at"] is None:
            row["created_at"] = now
        row["user_id"] = user_id
        row["updated_at"] = now
        rows.append(row)
    return rows


def customers_upsert(*, environment: Environment, profiles: list[Mapping[str, Any]]) -> UpsertResult:
    """Create or update many profiles in a fixed number of queries, whatever the batch size.

    1. Lock the rows that exist already (one SELECT ... FOR UPDATE), reading back only the
       columns a merge may keep, as plain values rather than model instances.
    2. Merge each profile into its row in Python (omitted fields keep their values; several
       profiles for one userId apply in order).
    3. Write the rows: on PostgreSQL with statements of our own fed by one JSON parameter
       (see _write_postgresql): new rows with ON CONFLICT DO NOTHING, then existing rows,
       and rows a concurrent batch created since step 1 (locked and merged again), with
       ON CONFLICT DO UPDATE. Nothing a concurrent batch wrote is lost. Elsewhere (SQLite,
       whose immediate transactions admit one writer at a time) one bulk_create.
    4. Announce `customers_changed` in the same transaction (new profiles as "*", the others
       by the fields given), so what segments marks commits or rolls back with the write.
    Rows are handled in userId order, so concurrent batches lock them alike: no deadlock.
    """
    grouped = dict(sorted(_merge_duplicates(profiles).items()))
    if not grouped:
        return UpsertResult(created=[], updated=[])
    now = timezone.now()
    with transaction.atomic():
        existing = _lock_stored(environment, list(grouped))
        rows = _merged_rows(grouped, existing, now)
        if connection.vendor == "postgresql":
            new_rows = [row for row in rows if row["user_id"] not in existing]
            old_rows = [row for row in rows if row["user_id"] in existing]
            inserted = _write_postgresql(environment, new_rows, update=False) if new_rows else set()
            raced = [row["user_id"] for row in new_rows if row["user_id"] not in inserted]
            if raced:
                stored = _lock_stored(environment, raced)
                old_rows += _merged_rows({user_id: grouped[user_id] for user_id in raced}, stored, now)
                existing.update(stored)
            if old_rows:
                _write_postgresql(environment, old_rows, update=True)
        else:
            Customer.objects.bulk_create(
                [Customer(environment=environment, **row) for row in rows],
                update_conflicts=True,
                unique_fields=["environment", "user_id"],
                update_fields=UPSERT_FIELDS,
                batch_size=1000,
            )
        created = [user_id for user_id in grouped if user_id not in existing]
        updated = [user_id for user_id in grouped if user_id in existing]
        _announce_changes(environment, grouped, created, updated)
    return UpsertResult(created=created, updated=updated)


# The API's name of each profile field, as customers_changed speaks of them (SPEC section 1).
_API_FIELD_NAMES: dict[str, str] = {
    **{field: field for field in PROFILE_TEXT_FIELDS},
    "tags": "tags",
    "created_at": "createdAt",
    "first_seen_at": "firstSeenAt",
    "last_seen_at": "lastSeenAt",
    "last_seen_ios_at": "lastSeenIosAt",
    "last_seen_android_at": "lastSeenAndroidAt",
    "last_seen_web_at": "lastSeenWebAt",
}


def profile_fields_given(profile: Mapping[str, Any]) -> set[str]:
    """The API names of the fields a profile writes: "country", "tags", "customFields.plan"."""
    fields = {_API_FIELD_NAMES[field] for field in profile if field in _API_FIELD_NAMES}
    fields.update(f"customFields.{key}" for key in profile.get("custom_fields") or {})
    return fields


def _announce_changes(
    environment: Environment,
    grouped: Mapping[str, list[Mapping[str, Any]]],
    created: list[str],
    updated: list[str],
) -> None:
    """Tell the apps above (segments) which profiles changed, inside the upsert's transaction:
    new profiles as "*" (everything about them is new), the others by the fields given."""
    if created:
        customers_changed.announce(environment_id=environment.pk, user_ids=created, fields={"*"})
    if updated:
        fields: set[str] = set()
        for user_id in updated:
            for profile in grouped[user_id]:
                fields |= profile_fields_given(profile)
        if fields:
            customers_changed.announce(environment_id=environment.pk, user_ids=updated, fields=fields)


def customer_upsert(*, environment: Environment, profile: Mapping[str, Any]) -> tuple[Customer, bool]:
    """Upsert one profile; returns the customer and whether it was created."""
    result = customers_upsert(environment=environment, profiles=[profile])
    customer = Customer.objects.get(environment=environment, user_id=profile["user_id"])
    return customer, bool(result.created)


def testuser_create(
    *, environment: Environment, user_id: str, name: str = "", membership: Membership | None = None
) -> TestUser:
    test_user = TestUser(environment=environment, user_id=user_id, name=name, membership=membership)
    test_user.full_clean()
    test_user.save()
    return test_user


def testuser_update(*, test_user: TestUser, user_id: str | None = None, name: str | None = None) -> TestUser:
    if user_id is not None:
        test_user.user_id = user_id
    if name is not None:
        test_user.name = name
    test_user.full_clean()
    test_user.save()
    return test_user


def testuser_delete(*, test_user: TestUser) -> None:
    test_user.delete()


def member_test_user_set(*, membership: Membership, user_id: str) -> TestUser | None:
    """Set (or, with an empty id, clear) a member's own test user id."""
    existing = TestUser.objects.filter(membership=membership).first()
    if not user_id:
        if existing:
            existing.delete()
        return None
    if existing:
        return testuser_update(test_user=existing, user_id=user_id)
    return testuser_create(
        environment=membership.environment,
        user_id=user_id,
        name=membership.user.get_full_name() or membership.user.get_username(),
        membership=membership,
    )


# --- Events (SPEC section 5) ----------------------------------------------------------------

MAX_EVENTS_PER_REQUEST = 1_000
MAX_EVENT_BYTES = 32 * 1024
# A messageId seen within this long makes a repeat a duplicate; older keys are pruned.
MESSAGE_ID_WINDOW = timedelta(hours=24)


class EventShape(Shape):
    """One event of `POST events`: userId and name required, the rest optional."""

    userId = Text(
        max_length=255,
        trim_whitespace=False,
        validators=[NOT_ONLY_WHITE_SPACE],
        help_text="The customer; an unknown userId gets a minimal profile.",
    )
    name = Text(
        max_length=255,
        trim_whitespace=False,
        validators=[NOT_ONLY_WHITE_SPACE],
        help_text='The event\'s name, e.g. "purchase".',
    )
    properties = JSONObject(required=False, help_text="Any JSON object.")
    timestamp = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it happened (ISO 8601); the time of receipt if omitted."
    )
    sentAt = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When the sender sent it, by the sender's clock: corrects timestamp for that clock's skew.",
    )
    messageId = Text(
        max_length=100,
        trim_whitespace=False,
        validators=[NOT_ONLY_WHITE_SPACE],
        required=False,
        allow_null=True,
        help_text="A repeat of a messageId seen in the last 24 hours is a duplicate, counted once.",
    )


@dataclass(frozen=True)
class EventsResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class _NewEvent:
    user_id: str
    name: str
    properties: dict[str, Any]
    occurred_at: datetime
    message_id: str | None


def _json_bytes(value: Any) -> int:
    """The size of a value as compact JSON in UTF-8: what "an event over 32 KiB" measures."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# Characters no text column can keep (PostgreSQL refuses NUL; a lone surrogate is not text):
# EventShape's text fields refuse them (DRF's ProhibitNull/SurrogateCharactersValidator).
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_EVENT_KEYS = frozenset(EventShape._declared_fields)


def _plain_text(value: object, max_length: int) -> bool:
    """Whether EventShape's Text field takes `value` as it is (its checks, in one expression)."""
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and not value.isspace()
        and _UNSTORABLE_CHARACTERS.search(value) is None
    )


_NOT_PLAIN = object()


def _plain_moment(value: object, zone: tzinfo) -> object:
    """EventShape's value for a timestamp that plainly has its shape (None for none), else _NOT_PLAIN."""
    if value is None:
        return None
    if type(value) is not str:
        return _NOT_PLAIN
    try:
        parsed = parse_datetime(value)  # as DRF's DateTimeField parses ISO 8601
        if parsed is None or parsed.tzinfo is None:
            return _NOT_PLAIN
        return parsed.astimezone(zone)
    except (ValueError, TypeError, OverflowError):
        return _NOT_PLAIN


def _plain_event(raw: object, zone: tzinfo) -> dict[str, Any] | None:
    """EventShape's validated value of an event that plainly has its shape, or None to let
    EventShape itself decide (and word the errors).

    A shortcut for the common case, an order of magnitude cheaper than DRF's field machinery
    (which was most of a batch's CPU time): it accepts a subset of what EventShape accepts,
    nothing more, and gives the same values (tests/customers/test_events_api.py holds the
    two side by side).
    """
    if type(raw) is not dict or not raw.keys() <= _EVENT_KEYS:
        return None
    if not _plain_text(raw.get("userId"), 255) or not _plain_text(raw.get("name"), 255):
        return None
    value = {"userId": raw["userId"], "name": raw["name"]}
    if "properties" in raw:
        if not isinstance(raw["properties"], dict):
            return None
        value["properties"] = raw["properties"]
    if "messageId" in raw:
        message_id = raw["messageId"]
        if message_id is not None and not _plain_text(message_id, 100):
            return None
        value["messageId"] = message_id
    for key in ("timestamp", "sentAt"):
        if key in raw:
            moment = _plain_moment(raw[key], zone)
            if moment is _NOT_PLAIN:
                return None
            value[key] = moment
    return value


def events_validate(events: object, *, received_at: datetime) -> list[_NewEvent]:
    """The events of one request, validated whole, or `Invalid` with every problem by index.

    1. The request is an array of 1 to 1,000 events.
    2. Each event is at most 32 KiB of JSON and has EventShape's shape ("[3].name"); a
       plainly valid event is read by _plain_event, any other by EventShape.
    3. Its time: the timestamp, moved by the sender's clock skew (receivedAt - sentAt) when
       sentAt is given; without a timestamp (or when the correction would leave the
       calendar), the time of receipt.
    """
    if not isinstance(events, list):
        raise Invalid({"request": ["Send a JSON array of events."]})
    if not 1 <= len(events) <= MAX_EVENTS_PER_REQUEST:
        raise Invalid({"request": [f"Send 1 to {MAX_EVENTS_PER_REQUEST:,} events per request."]})
    shape = EventShape()  # one per request: a shape validates one value at a time
    zone = timezone.get_current_timezone()
    errors: FieldErrors = {}
    validated: list[_NewEvent] = []
    for index, raw in enumerate(events):
        at = f"[{index}]"
        if _json_bytes(raw) > MAX_EVENT_BYTES:
            errors[at] = [f"An event is at most {MAX_EVENT_BYTES // 1024} KiB of JSON."]
            continue
        value = _plain_event(raw, zone)
        if value is None:
            try:
                value = validate_shape(shape, raw, at=at)
            except Invalid as invalid:
                errors.update(invalid.errors)
                continue
        timestamp, sent_at = value.get("timestamp"), value.get("sentAt")
        occurred_at = received_at
        if timestamp is not None:
            try:
                occurred_at = timestamp if sent_at is None else timestamp + (received_at - sent_at)
            except OverflowError:
                # A clock so wrong that the correction leaves the calendar: its times say
                # nothing, and the time of receipt is the best there is.
                occurred_at = received_at
        validated.append(
            _NewEvent(
                user_id=value["userId"],
                name=value["name"],
                properties=value.get("properties") or {},
                occurred_at=occurred_at,
                message_id=value.get("messageId"),
            )
        )
    if errors:
        raise Invalid(errors)
    return validated


def events_record(
    *,
    environment: Environment,
    events: list[dict[str, Any]] | Any,  # a request's JSON as parsed: validated here
    received_at: datetime | None = None,
    source_flow_id: int | None = None,
    chain_depth: int = 0,
) -> EventsResult:
    """Store custom events (SPEC section 5): all of them or, when one is invalid, none.

    1. Validate the whole request (events_validate): an invalid event stores nothing.
    2. Drop repeats of a messageId inside the request (the first one counts).
    3. In one transaction: claim the messageIds (a key seen in the last 24 hours makes its
       event a duplicate; the unique constraint decides between concurrent requests), store
       the accepted events, add them to the daily counts, create minimal profiles for
       unknown userIds and move lastSeenAt (never backwards) and an empty firstSeenAt; then
       announce `customers_changed` and `events_recorded` in that transaction, so what the
       subscribers write commits with the events.
    On PostgreSQL the writes after the claim are one statement (_write_events_postgresql).
    """
    received_at = received_at or timezone.now()
    validated = events_validate(events, received_at=received_at)
    unique: list[_NewEvent] = []
    seen: set[str] = set()
    for event in validated:
        if event.message_id is not None:
            if event.message_id in seen:
                continue
            seen.add(event.message_id)
        unique.append(event)
    duplicates = len(validated) - len(unique)
    with transaction.atomic():
        claimed = _claim_message_ids(environment, sorted(seen), received_at) if seen else set()
        accepted = [event for event in unique if event.message_id is None or event.message_id in claimed]
        duplicates += len(unique) - len(accepted)
        if not accepted:
            return EventsResult(accepted=0, duplicates=duplicates)
        seen_by_user = _seen_by_user(accepted)
        if connection.vendor == "postgresql":
            ids, created, changed = _write_events_postgresql(
                environment, accepted, seen_by_user, received_at, source_flow_id, chain_depth
            )
        else:
            ids, created, changed = _write_events_portable(
                environment, accepted, seen_by_user, received_at, source_flow_id, chain_depth
            )
        if created:
            customers_changed.announce(environment_id=environment.pk, user_ids=created, fields={"*"})
        if changed:
            customers_changed.announce(
                environment_id=environment.pk, user_ids=changed, fields={"firstSeenAt", "lastSeenAt"}
            )
        events_recorded.announce(
            events=[
                RecordedEvent(
                    event_id=event_id,
                    environment_id=environment.pk,
                    user_id=event.user_id,
                    name=event.name,
                    properties=event.properties,
                    occurred_at=event.occurred_at,
                    message_id=event.message_id,
                    source_flow_id=source_flow_id,
                    chain_depth=chain_depth,
                )
                for event_id, event in zip(ids, accepted, strict=True)
            ]
        )
    return EventsResult(accepted=len(accepted), duplicates=duplicates)


def event_message_keys_prune(*, now: datetime | None = None) -> int:
    """Forget messageIds older than the 24-hour window (for the periodic sweep); returns how many.

    Keys past the window no longer make duplicates even before they are pruned (see
    _claim_message_ids), so pruning late only costs space.
    """
    cutoff = (now or timezone.now()) - MESSAGE_ID_WINDOW
    deleted, _ = EventMessageKey.objects.filter(created_at__lte=cutoff).delete()
    return deleted


def _claim_message_ids(environment: Environment, message_ids: list[str], received_at: datetime) -> set[str]:
    """The messageIds (sorted) not seen in the last 24 hours, now recorded as seen.

    New keys are inserted; on PostgreSQL with ON CONFLICT DO NOTHING RETURNING, so of two
    concurrent requests with one messageId exactly one gets it back (the other waits for the
    first to commit, then sees the conflict). A stored key older than the window is taken
    over by moving its time, under a row lock that makes the same race have one winner.
    """
    if connection.vendor == "postgresql":
        moment = received_at.isoformat()
        records = [{"environment_id": environment.pk, "message_id": key, "created_at": moment} for key in message_ids]
        insert = records_insert(EventMessageKey, records, returning=("message_id",), on_conflict=IGNORE)
        claimed = {message_id for (message_id,) in insert_rows_together([insert])}
    else:
        # SQLite's immediate transactions admit one writer at a time: read, then write.
        stored = set(
            EventMessageKey.objects.filter(environment=environment, message_id__in=message_ids).values_list(
                "message_id", flat=True
            )
        )
        claimed = {key for key in message_ids if key not in stored}
        EventMessageKey.objects.bulk_create(
            [EventMessageKey(environment=environment, message_id=key, created_at=received_at) for key in claimed]
        )
    taken = [key for key in message_ids if key not in claimed]
    if taken:
        stale = list(
            EventMessageKey.objects.select_for_update()
            .filter(environment=environment, message_id__in=taken, created_at__lte=received_at - MESSAGE_ID_WINDOW)
            .order_by("message_id")
            .values_list("message_id", flat=True)
        )
        if stale:
            EventMessageKey.objects.filter(environment=environment, message_id__in=stale).update(created_at=received_at)
            claimed.update(stale)
    return claimed


@dataclass(frozen=True)
class _Seen:
    first: datetime
    last: datetime


def _seen_by_user(events: list[_NewEvent]) -> dict[str, _Seen]:
    """Each customer's earliest and latest event of the batch, in userId order (lock order)."""
    seen: dict[str, _Seen] = {}
    for event in events:
        known = seen.get(event.user_id)
        if known is None:
            seen[event.user_id] = _Seen(event.occurred_at, event.occurred_at)
        elif event.occurred_at < known.first or event.occurred_at > known.last:
            seen[event.user_id] = _Seen(min(known.first, event.occurred_at), max(known.last, event.occurred_at))
    return dict(sorted(seen.items()))


def _daily_counts(events: list[_NewEvent]) -> list[tuple[str, str, date, int]]:
    """(userId, name, UTC day, count) of the events, sorted: the order rows are locked in."""
    counts = Counter((event.user_id, event.name, event.occurred_at.astimezone(UTC).date()) for event in events)
    return sorted((user_id, name, day, count) for (user_id, name, day), count in counts.items())


@cache
def _events_statement() -> str:
    """The one statement that writes accepted events on PostgreSQL (text built once, prepared).

    Three data-modifying CTEs, each fed by one jsonb parameter: the events (their ids come
    back in the order given), the daily counts (added to the stored ones), and the customers
    (created minimal, or their firstSeenAt filled and lastSeenAt moved forward; a row left as
    it was is not returned). `xmax = 0` tells a row this statement inserted from one it updated.
    An event leaves updated_at (the profile's last upsert) alone: the activity columns it
    moves are in no index, so PostgreSQL updates a seen customer's row in place (HOT),
    without touching the table's six indexes.
    """
    quote = connection.ops.quote_name

    def table(model: type[models.Model]) -> str:
        return quote(model._meta.db_table)

    def columns(names: tuple[str, ...]) -> str:
        return ", ".join(quote(name) for name in names)

    event_columns = columns(_EVENT_COLUMNS)
    count_columns = columns(("environment_id", "user_id", "name", "day", "count"))
    customer_columns = columns(_CUSTOMER_COLUMNS)
    event, count, customer = table(Event), table(EventDailyCount), table(Customer)
    return (  # only quoted names from the models' metadata are formatted in
        f"WITH new_events AS (INSERT INTO {event} ({event_columns}) SELECT {event_columns} "  # noqa: S608
        f"FROM jsonb_populate_recordset(NULL::{event}, %s::jsonb) RETURNING id), "
        f"counts AS (INSERT INTO {count} ({count_columns}) SELECT {count_columns} "
        f"FROM jsonb_populate_recordset(NULL::{count}, %s::jsonb) "
        "ON CONFLICT (environment_id, name, user_id, day) "
        f'DO UPDATE SET "count" = {count}."count" + EXCLUDED."count"), '
        f"seen AS (INSERT INTO {customer} ({customer_columns}) SELECT {customer_columns} "
        f"FROM jsonb_populate_recordset(NULL::{customer}, %s::jsonb) "
        f"ON CONFLICT (environment_id, user_id) DO UPDATE SET "
        f"first_seen_at = COALESCE({customer}.first_seen_at, EXCLUDED.first_seen_at), "
        f"last_seen_at = GREATEST({customer}.last_seen_at, EXCLUDED.last_seen_at) "
        f"WHERE {customer}.first_seen_at IS NULL OR {customer}.last_seen_at IS NULL "
        f"OR {customer}.last_seen_at < EXCLUDED.last_seen_at "
        "RETURNING user_id, xmax = 0 AS inserted) "
        "SELECT id, NULL, NULL FROM new_events UNION ALL SELECT NULL, user_id, inserted FROM seen"
    )


_EVENT_COLUMNS = (
    "environment_id",
    "user_id",
    "name",
    "properties",
    "occurred_at",
    "received_at",
    "message_id",
    "source_flow_id",
    "chain_depth",
)
_CUSTOMER_COLUMNS = (
    "environment_id",
    "user_id",
    "tags",
    "custom_fields",
    "created_at",
    "first_seen_at",
    "last_seen_at",
    "updated_at",
)


def _write_events_postgresql(
    environment: Environment,
    events: list[_NewEvent],
    seen_by_user: dict[str, _Seen],
    received_at: datetime,
    source_flow_id: int | None,
    chain_depth: int,
) -> tuple[list[int], list[str], list[str]]:
    """Write the events, counts and customers in one statement; (event ids, created, changed)."""
    environment_id, moment = environment.pk, received_at.isoformat()
    event_rows = [
        {
            "environment_id": environment_id,
            "user_id": event.user_id,
            "name": event.name,
            "properties": event.properties,
            "occurred_at": event.occurred_at.isoformat(),
            "received_at": moment,
            "message_id": event.message_id,
            "source_flow_id": source_flow_id,
            "chain_depth": chain_depth,
        }
        for event in events
    ]
    count_rows = [
        {"environment_id": environment_id, "user_id": user_id, "name": name, "day": day.isoformat(), "count": count}
        for user_id, name, day, count in _daily_counts(events)
    ]
    customer_rows = [
        {
            "environment_id": environment_id,
            "user_id": user_id,
            "tags": [],
            "custom_fields": {},
            "created_at": moment,
            "first_seen_at": seen.first.isoformat(),
            "last_seen_at": seen.last.isoformat(),
            "updated_at": moment,
        }
        for user_id, seen in seen_by_user.items()
    ]
    with prepared_cursor() as cursor:
        cursor.execute(_events_statement(), [json.dumps(rows) for rows in (event_rows, count_rows, customer_rows)])
        rows = cursor.fetchall()
    ids = [event_id for event_id, _, _ in rows if event_id is not None]
    created = [user_id for event_id, user_id, inserted in rows if event_id is None and inserted]
    changed = [user_id for event_id, user_id, inserted in rows if event_id is None and not inserted]
    return ids, created, changed


def _write_events_portable(
    environment: Environment,
    events: list[_NewEvent],
    seen_by_user: dict[str, _Seen],
    received_at: datetime,
    source_flow_id: int | None,
    chain_depth: int,
) -> tuple[list[int], list[str], list[str]]:
    """The same with the ORM (SQLite: one writer at a time, so reading before writing is safe)."""
    stored = Event.objects.bulk_create(
        [
            Event(
                environment=environment,
                user_id=event.user_id,
                name=event.name,
                properties=event.properties,
                occurred_at=event.occurred_at,
                received_at=received_at,
                message_id=event.message_id,
                source_flow_id=source_flow_id,
                chain_depth=chain_depth,
            )
            for event in events
        ],
        batch_size=500,
    )
    count_table = connection.ops.quote_name(EventDailyCount._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {count_table} (environment_id, user_id, name, day, count) VALUES (%s, %s, %s, %s, %s) "  # noqa: S608
            "ON CONFLICT (environment_id, name, user_id, day) DO UPDATE SET count = count + excluded.count",
            [
                (environment.pk, user_id, name, day.isoformat(), count)
                for user_id, name, day, count in _daily_counts(events)
            ],
        )
    known = {
        user_id: (first, last)
        for user_id, first, last in Customer.objects.filter(
            environment=environment, user_id__in=list(seen_by_user)
        ).values_list("user_id", "first_seen_at", "last_seen_at")
    }
    created = [user_id for user_id in seen_by_user if user_id not in known]
    Customer.objects.bulk_create(
        [
            Customer(
                environment=environment,
                user_id=user_id,
                created_at=received_at,
                first_seen_at=seen_by_user[user_id].first,
                last_seen_at=seen_by_user[user_id].last,
                updated_at=received_at,
            )
            for user_id in created
        ],
        batch_size=500,
    )
    changes = []
    for user_id, (first, last) in known.items():
        seen = seen_by_user[user_id]
        if first is None or last is None or last < seen.last:
            changes.append(
                Customer(
                    environment=environment,
                    user_id=user_id,
                    first_seen_at=first or seen.first,
                    last_seen_at=seen.last if last is None else max(last, seen.last),
                )
            )
    if changes:
        # bulk_update matches by primary key; these rows are matched by userId instead.
        ids = dict(
            Customer.objects.filter(environment=environment, user_id__in=[c.user_id for c in changes]).values_list(
                "user_id", "pk"
            )
        )
        for change in changes:
            change.pk = ids[change.user_id]
        Customer.objects.bulk_update(changes, ["first_seen_at", "last_seen_at"], batch_size=500)
    return [event.pk for event in stored], created, sorted(change.user_id for change in changes)
