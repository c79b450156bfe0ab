"""Concurrent batch upserts of overlapping customers on PostgreSQL: no deadlock, no duplicate."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from customers.models import Customer
from customers.services import customers_upsert
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_overlapping_batches_in_different_orders_all_succeed_with_one_row_per_user() -> None:
    environment = environment_create(slug="acme", name="Acme")
    user_ids = [f"user-{number}" for number in range(500)]

    def upsert(seed: int) -> int:
        batch = list(user_ids)
        random.Random(seed).shuffle(batch)
        try:
            result = customers_upsert(
                environment=environment,
                profiles=[{"user_id": user_id, "custom_fields": {f"writer{seed}": True}} for user_id in batch],
            )
            return len(result.created) + len(result.updated)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        written = list(pool.map(upsert, range(6)))

    assert written == [500] * 6
    assert Customer.objects.count() == 500
    merged = Customer.objects.get(user_id="user-7").custom_fields
    assert merged == {f"writer{seed}": True for seed in range(6)}
