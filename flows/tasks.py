"""Celery tasks of the start pipeline: thin, idempotent wrappers around the services."""

from __future__ import annotations

from collections import defaultdict

from celery import shared_task
from django.conf import settings

from workbench.celery import MAX_BATCH, enqueue

from . import services


@shared_task(name="flows.fan_out_invocations")
def fan_out_invocations(invocation_ids: list[int]) -> None:
    for invocation_id in invocation_ids:
        for chunk in services.invocation_fan_out(invocation_id=invocation_id):
            enqueue(execute_runs, chunk)


@shared_task(name="flows.fan_out_invocation")
def fan_out_invocation(invocation_id: int) -> None:
    """One invocation's fan-out: messages sent before fan-outs were batched."""
    fan_out_invocations([invocation_id])


@shared_task(name="flows.execute_runs")
def execute_runs(run_ids: list[int]) -> None:
    waits = services.runs_execute(run_ids=run_ids)
    _schedule_resumes(waits)


@shared_task(name="flows.sweep")
def sweep() -> None:
    result = services.flows_sweep()
    for start in range(0, len(result.invocations), MAX_BATCH):
        enqueue(fan_out_invocations, result.invocations[start : start + MAX_BATCH])
    for chunk in result.run_chunks:
        enqueue(execute_runs, chunk)


def _schedule_resumes(waits: list[tuple[int, float]]) -> None:
    """Resume short waits with a countdown; longer ones are left to the sweep.

    A countdown never exceeds half the broker's visibility timeout (a longer one would be
    redelivered early), and in-process mode has no countdowns at all: there the sweep's
    ticker resumes every wait.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    by_delay: dict[int, list[int]] = defaultdict(list)
    for run_id, delay in waits:
        if delay <= settings.MAX_TASK_COUNTDOWN_SECONDS:
            by_delay[int(delay) + 1].append(run_id)
    for delay, run_ids in by_delay.items():
        for start in range(0, len(run_ids), services.RUN_CHUNK_SIZE):
            enqueue(execute_runs, run_ids[start : start + services.RUN_CHUNK_SIZE], countdown=delay)
