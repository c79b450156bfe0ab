"""Writes for customers and test users."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from workbench.models import Environment, Membership

from .models import ACTIVITY_FIELDS, PROFILE_TEXT_FIELDS, Customer, TestUser

# Every column an upsert may write; the conflict update sets them all from the merged row.
UPSERT_FIELDS = [*PROFILE_TEXT_FIELDS, "tags", "custom_fields", *ACTIVITY_FIELDS, "updated_at"]


@dataclass(frozen=True)
class UpsertResult:
    created: list[str]
    updated: list[str]


def _apply_profile(customer: Customer, profile: Mapping[str, Any]) -> None:
    """Fields given replace their values; customFields merge key by key (None removes a key)."""
    for field in (*PROFILE_TEXT_FIELDS, *ACTIVITY_FIELDS):
        if field in profile:
            setattr(customer, field, profile[field])
    if "tags" in profile:
        customer.tags = list(profile["tags"] or [])
    if "custom_fields" in profile:
        merged = dict(customer.custom_fields or {})
        for key, value in (profile["custom_fields"] or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        customer.custom_fields = merged
    if customer.created_at is None:
        customer.created_at = timezone.now()


def _merge_duplicates(profiles: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Group a batch's profiles by user_id, keeping their order (a later one wins)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for profile in profiles:
        grouped.setdefault(profile["user_id"], []).append(profile)
    return grouped


def customers_upsert(*, environment: Environment, profiles: list[Mapping[str, Any]]) -> UpsertResult:
    """Create or update many profiles in a fixed number of queries, whatever the batch size.

    1. Lock the rows that exist already (one SELECT ... FOR UPDATE).
    2. Merge each profile into its row in Python (omitted fields keep their values).
    3. Write every row with one INSERT ... ON CONFLICT DO UPDATE.
    A row created concurrently between 1 and 3 is overwritten with the merged values of
    this batch, never duplicated: the unique constraint decides.
    """
    grouped = _merge_duplicates(profiles)
    if not grouped:
        return UpsertResult(created=[], updated=[])
    now = timezone.now()
    with transaction.atomic():
        existing = {
            customer.user_id: customer
            for customer in Customer.objects.select_for_update().filter(
                environment=environment, user_id__in=list(grouped)
            )
        }
        rows: list[Customer] = []
        for user_id, versions in grouped.items():
            customer = existing.get(user_id) or Customer(environment=environment, user_id=user_id, created_at=now)
            for profile in versions:
                _apply_profile(customer, profile)
            customer.updated_at = now
            rows.append(customer)
        Customer.objects.bulk_create(
            rows,
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
