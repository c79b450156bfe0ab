"""Writes for customers and test users."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from workbench.models import Environment, Membership
from workbench.raw_rows import IGNORE, Upsert, insert_rows_together, records_insert

from .models import ACTIVITY_FIELDS, PROFILE_TEXT_FIELDS, Customer, TestUser

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
    return UpsertResult(created=created, updated=updated)


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
