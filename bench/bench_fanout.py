"""Cards published per second by one Celery worker, against bulk-inserting the same cards.

The measured side: 10 live starts of 1,000 targets each (10,000 targets) are accepted through
`invocations_accept` in one outer transaction, so that their 10 fan-outs reach Redis together
when it commits. One `celery -A workbench worker` process, already running on a queue of this
run's own, fans them out (10,000 runs) and executes the runs in chunks (10,000 cards and their
analytics events). The clock runs from the first fan-out (the earliest `fanned_out_at`) until
polling the database sees the 10,000th card.

The reference: `Card.objects.bulk_create` of the same 10,000 card rows (same fields and values,
runs already there), in one transaction, after the measured cards were deleted.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.harness import BenchError, Result, Timing, empty_scratch_environment, timed
from bench.processes import broker_url, celery_worker, drop_queue, new_queue, service_environment

GOAL = 0.3
ENVIRONMENT_SLUG = "bench-fanout"
REQUESTS = 10
TARGETS_PER_REQUEST = 1_000
CARDS = REQUESTS * TARGETS_PER_REQUEST
# `-c 2`: one worker process, two prefork children (faster than -c 1 on this 2-core machine);
# BENCH_WORKER_CONCURRENCY=1 tries -c 1.
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY") or 2)
REPEATS = 2
REFERENCE_REPEATS = 3
POLL_SECONDS = 0.01
TIMEOUT_SECONDS = 60

CARD_STEP = {
    "type": "send_card",
    "card": {
        "title": "Hello {{firstName}}",
        "body": "Your order {{order}} has shipped.",
        "actions": [{"label": "Track", "url": "https://example.com/track/{{order}}"}],
    },
}
CARD_FIELDS = (
    "environment_id",
    "flow_id",
    "invocation_id",
    "run_id",
    "flow_invocation_id",
    "step_index",
    "user_id",
    "title",
    "body",
    "actions",
    "test",
    "version_number",
    "published_at",
)


def prepare_flow() -> tuple[Any, Any]:
    from flows.services import flow_create, flow_publish
    from workbench.models import Environment

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark fan-out"})
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench shipping",
        variables=[
            {"name": "firstName", "default": "there", "required": False},
            {"name": "order", "default": None, "required": True},
        ],
        steps=[CARD_STEP],
    )
    flow_publish(flow=flow)
    return environment, flow


def publish_to(queue: str) -> dict[str, Any]:
    """Make this process's Celery app publish to Redis (the bench process may run eager)."""
    from django.conf import settings

    from workbench.celery import app

    saved = {
        "settings": settings.CELERY_TASK_ALWAYS_EAGER,
        "eager": app.conf.task_always_eager,
        "broker": app.conf.broker_url,
        "queue": app.conf.task_default_queue,
    }
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.update(task_always_eager=False, broker_url=broker_url(), task_default_queue=queue)
    reset_pool(app)
    return saved


def reset_pool(app: Any) -> None:
    """Drop the app's producer pool, so that the next publish connects to the current broker."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None


def restore_publishing(saved: dict[str, Any]) -> None:
    from django.conf import settings

    from workbench.celery import app

    reset_pool(app)
    settings.CELERY_TASK_ALWAYS_EAGER = saved["settings"]
    app.conf.update(task_always_eager=saved["eager"], broker_url=saved["broker"], task_default_queue=saved["queue"])


def accept_starts(flow: Any, repeat: int) -> list[int]:
    """10 requests of 1,000 targets through the service; the fan-outs are sent at the commit."""
    from django.db import transaction

    from flows.models import Mode
    from flows.selectors import flow_for_start
    from flows.services import invocations_accept, start_requests_check
    from triggers.models import TriggerType

    ids: list[int] = []
    target = flow_for_start(flow=flow)
    with transaction.atomic():
        for request in range(REQUESTS):
            body = {
                "targetUserIds": [f"user-{request:02d}-{number:04d}" for number in range(TARGETS_PER_REQUEST)],
                "flowInvocationId": f"bench-{repeat}-{request}-{uuid.uuid4().hex[:8]}",
                "variables": {"firstName": "Ada", "order": f"A-{request}"},
            }
            starts = start_requests_check(body)
            result = invocations_accept(flow=target, mode=Mode.LIVE, starts=starts, source=TriggerType.API)
            ids.extend(outcome.invocation_id for outcome in result.outcomes)
    return ids


def wait_for_cards(invocation_ids: list[int]) -> float:
    """Poll until the 10,000th card is committed; seconds since the first fan-out."""
    from django.db.models import Min

    from flows.models import Card, Invocation

    deadline = time.monotonic() + TIMEOUT_SECONDS
    while Card.objects.filter(invocation_id__in=invocation_ids).count() < CARDS:
        if time.monotonic() > deadline:
            raise BenchError(f"the worker did not publish {CARDS:,} cards in {TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
    done = datetime.now(UTC)
    first = Invocation.objects.filter(pk__in=invocation_ids).aggregate(first=Min("fanned_out_at"))["first"]
    return (done - first).total_seconds()


def check_published(invocation_ids: list[int]) -> None:
    """Guard against a worker that got faster by doing less: runs done, cards rendered, events."""
    from flows.models import AnalyticsEvent, Card, FlowRun, Invocation, RunStatus

    runs = FlowRun.objects.filter(invocation_id__in=invocation_ids)
    assert runs.count() == CARDS, "runs missing"
    assert runs.filter(status=RunStatus.COMPLETED).count() == CARDS, "runs not completed"
    card = Card.objects.filter(invocation_id__in=invocation_ids, user_id="user-03-0042").get()
    assert card.title == "Hello Ada", card.title
    assert card.body == "Your order A-3 has shipped.", card.body
    flow_invocation_ids = Invocation.objects.filter(pk__in=invocation_ids).values_list("flow_invocation_id")
    events = AnalyticsEvent.objects.filter(flow_invocation_id__in=flow_invocation_ids, name="card-published").count()
    assert events == CARDS, f"{events} card-published events"


def bulk_insert(rows: list[tuple[Any, ...]]) -> None:
    from django.db import transaction

    from flows.models import Card

    with transaction.atomic():
        Card.objects.bulk_create([Card(**dict(zip(CARD_FIELDS, row, strict=True))) for row in rows])


def run() -> list[Result]:
    from flows.models import Card

    environment, flow = prepare_flow()
    queue = new_queue("bench-fanout")
    env = service_environment(queue)
    print(f"  celery -A workbench worker -c {CONCURRENCY} (prefork), {REQUESTS} x {TARGETS_PER_REQUEST:,}", flush=True)
    measured: list[float] = []
    reference: list[float] = []
    saved = publish_to(queue)
    try:
        with celery_worker(queue, CONCURRENCY, env):
            for repeat in range(REPEATS):
                invocation_ids = accept_starts(flow, repeat)
                measured.append(wait_for_cards(invocation_ids))
                check_published(invocation_ids)
        cards = Card.objects.filter(invocation_id__in=invocation_ids)
        rows = list(cards.order_by("pk").values_list(*CARD_FIELDS))
        for _ in range(REFERENCE_REPEATS):
            cards.delete()
            seconds, _ = timed(lambda: bulk_insert(rows))
            reference.append(seconds)
        assert cards.count() == CARDS
    finally:
        restore_publishing(saved)
        drop_queue(queue)
        empty_scratch_environment(environment)
    print("  worker: " + ", ".join(f"{CARDS / seconds:,.0f} cards/s" for seconds in measured), flush=True)
    print("  bulk_create: " + ", ".join(f"{CARDS / seconds:,.0f} cards/s" for seconds in reference), flush=True)
    return [
        Result(
            name=f"fan-out 10 x 1,000 (worker -c {CONCURRENCY})",
            unit="cards/s",
            measured=Timing(measured).rate(CARDS),
            reference=Timing(reference).rate(CARDS),
            reference_name="Card bulk_create",
            goal=GOAL,
        )
    ]
