"""Segment membership under concurrency and crashes, on PostgreSQL with a real worker process.

Whatever runs at the same moment (two full evaluations, a full and an incremental one, twenty
writers flipping one customer) or dies in the middle (a worker SIGKILLed during a full
evaluation), every real change of membership emits exactly one segment-entered/exited event
and the ledger ends where the profiles say.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from customers.services import customers_upsert
from flows.models import AnalyticsEvent
from segments import services
from segments.ledger import SegmentRef
from segments.models import CustomerMark, Segment, SegmentMembership, SegmentStatus
from tests.integration.conftest import WorkerProcess, wait_for
from workbench.celery import enqueue
from workbench.models import Environment
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

GERMANS: dict[str, Any] = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}


def bulk_customers(environment: Environment, count: int, prefix: str = "u") -> None:
    """`count` customers in one statement, every other one German (u000000 is)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (environment_id, user_id, country, tags, custom_fields, created_at, "
            "updated_at) SELECT %s, %s || lpad(g::text, 6, '0'), CASE WHEN g %% 2 = 0 THEN 'DE' ELSE 'FR' END, "
            "'[]', '{}', now(), now() FROM generate_series(0, %s - 1) g",
            [environment.pk, prefix, count],
        )


def germans(environment: Environment) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id FROM customers_customer WHERE environment_id = %s AND country = 'DE'", [environment.pk]
        )
        return {row[0] for row in cursor.fetchall()}


def members(segment: Segment) -> set[str]:
    return set(SegmentMembership.objects.filter(segment=segment, is_member=True).values_list("user_id", flat=True))


def transitions(segment: Segment) -> dict[str, list[str]]:
    """Each customer's segment events, in the order they were written."""
    by_user: dict[str, list[str]] = defaultdict(list)
    rows = AnalyticsEvent.objects.filter(properties__segmentId=segment.pk).order_by("pk").values_list("user_id", "name")
    for user_id, name in rows:
        by_user[user_id].append(name)
    return by_user


def assert_consistent(segment: Segment, expected_members: set[str]) -> None:
    """Members are who the profiles say, and each customer's events alternate entered/exited,
    starting with an entry and ending as the ledger stands: no event duplicated or missing."""
    assert members(segment) == expected_members
    history = transitions(segment)
    for user_id, names in history.items():
        assert names[0] == "segment-entered", (user_id, names)
        assert all(a != b for a, b in pairwise(names)), (user_id, names)
        assert (names[-1] == "segment-entered") == (user_id in expected_members), (user_id, names)
    assert expected_members <= set(history)
    rows = SegmentMembership.objects.filter(segment=segment).values_list("user_id", "sequence")
    assert {user_id: len(history[user_id]) for user_id, _ in rows} == dict(rows)


def create_segment(environment: Environment, rules: dict[str, Any] = GERMANS) -> Segment:
    return services.segment_create(environment=environment, name="Germans", rules=rules)


def until_ready(segment: Segment, timeout: float = 120) -> bool:
    def ready() -> bool:
        segment.refresh_from_db()
        return segment.status == SegmentStatus.READY

    return wait_for(ready, timeout=timeout, interval=0.2)


def in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return work()
        finally:
            connection.close()

    return run


def test_two_full_evaluations_at_once_emit_each_entry_once(celery_worker_process: WorkerProcess) -> None:
    environment = environment_create(slug="acme", name="Acme")
    bulk_customers(environment, 20_000)
    segment = create_segment(environment)  # the worker starts evaluating it now
    ref = SegmentRef(segment.pk, environment.pk, segment.name, segment.rules)

    # Two more evaluators that each believe they hold the lease (as a worker whose lease ran
    # out while it still ran would): nothing but the ledger's statements keeps them apart.
    def evaluate() -> None:
        services._evaluate_batches(ref, "t", segment.rules_version, timezone.now())

    with mock.patch.object(services, "_renew"), ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: in_thread(evaluate)(), range(2)))

    assert until_ready(segment)
    assert_consistent(segment, germans(environment))
    assert AnalyticsEvent.objects.filter(name="segment-entered").count() == 10_000
    assert segment.member_count == 10_000


def test_a_full_and_incremental_evaluations_at_once_emit_each_change_once(
    celery_worker_process: WorkerProcess,
) -> None:
    environment = environment_create(slug="acme", name="Acme")
    bulk_customers(environment, 20_000)
    segment = create_segment(environment)

    # While the worker evaluates, 2,000 customers change country (each one's membership
    # flips) through the upsert service, whose marks the worker processes too.
    def flip(start: int) -> None:
        for offset in range(0, 500, 50):
            profiles = [
                {"user_id": f"u{number:06d}", "country": "FR" if number % 2 == 0 else "DE"}
                for number in range(start + offset, start + offset + 50)
            ]
            customers_upsert(environment=environment, profiles=profiles)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda start: in_thread(lambda: flip(start))(), range(0, 20_000, 5_000)))

    assert until_ready(segment)
    assert wait_for(lambda: not CustomerMark.objects.exists(), timeout=60)
    assert_consistent(segment, germans(environment))


def test_twenty_concurrent_writers_flipping_one_customer_leave_alternating_events(
    celery_worker_process: WorkerProcess,
) -> None:
    environment = environment_create(slug="acme", name="Acme")
    segment = create_segment(environment)
    assert until_ready(segment)
    barrier = threading.Barrier(20)
    last_written: list[str] = []
    lock = threading.Lock()

    def write(number: int) -> None:
        barrier.wait()
        for round_ in range(5):
            country = "DE" if (number + round_) % 2 == 0 else "FR"
            with lock:  # the order of commits: the last one decides the final profile
                customers_upsert(environment=environment, profiles=[{"user_id": "ana", "country": country}])
                last_written.append(country)
            # And the incremental path runs here too, beside the worker's.
            services.marks_process()

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda number: in_thread(lambda: write(number))(), range(20)))

    assert wait_for(lambda: not CustomerMark.objects.exists(), timeout=60)
    expected = {"ana"} if last_written[-1] == "DE" else set()
    assert_consistent(segment, expected)
    assert len(transitions(segment)["ana"]) > 1


def test_a_worker_killed_in_a_full_evaluation_leaves_a_right_ledger_after_restart(
    celery_worker_process: WorkerProcess,
) -> None:
    environment = environment_create(slug="acme", name="Acme")
    bulk_customers(environment, 100_000)
    segment = create_segment(environment)

    assert wait_for(lambda: AnalyticsEvent.objects.filter(name="segment-entered").count() >= 5_000, timeout=120)
    celery_worker_process.kill()
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.COMPUTING
    entered_before_restart = AnalyticsEvent.objects.filter(name="segment-entered").count()
    assert entered_before_restart < 50_000

    celery_worker_process.start()

    # Beat is not running in tests: send the sweep as it would, until the dead worker's lease
    # runs out and the evaluation starts again.
    def swept_ready() -> bool:
        enqueue("segments.sweep")
        time.sleep(1)
        segment.refresh_from_db()
        return segment.status == SegmentStatus.READY

    assert wait_for(swept_ready, timeout=services.lease_seconds() + 180, interval=1)
    assert_consistent(segment, germans(environment))
    entered = Counter(AnalyticsEvent.objects.filter(name="segment-entered").values_list("user_id", flat=True))
    assert len(entered) == 50_000
    assert set(entered.values()) == {1}
