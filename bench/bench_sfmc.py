"""Salesforce Marketing Cloud execute calls per second through gunicorn, against live webhooks
measured in the same run and the same gunicorn processes (SPEC section 7, issue 14).

The measured side is `POST /integrations/sfmc/{token}/execute` to a live Marketing Cloud trigger
of a published one-card flow, as Journey Builder calls it: a compact JWT signed HS256 with the
Installed Package's secret (`Content-Type: application/jwt`), whose claims carry a distinct
contact (`keyValue`, the `userId` and `firstName` in-arguments) and the activity's ids. Each
call is verified, mapped with the default mapping, keyed from the activity, journey run and
contact, and accepted durably on PostgreSQL (the invocation and the request log entry) before
its `200 {}`; the last call becomes the trigger's sample.

The reference is bench/bench_webhooks.py's measured side: live, Stripe-signed, mapped webhooks
(`POST /hooks/{token}`), made and checked by that module's own helpers. Both are sent by wrk
(one thread, keep-alive, the same connections) from files of pre-built requests, in
alternating windows; each side counts with its best window. No Celery worker runs: fan-outs
are not part of either figure, and their messages are dropped with the run's queue.

Goal: Marketing Cloud executes at least 0.8 of the webhooks' rate.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from pathlib import Path
from typing import Any

import jwt

from bench import bench_webhooks
from bench.bench_starts import CARD_STEP, config_from_environment
from bench.harness import BenchError, Result, empty_scratch_environment
from bench.processes import FILE_REQUESTS_SCRIPT, LoadResult, drop_queue, gunicorn, new_queue, service_environment, wrk

GOAL = 0.8
ENVIRONMENT_SLUG = "bench-sfmc"
SECRET = "bench-sfmc-jwt-signing-secret-" + "7" * 40
CONNECTIONS = bench_webhooks.CONNECTIONS
WARMUP_SECONDS = bench_webhooks.WARMUP_SECONDS
SECONDS = bench_webhooks.SECONDS
REPEATS = bench_webhooks.REPEATS
WARMUP_REQUESTS = bench_webhooks.WARMUP_REQUESTS
MARGIN_REQUESTS = bench_webhooks.MARGIN_REQUESTS
ACTIVITY_ID = "8c3f9f0e-5e44-4c7e-9d0b-1f7f0b6f2a11"


def prepare_trigger() -> tuple[Any, Any]:
    """A scratch environment with a published one-card flow and its live Marketing Cloud trigger."""
    from flows.services import flow_create, flow_publish
    from triggers.services import trigger_mode_set
    from triggers.sfmc import sfmc_trigger_create
    from workbench.models import Environment

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark SFMC"})
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench journey welcome",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD_STEP],
    )
    flow_publish(flow=flow)
    trigger = sfmc_trigger_create(
        flow=flow,
        jwt_secret=SECRET,
        in_arguments=[{"userId": "{{Contact.Key}}"}, {"firstName": "{{Contact.Attribute.Profile.FirstName}}"}],
    )
    return environment, trigger_mode_set(trigger=trigger, mode="live")


def execute_line(run: str, number: int) -> str:
    """`application/jwt\\t<JWT>`: one contact's execute call, signed as Journey Builder signs it."""
    contact = f"contact-{run}-{number}"
    claims = {
        "inArguments": [{"userId": contact}, {"firstName": "Ada"}],
        "outArguments": [],
        "activityObjectID": "5b7c3c1e-aaaa-4bbb-8ccc-111111111111",
        "journeyId": "0d5f0f3e-bbbb-4ccc-8ddd-222222222222",
        "activityId": ACTIVITY_ID,
        "definitionInstanceId": f"run-{run}",
        "activityInstanceId": "9e8d7c6b-cccc-4ddd-8eee-333333333333",
        "keyValue": contact,
        "mode": 0,
    }
    return f"application/jwt\t{jwt.encode(claims, SECRET, algorithm='HS256')}\n"


def write_requests(run: str, count: int) -> Path:
    with tempfile.NamedTemporaryFile("w", prefix="bench-sfmc-", suffix=".txt", delete=False) as file:
        file.writelines(execute_line(run, number) for number in range(count))
    return Path(file.name)


def send(url: str, seconds: float, requests: Path) -> LoadResult:
    return wrk(
        url,
        seconds=seconds,
        connections=CONNECTIONS,
        headers={},
        script_text=FILE_REQUESTS_SCRIPT,
        script_args=["Content-Type", str(requests)],
    )


def accepted_counts(trigger: Any) -> tuple[int, int]:
    from flows.models import Invocation
    from triggers.models import RequestOutcome, WebhookRequest

    invocations = Invocation.objects.filter(flow_id=trigger.flow_id).count()
    logged = WebhookRequest.objects.filter(trigger=trigger, outcome=RequestOutcome.ACCEPTED, status_code=200).count()
    return invocations, logged


def check_accepted(trigger: Any, load: LoadResult, before: tuple[int, int]) -> None:
    """Every answer was a 200 and is durable: one new invocation and accepted log entry per call."""
    others = {status: count for status, count in load.statuses.items() if status != 200}
    if load.errors or others or not load.statuses:
        hint = " (401: the JWTs are wrong)" if 401 in others else ""
        raise BenchError(f"sfmc: {load.requests} answers, {load.errors} errors, statuses {load.statuses}{hint}")
    after = accepted_counts(trigger)
    for what, count in (("invocations", after[0] - before[0]), ("accepted log entries", after[1] - before[1])):
        # wrk stops the clock with requests in flight; those may still commit. A pre-built
        # request sent a second time (the file ran out) is a duplicate and writes no invocation.
        if not load.requests <= count <= load.requests + CONNECTIONS:
            raise BenchError(f"{load.requests} executes answered 200 but {count} {what} were written")


def run() -> list[Result]:
    from workbench.models import Environment

    config = config_from_environment()
    hooks_environment, _flow, hook_trigger = bench_webhooks.prepare_trigger()
    environment, trigger = prepare_trigger()
    queue = new_queue("bench-sfmc")
    env = service_environment(queue, settings_module="bench.bare_site")
    print(
        f"  {config}, wrk -t1 -c{CONNECTIONS}, {SECONDS:g} s x {REPEATS}, no Celery worker; live SFMC executes "
        "(HS256 JWT, default mapping) against live webhooks (Stripe-style signature, structured mapping)",
        flush=True,
    )
    executes: list[LoadResult] = []
    webhooks: list[LoadResult] = []
    files: list[Path] = []
    tag = uuid.uuid4().hex[:8]
    try:
        with gunicorn(config, env) as base:
            execute_url = f"{base}/integrations/sfmc/{trigger.token}/execute"
            hook_url = f"{base}/hooks/{hook_trigger.token}"
            files.append(bench_webhooks.write_requests(f"{tag}w", WARMUP_REQUESTS))
            before = bench_webhooks.accepted_counts(hook_trigger)
            warm_hooks = bench_webhooks.send(hook_url, WARMUP_SECONDS, files[-1])
            bench_webhooks.check_accepted(hook_trigger, warm_hooks, before)
            files.append(write_requests(f"{tag}w", WARMUP_REQUESTS))
            before = accepted_counts(trigger)
            warm = send(execute_url, WARMUP_SECONDS, files[-1])
            check_accepted(trigger, warm, before)
            rate = max(warm.rate, warm_hooks.rate)
            per_window = math.ceil(2 * rate * SECONDS) + MARGIN_REQUESTS
            for repeat in range(REPEATS):
                files.append(bench_webhooks.write_requests(f"{tag}{repeat}", per_window))
                before = bench_webhooks.accepted_counts(hook_trigger)
                webhooks.append(bench_webhooks.send(hook_url, SECONDS, files[-1]))
                bench_webhooks.check_accepted(hook_trigger, webhooks[-1], before)
                files.append(write_requests(f"{tag}{repeat}", per_window))
                before = accepted_counts(trigger)
                executes.append(send(execute_url, SECONDS, files[-1]))
                check_accepted(trigger, executes[-1], before)
    finally:
        for file in files:
            file.unlink(missing_ok=True)
        drop_queue(queue)
        for scratch in (environment, hooks_environment):
            empty_scratch_environment(scratch)
            Environment.objects.filter(pk=scratch.pk).delete()

    for label, windows in (("webhooks", webhooks), ("sfmc executes", executes)):
        rates = ", ".join(f"{load.rate:,.0f}/s (wrk {load.client_cpu_share:.0%} of a core)" for load in windows)
        print(f"  {label}: {rates}", flush=True)
    return [
        Result(
            name=f"live SFMC executes, JWT + mapped ({config})",
            unit="requests/s",
            measured=max(load.rate for load in executes),
            reference=max(load.rate for load in webhooks),
            reference_name="live webhooks, signed + mapped",
            goal=GOAL,
        )
    ]
