"""Full evaluation of a segment against a hand-written count of the same predicate.

The segment is issue 12's three conditions: `country eq DE`, `customFields.plan in [pro,
enterprise]` and `event purchase countGte 2 withinLastDays 30`, over 1,000,000 customers and
5,000,000 purchase events (with their daily rollup), evaluated from an empty ledger: every
member's ledger row and its segment-entered analytics event are written. The reference is a
hand-written `SELECT count(*)` with the same predicate over the same tables, in the same run.
Goals (issue 12): at most 10 s and at most 5x the count (a ratio of rates of at least 0.2).
A second line re-evaluates after an edit that adds a plan (a few % more members; goal: 2 s).

BENCH_SEGMENTS_CUSTOMERS scales the data down (events are five per customer) for a quick try.
The generated data stays in the benchmark database between runs (generating it takes minutes).
"""

from __future__ import annotations

import os
import resource
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bench.harness import Result, timed

CUSTOMERS = int(os.environ.get("BENCH_SEGMENTS_CUSTOMERS", "1000000"))
EVENTS_PER_CUSTOMER = 5
REPEATS = 2
GOAL = 0.2  # at most 5x the count's time
ENVIRONMENT_SLUG = "bench-segments"
# The environment's name says which generator made its data (a change regenerates it).
DATA_VERSION = "Benchmark segments (data v2)"

RULES: dict[str, Any] = {
    "match": "all",
    "conditions": [
        {"field": "country", "op": "eq", "value": "DE"},
        {"field": "customFields.plan", "op": "in", "value": ["pro", "enterprise"]},
        {"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30},
    ],
}
# The edit: the same rules but "starter" plans too (2% of customers have it: see _make_data).
EDITED: dict[str, Any] = {
    **RULES,
    "conditions": [
        RULES["conditions"][0],
        {"field": "customFields.plan", "op": "in", "value": ["pro", "enterprise", "starter"]},
        RULES["conditions"][2],
    ],
}

COUNT_SQL = """
SELECT count(*) FROM customers_customer c
WHERE c.environment_id = %(environment)s AND c.country = 'DE'
  AND c.custom_fields ->> 'plan' IN ('pro', 'enterprise')
  AND c.user_id IN (
    SELECT d.user_id FROM customers_eventdailycount d
    WHERE d.environment_id = %(environment)s AND d.name = 'purchase' AND d.day >= current_date - 29
    GROUP BY d.user_id HAVING sum(d.count) >= 2)
"""


def _make_data(environment_id: int) -> None:
    """Customers (a sixth German; plans free/starter/pro/enterprise at 50/2/32/16%), five
    purchase events each over the last 90 days, and their daily rollup; in SQL, in bulk."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("customers_eventdailycount", "customers_event", "customers_customer"):
            cursor.execute(f"DELETE FROM {table} WHERE environment_id = %s", [environment_id])
        cursor.execute(
            """
            INSERT INTO customers_customer
                (environment_id, user_id, country, tags, custom_fields, created_at, updated_at)
            SELECT %s, 'c' || lpad(g::text, 7, '0'),
                   (ARRAY['DE','FR','US','GB','BR','JP'])[1 + (hashint4(g) & 2147483647) %% 6],
                   '[]',
                   jsonb_build_object('plan', CASE WHEN h < 25 THEN 'free' WHEN h = 25 THEN 'starter'
                                                   WHEN h < 41 THEN 'pro' ELSE 'enterprise' END),
                   now(), now()
            FROM generate_series(0, %s - 1) g, LATERAL (SELECT (hashint4(g + 7919) & 2147483647) %% 50 AS h) p
            """,
            [environment_id, CUSTOMERS],
        )
        cursor.execute(
            """
            INSERT INTO customers_event (environment_id, user_id, name, properties, occurred_at, received_at,
                                         chain_depth)
            SELECT %s, 'c' || lpad((g / %s)::text, 7, '0'), 'purchase', '{}',
                   now() - ((hashint4(g) & 2147483647) %% 90) * interval '1 day', now(), 0
            FROM generate_series(0, %s - 1) g
            """,
            [environment_id, EVENTS_PER_CUSTOMER, CUSTOMERS * EVENTS_PER_CUSTOMER],
        )
        cursor.execute(
            """
            INSERT INTO customers_eventdailycount (environment_id, user_id, name, day, count)
            SELECT environment_id, user_id, name, (occurred_at AT TIME ZONE 'UTC')::date, count(*)
            FROM customers_event WHERE environment_id = %s GROUP BY 1, 2, 3, 4
            """,
            [environment_id],
        )
    with connection.cursor() as cursor:
        for table in ("customers_customer", "customers_event", "customers_eventdailycount"):
            cursor.execute(f"ANALYZE {table}")


def _ensure_data(environment_id: int) -> None:
    from django.db import connection

    from workbench.models import Environment

    marker = Environment.objects.get(pk=environment_id).name
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer WHERE environment_id = %s", [environment_id])
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM customers_event WHERE environment_id = %s", [environment_id])
        events = cursor.fetchone()[0]
    if customers != CUSTOMERS or events != CUSTOMERS * EVENTS_PER_CUSTOMER or marker != DATA_VERSION:
        print(f"  generating {CUSTOMERS:,} customers and {CUSTOMERS * EVENTS_PER_CUSTOMER:,} events ...", flush=True)
        _make_data(environment_id)
        Environment.objects.filter(pk=environment_id).update(name=DATA_VERSION)


def _empty_ledger(environment_id: int) -> None:
    """Drop earlier runs' segments, their ledger and their analytics events, in bulk."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM segments_segmentmembership WHERE environment_id = %s; "
            "DELETE FROM segments_segmentsize WHERE segment_id IN (SELECT id FROM segments_segment "
            "WHERE environment_id = %s); "
            "DELETE FROM segments_customermark WHERE environment_id = %s; "
            "DELETE FROM segments_segment WHERE environment_id = %s; "
            "DELETE FROM flows_analyticsevent WHERE environment_id = %s",
            [environment_id] * 5,
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segments_segmentmembership")
        cursor.execute("VACUUM ANALYZE flows_analyticsevent")


def _count(environment_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(COUNT_SQL, {"environment": environment_id})
        return int(cursor.fetchone()[0])


def _evaluate(environment: Any, rules: dict[str, Any], segment: Any = None) -> Any:
    """Save (or edit) the segment and run its full evaluation here, as the worker would."""
    from segments import services
    from segments.models import SegmentStatus

    if segment is None:
        segment = services.segment_create(environment=environment, name="Bench", rules=rules)
    else:
        segment = services.segment_update(segment=segment, rules=rules)
    outcome = services.segment_evaluate(segment_id=segment.pk)
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.READY, (outcome, segment.last_error)
    return segment


def run() -> list[Result]:
    from celery import current_app

    from flows.models import AnalyticsEvent
    from workbench.models import Environment

    # The evaluation is called here, not sent: nothing of it may go to a broker.
    current_app.conf.task_always_eager = True
    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark"})
    _ensure_data(environment.pk)
    started = datetime.now(UTC)

    count_seconds: list[float] = []
    evaluate_seconds: list[float] = []
    edit_seconds: list[float] = []
    members = 0
    for _ in range(REPEATS):
        seconds, members = timed(lambda: _count(environment.pk))
        count_seconds.append(seconds)
        _empty_ledger(environment.pk)
        seconds, segment = timed(lambda: _evaluate(environment, RULES))
        evaluate_seconds.append(seconds)
        assert segment.member_count == members, (segment.member_count, members)
        entered = AnalyticsEvent.objects.filter(environment=environment, name="segment-entered").count()
        assert entered == members, (entered, members)
        before = segment.member_count
        seconds, edited = timed(partial(_evaluate, environment, EDITED, segment))
        edit_seconds.append(seconds)
        print(f"  edit: {before:,} -> {edited.member_count:,} members", flush=True)
    _empty_ledger(environment.pk)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {CUSTOMERS:,} customers, {members:,} members; count {min(count_seconds):.2f} s, "
        f"full evaluation {min(evaluate_seconds):.2f} s (goal 10 s), edit {min(edit_seconds):.2f} s (goal 2 s); "
        f"peak RSS of this process {peak_mb:.0f} MB (goal 300 MB); started {started:%H:%M:%S}",
        flush=True,
    )
    return [
        Result(
            name=f"segment full evaluation: {CUSTOMERS:,} customers",
            unit="customers/s",
            measured=CUSTOMERS / min(evaluate_seconds),
            reference=CUSTOMERS / min(count_seconds),
            reference_name="SELECT count(*)",
            goal=GOAL,
        ),
        Result(
            name="segment re-evaluation after a ~1% edit",
            unit="customers/s",
            measured=CUSTOMERS / min(edit_seconds),
            reference=CUSTOMERS / min(count_seconds),
            reference_name="SELECT count(*)",
            goal=None,
        ),
    ]
