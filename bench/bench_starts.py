"""Live single-target starts per second through gunicorn, against a bare DRF endpoint.

The measured side is `POST /api/v1/{env}/action-flow/{flowId}/start` with an events token:
a published flow of one send_card step, one distinct userId per request, no flowInvocationId,
so every request is accepted, its invocation made durable in one statement, and its fan-out
published to Redis by the process's batching thread. No Celery worker runs: the fan-out (the
acceptance event, the customer's profile, the runs) is not part of this figure, and the
messages are dropped with the run's own queue afterwards.

The reference is `POST /bench/bare` (bench/bare_urls.py) served by the same gunicorn
processes: DRF parses the same JSON and answers 202 with the same envelope, with no
authentication and no database. A second line gives the scale of the goal: the "durable
floor", `POST /bench/bare-durable`, the bare endpoint plus one prepared INSERT of the body
into a table with nothing but a primary key, committed before the answer; no endpoint that
keeps SPEC section 2's promise (durable before 2xx) can do less. A third, the "round trips
floor" (`POST /bench/bare-round-trips`), first makes as many lookups as a start must (its
credential with its flow: one prepared primary-key read), then writes: how much of the gap
is round trips, and how much the application's own work. A fourth, the "rows floor"
(`POST /bench/bare-rows`), makes the same lookup and then writes the row a start keeps (an
invocation, into a copy of its table with all its indexes) instead of a one-column row: how
much of the rest is the row that SPEC's reads need. wrk (one thread, keep-alive)
drives the five in turn; its own CPU time is measured to show it is not the bottleneck, and
the CPU time of the web and database processes per request (from /proc) is printed for each
side: a second form of the ratio that hardly moves with the machine's noise, and where the
difference goes.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import urllib.request
import uuid
from typing import Any, cast

from bench.harness import BenchError, Result, durable_floor_table, empty_scratch_environment
from bench.processes import GunicornConfig, LoadResult, drop_queue, gunicorn, new_queue, service_environment, wrk

# Issue 10: live starts at least 0.6 of the durable floor, measured in the same run.
GOAL = 0.6
ENVIRONMENT_SLUG = "bench-starts"
# gthread, 2 workers x 4 threads served both sides best of the configurations tried on this
# 2-core machine (see the report in the commit); BENCH_GUNICORN="gthread:3:2" tries another.
CONFIG = GunicornConfig(worker_class="gthread", workers=2, threads=4)
CONNECTIONS = 8
WARMUP_SECONDS = 2.0
SECONDS = 4.0
REPEATS = 3

CARD_STEP = {
    "type": "send_card",
    "card": {
        "title": "Hello {{firstName}}",
        "body": "Welcome aboard.",
        "actions": [{"label": "Open", "url": "https://example.com/welcome"}],
    },
}


def config_from_environment() -> GunicornConfig:
    raw = os.environ.get("BENCH_GUNICORN")
    if not raw:
        return CONFIG
    worker_class, workers, threads = [*raw.split(":"), "1", "1"][:3]
    return GunicornConfig(worker_class=worker_class, workers=int(workers), threads=int(threads))


def prepare_flow() -> tuple[Any, Any, str, str]:
    """A scratch environment with a published one-card flow and an events credential."""
    from flows.services import flow_create, flow_publish
    from workbench.models import CredentialRole, Environment
    from workbench.services import credential_create

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark starts"})
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench welcome",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD_STEP],
    )
    flow_publish(flow=flow)
    issued = credential_create(environment=environment, role=CredentialRole.EVENTS, label="bench")
    return environment, flow, issued.credential.client_id, issued.client_secret


def request_token(base: str, client_id: str, client_secret: str) -> str:
    """POST /oauth/token with the client credentials grant, as an integration does."""
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{base}/oauth/token",
        data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        return str(json.load(answer)["access_token"])


def check_accepted(flow: Any, load: LoadResult, before: int) -> None:
    """Every answered start was a 2xx and is durable: one new invocation per request."""
    from flows.models import Invocation

    if load.errors:
        raise BenchError(f"{load.errors} of {load.requests} starts were not answered 2xx")
    count = Invocation.objects.filter(flow=flow).count() - before
    # wrk stops the clock with requests in flight; those may still commit.
    if not load.requests <= count <= load.requests + CONNECTIONS:
        raise BenchError(f"{load.requests} starts answered but {count} invocations were written")


def run() -> list[Result]:
    from flows.models import Invocation

    config = config_from_environment()
    environment, flow, client_id, client_secret = prepare_flow()
    queue = new_queue("bench-starts")
    env = service_environment(queue, settings_module="bench.bare_site")
    print(f"  {config}, wrk -t1 -c{CONNECTIONS}, {SECONDS:g} s x {REPEATS}, no Celery worker", flush=True)
    starts: list[LoadResult] = []
    bare: list[LoadResult] = []
    floor: list[LoadResult] = []
    round_trips: list[LoadResult] = []
    rows: list[LoadResult] = []
    try:
        with durable_floor_table(), gunicorn(config, env) as base:
            token = request_token(base, client_id, client_secret)
            start_url = f"{base}/api/v1/{environment.slug}/action-flow/{flow.pk}/start"
            bare_url, floor_url = f"{base}/bench/bare", f"{base}/bench/bare-durable"
            round_trips_url, rows_url = f"{base}/bench/bare-round-trips", f"{base}/bench/bare-rows"
            headers = {"Authorization": f"Bearer {token}"}
            tag = uuid.uuid4().hex[:8]
            for url in (bare_url, floor_url, round_trips_url, rows_url, start_url):
                wrk(url, seconds=WARMUP_SECONDS, connections=CONNECTIONS, headers=headers, tag=f"warm-{tag}")
            for repeat in range(REPEATS):
                references = ((bare_url, bare), (floor_url, floor), (round_trips_url, round_trips), (rows_url, rows))
                for url, loads in references:
                    loads.append(wrk(url, seconds=SECONDS, connections=CONNECTIONS, headers=headers, tag=tag))
                    if loads[-1].errors:
                        raise BenchError(f"{url} answered {loads[-1].errors} errors")
                before = Invocation.objects.filter(flow=flow).count()
                starts.append(
                    wrk(start_url, seconds=SECONDS, connections=CONNECTIONS, headers=headers, tag=f"{tag}-{repeat}")
                )
                check_accepted(flow, starts[-1], before)
    finally:
        drop_queue(queue)
        empty_scratch_environment(environment)

    return live_results(
        name=f"live starts, 1 target ({config})",
        reference_name="bare DRF 202",
        loads={
            "bare": bare,
            "durable floor": floor,
            "round trips floor": round_trips,
            "rows floor": rows,
            "starts": starts,
        },
        goal=GOAL,
    )


# The table's line for each floor of the live benchmarks.
FLOOR_LINES = {
    "durable floor": "durable floor: the same + 1-row INSERT, committed",
    "round trips floor": "round trips floor: + the endpoint's lookups (prepared pk reads)",
    "rows floor": "rows floor: + the product's rows, with their tables' indexes",
}


def live_results(*, name: str, reference_name: str, loads: dict[str, list[LoadResult]], goal: float) -> list[Result]:
    """Print every window of a live benchmark; return its line and one line per scale.

    `loads` holds the windows of the reference first, the measured side last, and the floors
    between (the durable floor, then the round trips floor); each side counts with its best
    window (noise only ever takes requests away). The goal is a share of the durable floor
    (issue 10 restated it so: no endpoint that answers only once its work is durable can beat
    that floor); the bare endpoint and the round trips floor are printed as scales.
    """
    for label, windows in loads.items():
        rates = ", ".join(f"{load.rate:,.0f}/s (wrk {load.client_cpu_share:.0%} of a core)" for load in windows)
        print(f"  {label}: {rates}", flush=True)
        if all(load.server_cpu is not None for load in windows):
            costs = ", ".join(
                f"web {load.server_cpu.web / load.requests * 1e6:,.0f} + PostgreSQL "  # type: ignore[union-attr]
                f"{load.server_cpu.database / load.requests * 1e6:,.0f} µs"  # type: ignore[union-attr]
                for load in windows
            )
            print(f"    CPU per request: {costs}", flush=True)
    best = {label: max(load.rate for load in windows) for label, windows in loads.items()}
    labels = list(best)
    bare_label, measured_label, floors = labels[0], labels[-1], labels[1:-1]
    bare, measured, durable = best[bare_label], best[measured_label], best["durable floor"]
    summary = f"  {measured_label}/s {measured:,.0f}, {bare_label}/s {bare:,.0f}, ratio {measured / bare:.3f}"
    for floor in floors:
        share, ours = best[floor] / bare, measured / best[floor]
        summary += f"; {floor} {share:.3f} of {bare_label}, {measured_label} {ours:.3f} of it"
    print(summary, flush=True)
    return [
        Result(
            name=name,
            unit="requests/s",
            measured=measured,
            reference=durable,
            reference_name=f"durable floor: {reference_name} + 1-row INSERT",
            goal=goal,
        ),
        *cpu_results(durable=loads["durable floor"], measured=loads[measured_label]),
        Result(
            name="  the same against the bare endpoint",
            unit="requests/s",
            measured=measured,
            reference=bare,
            reference_name=reference_name,
            goal=None,
        ),
        *(
            Result(
                name=f"  {FLOOR_LINES[floor]}",
                unit="requests/s",
                measured=best[floor],
                reference=bare,
                reference_name=reference_name,
                goal=None,
            )
            for floor in floors
        ),
    ]


def cpu_results(*, durable: list[LoadResult], measured: list[LoadResult]) -> list[Result]:
    """The same ratio in CPU: requests per CPU-second of the web and database processes, each
    side by its cheapest window. The rate is what the goal names, but on a shared machine it
    moves with whatever else runs; what a request costs hardly does, and it shows where the
    difference goes (printed per window above)."""
    costs = [[load.cpu_per_request for load in windows] for windows in (durable, measured)]
    if any(cost is None for side in costs for cost in side):
        return []  # no /proc to read
    floor_cost, our_cost = (min(cast("list[float]", side)) for side in costs)
    return [
        Result(
            name="  the same in requests per CPU-second (web + PostgreSQL)",
            unit="requests/CPU-s",
            measured=1e6 / our_cost,
            reference=1e6 / floor_cost,
            reference_name="durable floor",
            goal=None,
        )
    ]
