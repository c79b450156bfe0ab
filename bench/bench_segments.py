"""Full evaluation of a segment against a hand-written count of the same predicate.

The segment is issue 12's three conditions: `country eq DE`, `customFields.plan in [pro,
enterprise]` and `event purchase countGte 2 withinLastDays 30`, over 1,000,000 customers and
5,000,000 purchase events (with their daily rollup), evaluated from an empty ledger: every
member's ledger row and its segment-entered analytics event are written. The reference is a
hand-written `SELECT count(*)` with the same predicate over the same tables, in the same run.
Goals (issue 12): at most 10 s and at most 5x the count (a ratio of rates of at least 0.2).
A second line re-evaluates after an edit that adds a plan (a few % more members; goal: 2 s),
as the edit's task runs it today; two more run that edit and its reverse with the shortcuts of
segments.services.edit_plan (entries only, exits only), given the rules the segment was ready with.

A third part measures incremental latency (issue 12): 50 segments defined (rules reading
country, customFields, tags, lastSeenAt and events; most of them flipped by the updates), 200
profile updates per second arrive through gunicorn (`POST customers`, 10 profiles a request, or
`PUT customers/{userId}` with BENCH_SEGMENTS_BATCH=1; an events credential; one customer per
update, each updated once, entering ~4.7 segments) for 30 s, and ONE Celery worker process
(`-c 1`: its parent and one pool child) keeps membership current. For every
`segment-entered` analytics event an update caused, the latency is the time from the update's
answer (read by the client) to the moment a poller (every 20 ms, its own connection) first sees
the event committed: an upper bound on the commit time, late by at most one poll and its query.
(The event's `occurred_at` is not used: it is the moment the worker's evaluation started, before
it flipped the row and committed, so it would understate the latency.) Goal: p95 at most 2 s;
the worker's peak RSS (VmHWM of its processes) is printed with it. The updated customers are
restored afterwards, so the data stays the generator's.

BENCH_SEGMENTS_CUSTOMERS scales the data down (events are five per customer) for a quick try
(at least rate x seconds customers: each update has a customer of its own).
BENCH_SEGMENTS_PARTS picks the parts: "evaluation" (the full evaluation and the edit), "latency",
or both (the default, comma-separated). BENCH_SEGMENTS_RATE, BENCH_SEGMENTS_SECONDS,
BENCH_SEGMENTS_BATCH and BENCH_SEGMENTS_WORKER_CONCURRENCY change the latency part's load
(default 200/s, 30 s, 10 profiles a request, -c 1). A run whose API took fewer than 95% of the
updates a second it was offered is marked below its goal: the goal was not tested.
The generated data stays in the benchmark database between runs (generating it takes minutes).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import os
import random
import resource
import statistics
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import BenchError, Result, database_url, timed

CUSTOMERS = int(os.environ.get("BENCH_SEGMENTS_CUSTOMERS", "1000000"))
PARTS = {part.strip() for part in os.environ.get("BENCH_SEGMENTS_PARTS", "evaluation,latency").split(",")}
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


def _edit_with_shortcut(segment: Any, rules: dict[str, Any]) -> Any:
    """Save the edit and evaluate it here with the rules the segment was ready with, so that
    edit_plan's shortcuts apply (the task that the edit sends does not carry them yet)."""
    from unittest import mock

    from segments import services
    from segments.models import SegmentStatus

    previous = segment.rules
    with mock.patch.object(services, "enqueue"):  # the evaluation is run below instead
        segment = services.segment_update(segment=segment, rules=rules)
    outcome = services.segment_evaluate(
        segment_id=segment.pk, previous=services.PreviousRules(rules=previous, version=segment.rules_version)
    )
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.READY, (outcome, segment.last_error)
    return segment


def run() -> list[Result]:
    from celery import current_app

    from workbench.models import Environment

    unknown = PARTS - {"evaluation", "latency"}
    if unknown:
        raise BenchError(f"BENCH_SEGMENTS_PARTS: unknown parts {sorted(unknown)} (evaluation, latency)")
    # Evaluations started by this process run here, not sent: nothing of it may go to a broker.
    current_app.conf.task_always_eager = True
    # Importing the tasks (done before the first eager task) configures Django's logging again.
    current_app.loader.import_default_modules()
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # not a line per eager task
    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark"})
    _ensure_data(environment.pk)
    results: list[Result] = []
    if "evaluation" in PARTS:
        results += _run_evaluation(environment)
    if "latency" in PARTS:
        results += _run_latency(environment)
    return results


def _run_evaluation(environment: Any) -> list[Result]:
    from flows.models import AnalyticsEvent

    started = datetime.now(UTC)

    count_seconds: list[float] = []
    evaluate_seconds: list[float] = []
    edit_seconds: list[float] = []
    narrow_seconds: list[float] = []
    widen_seconds: list[float] = []
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
        # The same two edits with the shortcuts of segments.services.edit_plan: back to the
        # first plans (narrower: the members only), then "starter" again (wider: entrants only).
        after = edited.member_count
        seconds, narrowed = timed(partial(_edit_with_shortcut, edited, RULES))
        narrow_seconds.append(seconds)
        assert narrowed.member_count == before, (narrowed.member_count, before)
        seconds, widened = timed(partial(_edit_with_shortcut, narrowed, EDITED))
        widen_seconds.append(seconds)
        assert widened.member_count == after, (widened.member_count, after)
        print(
            f"  with the shortcuts: {after:,} -> {before:,} members (exits only) {narrow_seconds[-1]:.2f} s, "
            f"back to {after:,} (entries only) {widen_seconds[-1]:.2f} s",
            flush=True,
        )
    _empty_ledger(environment.pk)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {CUSTOMERS:,} customers, {members:,} members; count {min(count_seconds):.2f} s, "
        f"full evaluation {min(evaluate_seconds):.2f} s (goal 10 s), edit {min(edit_seconds):.2f} s (goal 2 s; "
        f"with the shortcut {min(widen_seconds):.2f} s, its reverse {min(narrow_seconds):.2f} s); "
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
        Result(
            name="  the same edit, entries only (edit_plan)",
            unit="customers/s",
            measured=CUSTOMERS / min(widen_seconds),
            reference=CUSTOMERS / min(count_seconds),
            reference_name="SELECT count(*)",
            goal=None,
        ),
        Result(
            name="  its reverse, exits only (edit_plan)",
            unit="customers/s",
            measured=CUSTOMERS / min(narrow_seconds),
            reference=CUSTOMERS / min(count_seconds),
            reference_name="SELECT count(*)",
            goal=None,
        ),
    ]


# --- incremental latency ------------------------------------------------------------------

LATENCY_RATE = float(os.environ.get("BENCH_SEGMENTS_RATE") or 200)
LATENCY_SECONDS = float(os.environ.get("BENCH_SEGMENTS_SECONDS") or 30)
# "one worker process" (issue 12): -c 1 is the worker's parent and one prefork child.
LATENCY_CONCURRENCY = int(os.environ.get("BENCH_SEGMENTS_WORKER_CONCURRENCY") or 1)
# Profiles per request: by default POST customers with 10 profiles (20 requests a second); 1
# sends each update as its own PUT customers/{userId}, which on the 2-core machine gunicorn
# answered 45-80 times a second, too few to put the worker under the goal's load.
LATENCY_BATCH = int(os.environ.get("BENCH_SEGMENTS_BATCH") or 10)
LATENCY_GOAL_SECONDS = 2.0
# Client threads, each with its keep-alive connection: enough that a slow answer does not hold
# back the schedule (an update is sent at its due time by the first free thread).
LATENCY_CONNECTIONS = 16
POLL_SECONDS = 0.02
POLL_LIMIT = 20_000  # rows a poll reads at most (the next one goes on from there)
DRAIN_TIMEOUT_SECONDS = 180
FLIP_TAGS = [f"t{number}" for number in range(10)]
TIERS = ["bronze", "silver", "gold", "platinum", "diamond"]
COUNTRIES = ["DE", "FR", "US", "GB", "BR", "JP"]
REPEAT_BUYER = {"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30}


def _all(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"match": "all", "conditions": list(conditions)}


def _latency_segments() -> list[tuple[str, dict[str, Any]]]:
    """50 segments: 45 that the updates flip (tags, custom fields, lastSeenAt, country, alone or
    with events), and 5 whose members the updates rarely change (the full evaluation's rules
    among them). Small memberships at the start: 50 full evaluations run before the load."""
    score, tier, plan = "customFields.score", "customFields.tier", "customFields.plan"
    paying = _field(plan, "in", ["pro", "enterprise"])
    segments: list[tuple[str, dict[str, Any]]] = []
    for number, tag in enumerate(FLIP_TAGS):
        has = {"tag": tag, "op": "has"}
        country = COUNTRIES[number % len(COUNTRIES)]
        segments.append((f"tag {tag}", _all(has)))
        segments.append((f"tag {tag} in {country}", _all(has, _field("country", "eq", country))))
        if number < 5:
            segments.append((f"tag {tag}, repeat buyer", _all(has, REPEAT_BUYER)))
            pair = {"tags": FLIP_TAGS[number : number + 2], "op": "hasAll"}
            either = {"match": "any", "conditions": [pair, _field(score, "gte", 98)]}
            segments.append((f"tags {'+'.join(pair['tags'])} or score 98+", either))
    for low in range(0, 100, 20):
        segments.append((f"score {low}-{low + 19}", _all(_field(score, "gte", low), _field(score, "lt", low + 20))))
    for name in TIERS:
        segments.append((f"{name}, paying", _all(_field(tier, "eq", name), paying)))
    for country, days in zip(COUNTRIES, [1, 2, 7, 14, 30], strict=False):
        seen = _field("lastSeenAt", "withinLastDays", days)
        segments.append((f"seen {days}d in {country}", _all(seen, _field("country", "eq", country))))
    this_week = {"event": "purchase", "op": "occurred", "withinLastDays": 7}
    segments += [
        ("DE paying repeat buyers", RULES),
        ("BR/JP enterprise", _all(_field("country", "in", ["BR", "JP"]), _field(plan, "eq", "enterprise"))),
        ("5 purchases in 30 days", _all({"event": "purchase", "op": "countGte", "value": 5, "withinLastDays": 30})),
        ("FR starters", _all(_field("country", "eq", "FR"), _field(plan, "eq", "starter"))),
        ("non-US starters buying", _all(_field("country", "neq", "US"), _field(plan, "eq", "starter"), this_week)),
    ]
    assert len(segments) == 50, len(segments)
    return segments


def _field(name: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": name, "op": op, "value": value}


def _make_updates(rng: random.Random, count: int) -> list[tuple[str, dict[str, Any]]]:
    """One update per customer, `count` distinct customers: 0-3 of the flip tags, a score and
    a tier, a new country one time in ten (lastSeenAt is added when the update is sent)."""
    if count > CUSTOMERS:
        raise BenchError(f"{count:,} updates need as many customers; BENCH_SEGMENTS_CUSTOMERS is {CUSTOMERS:,}")
    updates = []
    for number in rng.sample(range(CUSTOMERS), count):
        body: dict[str, Any] = {
            "tags": rng.sample(FLIP_TAGS, rng.randint(0, 3)),
            "customFields": {"score": rng.randrange(100), "tier": rng.choice(TIERS)},
        }
        if rng.random() < 0.1:
            body["country"] = rng.choice(COUNTRIES)
        updates.append((f"c{number:07d}", body))
    return updates


@dataclass(frozen=True)
class _Answer:
    user_id: str
    status: int
    due: float  # time.monotonic() of the schedule
    sent: float
    answered: float


def _send_updates(
    base: str, slug: str, token: str, updates: list[tuple[str, dict[str, Any]]], rate: float, batch: int
) -> list[_Answer]:
    """Send each update at its due time (open loop: `rate` updates a second whatever the answers
    take): one `PUT customers/{userId}` each, or with `batch` > 1 one `POST customers` of
    `batch` profiles every batch / rate seconds (each of its updates answered with it)."""
    parts = urllib.parse.urlsplit(base)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    requests = [updates[start : start + batch] for start in range(0, len(updates), batch)]
    counter = itertools.count()
    answers: list[_Answer] = []
    lock = threading.Lock()
    started = time.monotonic() + 0.2

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            while (number := next(counter)) < len(requests):
                due = started + number * batch / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                seen = datetime.now(UTC).isoformat()
                payload: dict[str, Any] | list[dict[str, Any]]
                if batch == 1:
                    (user_id, body), *_ = requests[number]
                    method, path, payload = "PUT", f"/api/v1/{slug}/customers/{user_id}", {**body, "lastSeenAt": seen}
                else:
                    profiles = [{**body, "userId": user_id, "lastSeenAt": seen} for user_id, body in requests[number]]
                    method, path, payload = "POST", f"/api/v1/{slug}/customers", profiles
                sent = time.monotonic()
                try:
                    connection.request(method, path, body=json.dumps(payload), headers=headers)
                    answer = connection.getresponse()
                    answer.read()
                    status = answer.status
                except (OSError, http.client.HTTPException):
                    connection.close()
                    status = 0
                answered = time.monotonic()
                with lock:
                    answers.extend(_Answer(user_id, status, due, sent, answered) for user_id, _ in requests[number])
        finally:
            connection.close()

    threads = [threading.Thread(target=client, name=f"bench-client-{n}") for n in range(LATENCY_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@dataclass
class _Poller:
    """Sees segment-entered events committed: polls the table every POLL_SECONDS on a connection
    of its own and keeps, for each new event, the moment the poll that first returned it ended."""

    environment_id: int
    after_id: int
    slack: int  # ids re-read below the highest seen: with several writers, ids commit out of order
    seen: dict[int, tuple[str, float]] = field(default_factory=dict)  # id: (userId, observed)
    polls: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(database_url(), autocommit=True) as connection:
                highest = self.after_id
                while not self.stop.is_set():
                    highest = self.poll(connection, max(self.after_id, highest - self.slack), highest)
                    self.stop.wait(POLL_SECONDS)
                self.poll(connection, max(self.after_id, highest - self.slack), highest)
        except BaseException as error:  # reported by the main thread
            self.error = error

    def poll(self, connection: Any, after: int, highest: int) -> int:
        """One poll; returns the highest id it read. A range of the primary key, filtered here:
        with (environment, name) in the WHERE clause PostgreSQL walked that index's 100k+
        entries of the segments' first evaluations on every poll (20 ms of a core each)."""
        rows = connection.execute(
            "SELECT id, user_id, environment_id, name FROM flows_analyticsevent WHERE id > %s ORDER BY id LIMIT %s",
            [after, POLL_LIMIT],
        ).fetchall()
        observed = time.monotonic()
        self.polls += 1
        for event_id, user_id, environment_id, name in rows:
            if environment_id == self.environment_id and name == "segment-entered":
                self.seen.setdefault(event_id, (user_id, observed))
        return max(highest, rows[-1][0]) if rows else highest


@contextlib.contextmanager
def _polling(poller: _Poller) -> Iterator[_Poller]:
    thread = threading.Thread(target=poller.run, name="bench-poller")
    thread.start()
    try:
        yield poller
    finally:
        poller.stop.set()
        thread.join()
    if poller.error is not None:
        raise BenchError(f"the poller failed: {poller.error!r}")


def _process_group_peak_rss(group: int) -> dict[int, int]:
    """Peak resident memory (VmHWM, kB) of every live process of a process group, by pid."""
    peaks: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != group:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(proc.name)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return peaks


def _percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share 0.95: the value 95% of the values are at or below)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def _wait_for_marks(environment_id: int, answers_done: float) -> float:
    """Wait until the worker has handled every mark (the marks go in the transaction that flips
    the ledger and writes the events); seconds after the last answer that took."""
    from segments.models import CustomerMark

    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while CustomerMark.objects.filter(environment_id=environment_id).exists():
        if time.monotonic() > deadline:
            left = CustomerMark.objects.filter(environment_id=environment_id).count()
            raise BenchError(f"the worker left {left:,} marks after {DRAIN_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - answers_done


def _saved_customers(environment_id: int, user_ids: list[str]) -> list[tuple[Any, ...]]:
    """What the updates change of these customers, to put back afterwards."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT country, tags::text, custom_fields::text, last_seen_at, first_seen_at, updated_at, "
            "environment_id, user_id FROM customers_customer WHERE environment_id = %s AND user_id = ANY(%s)",
            [environment_id, user_ids],
        )
        return list(cursor.fetchall())


def _restore_customers(rows: list[tuple[Any, ...]]) -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE customers_customer SET country = %s, tags = %s::jsonb, custom_fields = %s::jsonb, "
            "last_seen_at = %s, first_seen_at = %s, updated_at = %s WHERE environment_id = %s AND user_id = %s",
            rows,
        )


@dataclass(frozen=True)
class LatencyResult(Result):
    """A line whose figures are durations (lower is better): the ratio is reference / measured,
    so that, with the goal as the reference, a ratio of at least 1 meets it. A run that could
    not offer its load (`load_offered` false) meets no goal: the latency was not measured under it."""

    load_offered: bool = True

    @property
    def ratio(self) -> float:
        return self.reference / self.measured if self.measured else 0.0

    @property
    def passed(self) -> bool:
        return self.load_offered and super().passed


def _run_latency(environment: Any) -> list[Result]:
    from bench.bench_starts import config_from_environment, request_token
    from bench.processes import celery_worker, drop_queue, gunicorn, new_queue, service_environment
    from flows.models import AnalyticsEvent
    from workbench.models import ApiCredential, CredentialRole
    from workbench.services import credential_create, credential_revoke

    count = int(LATENCY_RATE * LATENCY_SECONDS)
    updates = _make_updates(random.Random(12), count)
    config = config_from_environment()
    print(
        f"  latency: 50 segments, {LATENCY_RATE:g} updates a second ({_how_sent()}) for {LATENCY_SECONDS:g} s "
        f"({count:,} customers of {CUSTOMERS:,}), {config}, celery worker -c {LATENCY_CONCURRENCY}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    _empty_ledger(environment.pk)
    seconds, _ = timed(partial(_define_segments, environment))
    members = AnalyticsEvent.objects.filter(environment=environment, name="segment-entered").count()
    print(f"  50 segments evaluated in {seconds:.1f} s ({members:,} memberships)", flush=True)
    first_event = AnalyticsEvent.objects.filter(environment=environment).order_by("-pk").values_list("pk", flat=True)
    poller = _Poller(environment.pk, after_id=first_event.first() or 0, slack=0 if LATENCY_CONCURRENCY == 1 else 5000)
    saved = _saved_customers(environment.pk, [user_id for user_id, _ in updates])
    issued = credential_create(environment=environment, role=CredentialRole.EVENTS, label="bench latency")
    queue = new_queue("bench-segments")
    load_before = os.getloadavg()[0]
    try:
        with (
            celery_worker(queue, LATENCY_CONCURRENCY, service_environment(queue)) as worker,
            gunicorn(config, service_environment(queue, settings_module="bench.bare_site")) as base,
        ):
            token = request_token(base, issued.credential.client_id, issued.client_secret)
            with _polling(poller):
                answers = _send_updates(base, environment.slug, token, updates, LATENCY_RATE, LATENCY_BATCH)
                last_answer = max(answer.answered for answer in answers)
                drained = _wait_for_marks(environment.pk, last_answer)
                time.sleep(2 * POLL_SECONDS)
            peaks = _process_group_peak_rss(worker.popen.pid)
        load_after = os.getloadavg()[0]
    finally:
        drop_queue(queue)
        credential = ApiCredential.objects.filter(pk=issued.credential.pk).first()
        if credential is not None:
            credential_revoke(credential=credential)
        exited = AnalyticsEvent.objects.filter(
            environment=environment, name="segment-exited", pk__gt=poller.after_id
        ).count()
        _empty_ledger(environment.pk)
        _restore_customers(saved)
    return _latency_results(answers, poller, peaks, drained, exited, (load_before, load_after))


def _how_sent() -> str:
    return "PUT customers/{userId}" if LATENCY_BATCH == 1 else f"POST customers, {LATENCY_BATCH} a request"


def _define_segments(environment: Any) -> None:
    """Create the 50 segments and evaluate each fully here, as the worker would."""
    from segments import services
    from segments.models import SegmentStatus

    for name, rules in _latency_segments():
        segment = services.segment_create(environment=environment, name=name, rules=rules)
        services.segment_evaluate(segment_id=segment.pk)  # already done in eager mode: then "busy"
        segment.refresh_from_db()
        assert segment.status == SegmentStatus.READY, (name, segment.last_error)


def _latency_results(
    answers: list[_Answer],
    poller: _Poller,
    peaks: dict[int, int],
    drained: float,
    exited: int,
    loads: tuple[float, float],
) -> list[Result]:
    failed = [answer for answer in answers if answer.status != 200]
    if failed:
        statuses = sorted({answer.status for answer in failed})
        raise BenchError(f"{len(failed):,} of {len(answers):,} updates were not answered 200 (statuses {statuses})")
    answered = {answer.user_id: answer.answered for answer in answers}
    per_event = [observed - answered[user_id] for user_id, observed in poller.seen.values() if user_id in answered]
    per_update: dict[str, float] = {}
    for user_id, observed in poller.seen.values():
        if user_id in answered:
            per_update[user_id] = max(per_update.get(user_id, 0.0), observed - answered[user_id])
    if not per_event:
        raise BenchError("no update made a customer enter a segment")
    span = max(answer.answered for answer in answers) - min(answer.sent for answer in answers)
    behind = max(answer.sent - answer.due for answer in answers)
    api = [answer.answered - answer.sent for answer in answers]
    p50, p95, worst = _percentile(per_event, 0.5), _percentile(per_event, 0.95), max(per_event)
    update_p95 = _percentile(list(per_update.values()), 0.95)
    # The client sends on schedule unless the server holds its connections: then fewer
    # updates a second reached the worker than the goal speaks of.
    offered = len(answers) / span >= 0.95 * LATENCY_RATE
    verdict = "PASS" if p95 <= LATENCY_GOAL_SECONDS else "ABOVE GOAL"
    if not offered:
        verdict += f", but the API took {len(answers) / span:,.0f} updates/s, not {LATENCY_RATE:g}: goal not tested"
    worker_peak = max(peaks.values(), default=0) / 1024
    print(
        f"  {len(answers):,} updates answered in {span:.1f} s ({len(answers) / span:,.0f}/s; the client was at most "
        f"{behind * 1000:,.0f} ms behind its schedule); answers p50 {statistics.median(api) * 1000:,.0f} ms, "
        f"p95 {_percentile(api, 0.95) * 1000:,.0f} ms",
        flush=True,
    )
    print(
        f"  {len(per_update):,} updates made customers enter segments: {len(per_event):,} segment-entered events "
        f"(and {exited:,} segment-exited); the worker was done {drained:.1f} s after the last answer; "
        f"{poller.polls:,} polls",
        flush=True,
    )
    print(
        f"  update answered -> segment-entered committed (seen by polling every {POLL_SECONDS * 1000:.0f} ms): "
        f"p50 {p50:.3f} s, p95 {p95:.3f} s, max {worst:.3f} s (goal p95 <= {LATENCY_GOAL_SECONDS:g} s: {verdict}); "
        f"per update (its last event) p95 {update_p95:.3f} s",
        flush=True,
    )
    rss = ", ".join(f"{kb / 1024:.0f} MB" for _, kb in sorted(peaks.items()))
    print(
        f"  worker peak RSS {worker_peak:.0f} MB (its processes: {rss}); "
        f"load average {loads[0]:.2f} before, {loads[1]:.2f} after",
        flush=True,
    )
    return [
        LatencyResult(
            name=f"segment latency p95: {len(answers) / span:,.0f} updates/s ({_how_sent()}), 50 segments",
            unit="ms",
            measured=p95 * 1000,
            reference=LATENCY_GOAL_SECONDS * 1000,
            reference_name="goal p95",
            goal=1.0,
            load_offered=offered,
        )
    ]
