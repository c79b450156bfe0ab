"""Events re-sent with the same messageId at the same moment on PostgreSQL: each counts once."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from customers.models import Customer, Event, EventDailyCount
from customers.services import events_record
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SENDERS = 6


def test_concurrent_repeats_of_the_same_message_ids_store_each_event_once() -> None:
    environment = environment_create(slug="acme", name="Acme")
    events = [
        {"userId": f"user-{number % 40}", "name": "purchase", "messageId": f"order-{number}"} for number in range(300)
    ]
    start = threading.Barrier(SENDERS)

    def send(seed: int) -> tuple[int, int]:
        batch = list(events)
        random.Random(seed).shuffle(batch)  # overlapping keys in different orders: no deadlock either
        try:
            start.wait()
            result = events_record(environment=environment, events=batch)
            return result.accepted, result.duplicates
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        results = list(pool.map(send, range(SENDERS)))

    assert sum(accepted for accepted, _ in results) == 300
    assert all(accepted + duplicates == 300 for accepted, duplicates in results)
    assert Event.objects.filter(environment=environment).count() == 300
    assert sorted(Event.objects.values_list("message_id", flat=True)) == sorted(e["messageId"] for e in events)
    assert sum(EventDailyCount.objects.values_list("count", flat=True)) == 300
    assert Customer.objects.filter(environment=environment).count() == 40
