"""Marketo batches through gunicorn and a real worker (SPEC section 7, issue 14 "Performance").

Two figures:

1. **Time to the 201** of `POST /integrations/marketo/<token>/submitAsyncAction` with a batch
   of 1,000 leads (about 150 KB of JSON), sent one after another by one client over a
   keep-alive connection, BATCHES times after a warm-up. The request checks the API key, the
   JSON and its shape and makes the batch durable with one INSERT; nothing else is done on the
   request. The goal is a p99 under 250 ms. The same-run reference is the "durable floor"
   (`POST /bench/bare-durable-hook`, bench/bare_urls.py): a bare Django view that parses the
   same body and INSERTs it, committed before answering.

2. **Leads per second to their callbacks**: LEAD_BATCHES batches of 1,000 live leads are
   submitted at once, and the clock stops when a local receiver (Marketo's callback endpoint,
   impersonated on 127.0.0.1, OUTBOUND_ALLOW_PRIVATE=1) has every lead's result. A Celery
   worker (WORKER_CONCURRENCY processes) starts the leads through the start pipeline and posts
   the callbacks. The reference is the same number of starts through the API
   (`POST action-flow/{id}/start`, 100 starts per request, the same gunicorn): the rate a
   customer's own integration gets for accepting the same starts, with no callback at all.
   Run fan-outs (cards) are not waited for on either side.

Order: the callbacks first, with a fresh worker (nothing queued ahead of the batches); then the
worker stops and its queue is dropped, and the API reference and the times to the 201 are
measured with no worker running (the request does not depend on one).
"""

from __future__ import annotations

import http.client
import json
import math
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bench.bench_starts import CARD_STEP, config_from_environment, request_token
from bench.harness import BenchError, Result, durable_floor_table, empty_scratch_environment
from bench.processes import celery_worker, drop_queue, gunicorn, new_queue, service_environment

ENVIRONMENT_SLUG = "bench-marketo"
LEADS = 1000
BATCHES = 30
WARMUP_BATCHES = 5
LEAD_BATCHES = 10
WORKER_CONCURRENCY = 2
GOAL_P99_SECONDS = 0.25
CALLBACK_TIMEOUT_SECONDS = 600


def prepare() -> tuple[Any, Any, Any, tuple[str, str]]:
    """A scratch environment with a published one-card flow, its live Marketo trigger (the key)
    and an events credential for the reference starts."""
    from flows.services import flow_create, flow_publish
    from triggers.marketo import marketo_trigger_create
    from triggers.services import trigger_mode_set
    from workbench.models import Environment

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark Marketo"})
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench Marketo welcome",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD_STEP],
    )
    flow_publish(flow=flow)
    created = marketo_trigger_create(flow=flow, flow_fields=[{"name": "firstName", "label": "First name"}])
    trigger_mode_set(trigger=created.trigger, mode="live")
    return environment, flow, created, _events_credential(environment)


def _events_credential(environment: Any) -> tuple[str, str]:
    from workbench.models import CredentialRole
    from workbench.services import credential_create

    issued = credential_create(environment=environment, role=CredentialRole.EVENTS, label="bench marketo")
    return issued.credential.client_id, issued.client_secret


def batch_body(tag: str, number: int, callback_url: str) -> bytes:
    leads = [
        {
            "objectContext": {"id": number * LEADS + index, "userId": f"mk-{tag}-{number}-{index}", "email": "a@b.c"},
            "flowStepContext": {"actionFlow": "1", "firstName": "Ada"},
            "programMemberContext": {"status": "Registered"},
        }
        for index in range(LEADS)
    ]
    body = {
        "token": f"tok-{tag}-{number}",
        "callbackUrl": callback_url,
        "apiCallBackKey": "bench-callback-key",
        "campaignId": 1234,
        "context": {"subscription": {"munchkinId": "123-ABC-456"}},
        "objectData": leads,
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        started = time.perf_counter()
        self.connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = self.connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


@contextmanager
def receiver() -> Iterator[dict[str, Any]]:
    """Marketo's callback endpoint: counts the leads whose results arrived (their distinct ids)."""
    state: dict[str, Any] = {"leads": set(), "lock": threading.Lock(), "done": threading.Event(), "want": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with state["lock"]:
                state["leads"].update(entry["leadData"]["id"] for entry in body["objectData"])
                if state["want"] and len(state["leads"]) >= state["want"]:
                    state["done"].set()
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/callback"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def time_to_201(base: str, created: Any, callback_url: str, tag: str) -> tuple[list[float], list[float]]:
    """The submit times of BATCHES batches, and of the durable floor with the same bodies."""
    path = f"/integrations/marketo/{created.trigger.token}/submitAsyncAction"
    key = {"x-api-key": created.api_key}
    bodies = [batch_body(tag, number, callback_url) for number in range(WARMUP_BATCHES + BATCHES)]
    client = Client(base)
    marketo_times: list[float] = []
    floor_times: list[float] = []
    try:
        for number, body in enumerate(bodies):
            status, seconds = client.post(path, body, key)
            if status != 201:
                raise BenchError(f"submitAsyncAction answered {status}, expected 201")
            floor_status, floor_seconds = client.post("/bench/bare-durable-hook", body, {})
            if floor_status != 202:
                raise BenchError(f"the durable floor answered {floor_status}")
            if number >= WARMUP_BATCHES:
                marketo_times.append(seconds)
                floor_times.append(floor_seconds)
    finally:
        client.close()
    return marketo_times, floor_times


def leads_to_callbacks(base: str, created: Any, state: dict[str, Any], tag: str) -> float:
    """Seconds from the first submit of LEAD_BATCHES batches to every lead's result at the receiver."""
    path = f"/integrations/marketo/{created.trigger.token}/submitAsyncAction"
    bodies = [batch_body(tag, number, state["url"]) for number in range(LEAD_BATCHES)]
    with state["lock"]:
        state["leads"].clear()
        state["done"].clear()
        state["want"] = LEADS * LEAD_BATCHES
    client = Client(base)
    started = time.perf_counter()
    try:
        for body in bodies:
            status, _ = client.post(path, body, {"x-api-key": created.api_key})
            if status != 201:
                raise BenchError(f"submitAsyncAction answered {status}")
    finally:
        client.close()
    if not state["done"].wait(CALLBACK_TIMEOUT_SECONDS):
        raise BenchError(f"only {len(state['leads'])} of {state['want']} leads were called back")
    return time.perf_counter() - started


def api_starts(base: str, flow: Any, token: str, tag: str) -> float:
    """Seconds to accept the same number of starts through POST action-flow/{id}/start."""
    path = f"/api/v1/{ENVIRONMENT_SLUG}/action-flow/{flow.pk}/start"
    requests = []
    for number in range(LEADS * LEAD_BATCHES // 100):
        starts = [
            {
                "targetUserIds": [f"api-{tag}-{number}-{index}"],
                "flowInvocationId": f"api-{tag}-{number}-{index}",
                "variables": {"firstName": "Ada"},
            }
            for index in range(100)
        ]
        requests.append(json.dumps(starts).encode())
    client = Client(base)
    started = time.perf_counter()
    try:
        for body in requests:
            status, _ = client.post(path, body, {"Authorization": f"Bearer {token}"})
            if status != 202:
                raise BenchError(f"the API start answered {status}")
    finally:
        client.close()
    return time.perf_counter() - started


def run() -> list[Result]:
    from workbench.models import Environment

    config = config_from_environment()
    environment, flow, created, credential = prepare()
    queue = new_queue("bench-marketo")
    web_env = service_environment(queue, settings_module="bench.bare_site", OUTBOUND_ALLOW_PRIVATE="1")
    worker_env = service_environment(queue, OUTBOUND_ALLOW_PRIVATE="1")
    tag = uuid.uuid4().hex[:8]
    print(
        f"  {config}; {LEAD_BATCHES} batches of {LEADS:,} leads to their callbacks with a worker "
        f"-c {WORKER_CONCURRENCY}, then {BATCHES} batches one after another (after {WARMUP_BATCHES} warm-up) "
        "timed to their 201",
        flush=True,
    )
    try:
        with durable_floor_table(), receiver() as state, gunicorn(config, web_env) as base:
            # With a fresh worker, so that no earlier work is queued ahead of the batches.
            with celery_worker(queue, WORKER_CONCURRENCY, worker_env):
                callback_seconds = leads_to_callbacks(base, created, state, f"{tag}b")
            drop_queue(queue)  # the runs the starts fanned out: not part of either figure
            api_seconds = api_starts(base, flow, request_token(base, *credential), f"{tag}c")
            # The request alone (no worker: nothing else on the machine competes with it).
            marketo_times, floor_times = time_to_201(base, created, state["url"], f"{tag}a")
    finally:
        drop_queue(queue)
        empty_scratch_environment(environment)
        Environment.objects.filter(pk=environment.pk).delete()

    p99, floor_p99 = percentile(marketo_times, 0.99), percentile(floor_times, 0.99)
    print(
        f"  submitAsyncAction 1,000 leads: p50 {statistics.median(marketo_times) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {max(marketo_times) * 1000:.0f} ms; durable floor (same body): "
        f"p50 {statistics.median(floor_times) * 1000:.0f} ms, p99 {floor_p99 * 1000:.0f} ms",
        flush=True,
    )
    leads = LEADS * LEAD_BATCHES
    print(
        f"  {leads:,} leads to their callbacks in {callback_seconds:.1f} s ({leads / callback_seconds:,.0f} leads/s); "
        f"the same starts through the API in {api_seconds:.1f} s ({leads / api_seconds:,.0f} starts/s)",
        flush=True,
    )
    return [
        Result(
            name=f"Marketo batch of 1,000 leads, 201 at p99 ({p99 * 1000:.0f} ms)",
            unit="batches/s",
            measured=1 / p99,
            reference=1 / GOAL_P99_SECONDS,
            reference_name="goal: p99 250 ms",
            goal=1.0,
        ),
        Result(
            name="Marketo batch of 1,000 leads, 201 at p99",
            unit="batches/s",
            measured=1 / p99,
            reference=1 / floor_p99,
            reference_name=f"durable floor, same body ({floor_p99 * 1000:.0f} ms)",
            goal=None,
        ),
        Result(
            name="Marketo leads to their callbacks (worker -c 2)",
            unit="leads/s",
            measured=leads / callback_seconds,
            reference=leads / api_seconds,
            reference_name="the same starts via POST start (100/request)",
            goal=None,
        ),
    ]
