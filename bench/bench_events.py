"""Events ingestion through gunicorn in batches of 500, against a COPY of the same rows (SPEC section 5).

The measured side is `POST /api/v1/{env}/events` with an events token: each request carries
500 events of 5,000 customers (three small properties, a timestamp and a sentAt for the skew
correction, a distinct messageId), so every event is validated, its messageId claimed, the
event stored, its daily count bumped and its customer created or seen again, all in one
transaction, before the 202. Whatever subscribes to `events_recorded` and `customers_changed`
(segments marking customers, event triggers) runs too, as in production. No Celery worker
runs; what the subscribers enqueue goes to the run's own queue, dropped afterwards.

The requests are built here before each window and written one a line to a file that wrk's
script sends in turn (`bench.processes.FILE_REQUESTS_SCRIPT`), every answer counted by
status: only 202s with every event accepted count (a duplicate would mean the file ran out).

The reference is PostgreSQL's fastest way to load the same rows: one `COPY ... FROM STDIN` of
the events of a window into `customers_event`, emptied first, with all its indexes in place.
Events per second against rows per second; the goal is 0.2 (issue 12).
"""

from __future__ import annotations

import functools
import gc
import json
import math
import random
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_starts import config_from_environment, request_token
from bench.harness import BenchError, Result, Timing, empty_scratch_environment, timed
from bench.processes import (
    FILE_REQUESTS_SCRIPT,
    LoadResult,
    drop_queue,
    gunicorn,
    new_queue,
    service_environment,
    wrk,
)

GOAL = 0.2
ENVIRONMENT_SLUG = "bench-events"
BATCH = 500
CUSTOMERS = 5_000
CONNECTIONS = 4  # a request is 500 events: a few in flight keep both workers busy
WARMUP_SECONDS = 2.0
SECONDS = 5.0
REPEATS = 3
MARGIN_REQUESTS = 20

NAMES = ["app_open", "purchase", "page_view", "add_to_cart", "search"]
PLANS = ["free", "starter", "pro", "enterprise"]
COPY_COLUMNS = (
    "environment_id",
    "user_id",
    "name",
    "properties",
    "occurred_at",
    "received_at",
    "message_id",
    "chain_depth",
)
EVENT_TABLES = ("customers_event", "customers_eventdailycount", "customers_eventmessagekey")


def make_events(rng: random.Random, tag: str, count: int, now: datetime) -> list[dict[str, Any]]:
    """`count` events as an app sends them: ISO times, a sentAt a little after the timestamp."""
    events = []
    for number in range(count):
        occurred = now - timedelta(seconds=rng.randint(0, 7 * 86_400))
        events.append(
            {
                "userId": f"user-{rng.randrange(CUSTOMERS):05d}",
                "name": rng.choice(NAMES),
                "properties": {"plan": rng.choice(PLANS), "amount": rng.randint(1, 500), "screen": "home"},
                "timestamp": occurred.isoformat(),
                "sentAt": (occurred + timedelta(seconds=rng.randint(0, 30))).isoformat(),
                "messageId": f"{tag}-{number}",
            }
        )
    return events


def write_requests(events: list[dict[str, Any]]) -> Path:
    """One request a line (`<batch number>\\t<JSON array of 500 events>`); the caller deletes it."""
    with tempfile.NamedTemporaryFile("w", prefix="bench-events-", suffix=".txt", delete=False) as file:
        for number, start in enumerate(range(0, len(events), BATCH)):
            file.write(f"{number}\t{json.dumps(events[start : start + BATCH], separators=(',', ':'))}\n")
    return Path(file.name)


def copy_rows(environment_id: int, events: list[dict[str, Any]], now: datetime) -> list[tuple[Any, ...]]:
    from psycopg.types.json import Jsonb

    return [
        (
            environment_id,
            event["userId"],
            event["name"],
            Jsonb(event["properties"]),
            datetime.fromisoformat(event["timestamp"]),
            now,
            event["messageId"],
            0,
        )
        for event in events
    ]


def ensure_scratch_tables(environment: Any) -> None:
    """Refuse to empty event tables that hold anyone else's events."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in EVENT_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE environment_id <> %s", [environment.pk])
            (others,) = cursor.fetchone()
            if others:
                raise BenchError(
                    f"{table} holds {others:,} rows of other environments; this benchmark empties it. "
                    "Point DATABASE_URL at a scratch database (the default is bench_workbench)."
                )


def empty_tables() -> None:
    """Start from empty event tables whose planner statistics say so."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(EVENT_TABLES)}")
        for table in EVENT_TABLES:
            cursor.execute(f"ANALYZE {table}")


def load_by_copy(rows: list[tuple[Any, ...]]) -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY customers_event ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def send(url: str, seconds: float, requests: Path, token: str) -> LoadResult:
    return wrk(
        url,
        seconds=seconds,
        connections=CONNECTIONS,
        headers={"Authorization": f"Bearer {token}"},
        script_text=FILE_REQUESTS_SCRIPT,
        script_args=["X-Bench-Batch", str(requests)],
    )


def stored_events(environment: Any) -> int:
    from customers.models import Event

    return Event.objects.filter(environment=environment).count()


def check_accepted(environment: Any, load: LoadResult, before: int) -> None:
    """Every answer was a 202 and its 500 events are stored (none was a duplicate)."""
    others = {status: count for status, count in load.statuses.items() if status != 202}
    if load.errors or others or not load.statuses:
        raise BenchError(f"events: {load.requests} answers, {load.errors} errors, statuses {load.statuses}")
    stored = stored_events(environment) - before
    # wrk stops the clock with requests in flight; those may still commit.
    if not load.requests * BATCH <= stored <= (load.requests + CONNECTIONS) * BATCH:
        raise BenchError(f"{load.requests} requests of {BATCH} answered 202 but {stored:,} events were stored")


def run() -> list[Result]:
    from workbench.models import CredentialRole, Environment
    from workbench.services import credential_create

    config = config_from_environment()
    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark events"})
    empty_scratch_environment(environment)
    ensure_scratch_tables(environment)
    issued = credential_create(environment=environment, role=CredentialRole.EVENTS, label="bench")
    queue = new_queue("bench-events")
    env = service_environment(queue, settings_module="bench.bare_site")
    print(f"  {config}, wrk -t1 -c{CONNECTIONS}, {BATCH} events a request, {SECONDS:g} s x {REPEATS}", flush=True)
    rng = random.Random(12)
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    loads: list[LoadResult] = []
    copy_seconds: list[float] = []
    copied = 0
    files: list[Path] = []
    try:
        with gunicorn(config, env) as base:
            token = request_token(base, issued.credential.client_id, issued.client_secret)
            url = f"{base}/api/v1/{environment.slug}/events"
            files.append(write_requests(make_events(rng, f"{tag}w", 200 * BATCH, now)))
            before = stored_events(environment)
            warm = send(url, WARMUP_SECONDS, files[-1], token)
            check_accepted(environment, warm, before)
            per_window = math.ceil(2 * warm.rate * SECONDS) + MARGIN_REQUESTS
            for repeat in range(REPEATS):
                events = make_events(rng, f"{tag}{repeat}", per_window * BATCH, now)
                rows = copy_rows(environment.pk, events, now)
                gc.collect()
                empty_tables()
                seconds, _ = timed(functools.partial(load_by_copy, rows))
                copy_seconds.append(seconds)
                copied = len(rows)
                del rows
                empty_tables()
                files.append(write_requests(events))
                before = stored_events(environment)
                loads.append(send(url, SECONDS, files[-1], token))
                check_accepted(environment, loads[-1], before)
                print(
                    f"  window {repeat + 1}: {loads[-1].rate * BATCH:,.0f} events/s "
                    f"(wrk {loads[-1].client_cpu_share:.0%} of a core); COPY {copied / seconds:,.0f} rows/s",
                    flush=True,
                )
    finally:
        for file in files:
            file.unlink(missing_ok=True)
        drop_queue(queue)
        empty_tables()
        empty_scratch_environment(environment)
        Environment.objects.filter(pk=environment.pk).delete()

    measured = max(load.rate for load in loads) * BATCH
    return [
        Result(
            name=f"events ingestion, batches of {BATCH} ({config})",
            unit="events/s",
            measured=measured,
            reference=Timing(copy_seconds).rate(copied),
            reference_name="COPY into customers_event",
            goal=GOAL,
        )
    ]
