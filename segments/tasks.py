"""Celery tasks of segments: thin, idempotent wrappers around the services.

`segments.evaluate` is sent after a segment's rules are saved; `segments.process_marks` after
a change of customer data commits its marks; `segments.sweep` (beat, every few seconds) sends
again what nobody picked up; `segments.time_recheck` (beat, every minute) marks the customers
whose timestamps crossed a time-relative rule's boundary. Running any of them twice does no
harm: the lease, the claimed marks and the ledger's conditional statements see to it.
"""

from __future__ import annotations

import time

from celery import shared_task

from workbench.celery import enqueue

from . import services

# How long one process_marks message keeps claiming batches before handing over to the next.
MARKS_BUDGET_SECONDS = 20.0


@shared_task(name="segments.evaluate")
def evaluate(segment_id: int) -> None:
    services.segment_evaluate(segment_id=segment_id)


@shared_task(name="segments.process_marks")
def process_marks() -> None:
    deadline = time.monotonic() + MARKS_BUDGET_SECONDS
    while True:
        result = services.marks_process()
        if not result.more:
            return
        if time.monotonic() > deadline:
            enqueue("segments.process_marks")
            return


@shared_task(name="segments.sweep")
def sweep() -> None:
    result = services.segments_sweep()
    for segment_id in result.segment_ids:
        enqueue("segments.evaluate", segment_id)
    if result.marks_waiting:
        enqueue("segments.process_marks")


@shared_task(name="segments.time_recheck")
def time_recheck() -> None:
    services.segments_time_recheck()
    services.segment_sizes_record()
