"""Live webhook requests per second through gunicorn, against a bare Django view (SPEC section 4).

The measured side is `POST /hooks/{token}` to a live webhook trigger of a published one-card
flow, configured as a sender would configure it: a Stripe-style HMAC-SHA256 signature
(`Stripe-Signature: t=<timestamp>,v1=<hex digest of "timestamp.body">`, 300 s tolerance) and
a structured mapping (JSONPath into the body for the target, the delivery id and a variable).
Every request is a distinct delivery of a distinct customer, so each one is verified, mapped,
accepted durably on PostgreSQL in one statement (the invocation, the request log entry and
its webhook-received event) and its fan-out published to Redis by the process's batching
thread. No Celery worker runs: the fan-out (the acceptance event, the customer's profile,
the runs) is not part of this figure, and the messages are dropped with the run's own
queue afterwards.

wrk's Lua has no HMAC, so the signed requests are made here, before each window, from the
current time (well within the tolerance), written one a line to a file that wrk's script
reads at start-up and sends in turn (`bench.processes.FILE_REQUESTS_SCRIPT`). The script counts
every answer by status: the webhook side must answer 202 and nothing else (a 401 is a bad
signature, a 200 a duplicate delivery: the pre-signed requests ran out).

The reference is `POST /bench/bare-hook` (bench/bare_urls.py), a plain Django view served by
the same gunicorn processes that reads and parses the same JSON and answers 202: no token,
signature, mapping or database. A second line gives the goal's scale: the "durable floor",
`POST /bench/bare-durable-hook`, the bare view plus one prepared INSERT of the body into a
table with nothing but a primary key, committed before the answer; no endpoint that answers
202 only once the start is durable can do less. A third, the "round trips floor"
(`POST /bench/bare-round-trips-hook`), first makes the webhook's lookup (its trigger: one
prepared primary-key read), then writes. A fourth, the "rows floor"
(`POST /bench/bare-rows-hook`), makes that lookup and then writes the rows a webhook keeps (an
invocation and its request-log entry, in one statement, into copies of their tables with all
their indexes). wrk (one thread, keep-alive) sends the five the same
pre-built requests, in alternating windows; its own CPU time is reported to show it is not
the bottleneck.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.bench_starts import CARD_STEP, config_from_environment, live_results
from bench.harness import BenchError, Result, durable_floor_table, empty_scratch_environment
from bench.processes import (
    FILE_REQUESTS_SCRIPT,
    LoadResult,
    drop_queue,
    gunicorn,
    new_queue,
    service_environment,
    wrk,
)

if TYPE_CHECKING:
    from triggers.signatures import SignatureConfig

# Issue 10: live webhooks at least 0.5 of the durable floor, measured in the same run.
GOAL = 0.5
ENVIRONMENT_SLUG = "bench-webhooks"
CONNECTIONS = 8
WARMUP_SECONDS = 2.0
SECONDS = 4.0
REPEATS = 3
# Pre-signed requests for the webhook warm-up (at most this many answers in WARMUP_SECONDS);
# each measured window then gets twice the warm-up's rate over its length, plus a margin.
WARMUP_REQUESTS = 6_000
MARGIN_REQUESTS = 1_000
SIGNATURE_HEADER = "Stripe-Signature"
SECRET = "whsec_bench_" + "5" * 32
MAPPING = {
    "type": "structured",
    "structured": {
        "targetUserIds": "$.customer.id",
        "flowInvocationId": "$.id",
        "variables": {"firstName": "$.customer.first_name"},
    },
}


def signature_config() -> SignatureConfig:
    """The Stripe preset with our secret: `t=` timestamp, `v1=` hex HMAC-SHA256 of `[timestamp].[payload]`."""
    from triggers.signatures import preset_config, validate_signature_config

    return validate_signature_config({**preset_config("stripe"), "secret": SECRET})


def prepare_trigger() -> tuple[Any, Any, Any]:
    """A scratch environment with a published one-card flow and its live, signed webhook trigger."""
    from flows.services import flow_create, flow_publish
    from triggers.services import trigger_mode_set, webhook_trigger_create
    from workbench.models import Environment

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark webhooks"})
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench webhook welcome",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD_STEP],
    )
    flow_publish(flow=flow)
    trigger = webhook_trigger_create(
        flow=flow, mapping=MAPPING, security={"allowedIps": [], "signature": signature_config()}
    )
    trigger = trigger_mode_set(trigger=trigger, mode="live")
    return environment, flow, trigger


def signed_line(tag: str, number: int, timestamp: int) -> str:
    """`<Stripe-Signature value>\\t<body>`: a distinct delivery id and customer, signed as Stripe signs."""
    body = json.dumps(
        {
            "id": f"evt_{tag}_{number}",
            "type": "customer.created",
            "created": timestamp,
            "customer": {"id": f"cus_{tag}_{number}", "first_name": "Ada", "email": f"ada+{number}@example.com"},
        },
        separators=(",", ":"),
    )
    signed = f"{timestamp}.{body}".encode()
    digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}\t{body}\n"


def write_requests(tag: str, count: int) -> Path:
    """A file of `count` signed requests, timestamped now; the caller deletes it."""
    timestamp = int(time.time())
    with tempfile.NamedTemporaryFile("w", prefix="bench-webhooks-", suffix=".txt", delete=False) as file:
        file.writelines(signed_line(tag, number, timestamp) for number in range(count))
    return Path(file.name)


def send(url: str, seconds: float, requests: Path) -> LoadResult:
    return wrk(
        url,
        seconds=seconds,
        connections=CONNECTIONS,
        headers={},
        script_text=FILE_REQUESTS_SCRIPT,
        script_args=[SIGNATURE_HEADER, str(requests)],
    )


def check_all_202(load: LoadResult, side: str) -> None:
    others = {status: count for status, count in load.statuses.items() if status != 202}
    if load.errors or others or not load.statuses:
        hint = ""
        if 401 in others:
            hint = " (401: the signature generation is wrong)"
        elif 200 in others:
            hint = " (200: duplicate deliveries; the pre-signed requests ran out)"
        raise BenchError(
            f"{side}: {load.requests} answers, {load.errors} errors, statuses {load.statuses}; expected only 202{hint}"
        )


def accepted_counts(trigger: Any) -> tuple[int, int]:
    """Invocations of the flow and accepted entries in the trigger's request log."""
    from flows.models import Invocation
    from triggers.models import RequestOutcome, WebhookRequest

    invocations = Invocation.objects.filter(flow_id=trigger.flow_id).count()
    logged = WebhookRequest.objects.filter(trigger=trigger, outcome=RequestOutcome.ACCEPTED, status_code=202).count()
    return invocations, logged


def check_accepted(trigger: Any, load: LoadResult, before: tuple[int, int]) -> None:
    """Every answer was a 202 and is durable: one new invocation and accepted log entry per request."""
    check_all_202(load, "webhooks")
    after = accepted_counts(trigger)
    for what, count in (("invocations", after[0] - before[0]), ("accepted log entries", after[1] - before[1])):
        # wrk stops the clock with requests in flight; those may still commit.
        if not load.requests <= count <= load.requests + CONNECTIONS:
            raise BenchError(f"{load.requests} webhooks answered 202 but {count} {what} were written")


def run() -> list[Result]:
    from workbench.models import Environment

    config = config_from_environment()
    environment, _flow, trigger = prepare_trigger()
    queue = new_queue("bench-webhooks")
    env = service_environment(queue, settings_module="bench.bare_site")
    print(
        f"  {config}, wrk -t1 -c{CONNECTIONS}, {SECONDS:g} s x {REPEATS}, no Celery worker; "
        f"Stripe-style sha256 signature, structured mapping, live",
        flush=True,
    )
    webhooks: list[LoadResult] = []
    bare: list[LoadResult] = []
    floor: list[LoadResult] = []
    round_trips: list[LoadResult] = []
    rows: list[LoadResult] = []
    files: list[Path] = []
    tag = uuid.uuid4().hex[:8]
    try:
        with durable_floor_table(), gunicorn(config, env) as base:
            hook_url = f"{base}/hooks/{trigger.token}"
            bare_url, floor_url = f"{base}/bench/bare-hook", f"{base}/bench/bare-durable-hook"
            round_trips_url, rows_url = f"{base}/bench/bare-round-trips-hook", f"{base}/bench/bare-rows-hook"
            files.append(write_requests(f"{tag}w", WARMUP_REQUESTS))
            bare_requests = files[-1]  # the references keep no state: they may see them again
            check_all_202(send(bare_url, WARMUP_SECONDS, bare_requests), "bare warm-up")
            check_all_202(send(floor_url, WARMUP_SECONDS, bare_requests), "durable floor warm-up")
            check_all_202(send(round_trips_url, WARMUP_SECONDS, bare_requests), "round trips floor warm-up")
            check_all_202(send(rows_url, WARMUP_SECONDS, bare_requests), "rows floor warm-up")
            before = accepted_counts(trigger)
            warm = send(hook_url, WARMUP_SECONDS, files[-1])
            check_accepted(trigger, warm, before)
            per_window = math.ceil(2 * warm.rate * SECONDS) + MARGIN_REQUESTS
            for repeat in range(REPEATS):
                references = (
                    (bare_url, bare, "bare"),
                    (floor_url, floor, "durable floor"),
                    (round_trips_url, round_trips, "round trips floor"),
                    (rows_url, rows, "rows floor"),
                )
                for url, loads, side in references:
                    loads.append(send(url, SECONDS, bare_requests))
                    check_all_202(loads[-1], side)
                files.append(write_requests(f"{tag}{repeat}", per_window))
                before = accepted_counts(trigger)
                webhooks.append(send(hook_url, SECONDS, files[-1]))
                check_accepted(trigger, webhooks[-1], before)
    finally:
        for file in files:
            file.unlink(missing_ok=True)
        drop_queue(queue)
        empty_scratch_environment(environment)
        Environment.objects.filter(pk=environment.pk).delete()

    return live_results(
        name=f"live webhooks, signed + mapped ({config})",
        reference_name="bare Django view 202",
        loads={
            "bare": bare,
            "durable floor": floor,
            "round trips floor": round_trips,
            "rows floor": rows,
            "webhooks": webhooks,
        },
        goal=GOAL,
    )
