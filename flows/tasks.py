"""Celery tasks of flows: thin, idempotent wrappers around the services.

How work reaches them is in workbench/celery.py: the start pipeline sends
`flows.fan_out_invocations` after its commit, a fan-out sends `flows.execute_runs` per chunk of
runs, and `flows.sweep` (beat) resends what nobody picked up and resumes the `wait` steps that
are due. A wait therefore resumes between its time and one sweep interval later
(SWEEP_INTERVAL_SECONDS), plus the queue's latency.

`flows.fan_out_invocation` (one invocation per message) no longer exists. A message of that
name still in a queue after an upgrade is rejected by the worker with an error in its log
("unregistered task") and the worker goes on; its invocation is still accepted in the
database, so the sweep fans it out as it does any start left untaken for SWEEP_STALE_SECONDS.
"""

from __future__ import annotations

from celery import shared_task

from workbench.celery import enqueue

from . import services

# Invocations per fan-out message the sweep sends: as many as one start request can hold.
FAN_OUT_BATCH = 100


@shared_task(name="flows.fan_out_invocations")
def fan_out_invocations(invocation_ids: list[int]) -> None:
    for chunk in services.invocations_fan_out(invocation_ids=invocation_ids):
        enqueue("flows.execute_runs", chunk)


@shared_task(name="flows.execute_runs")
def execute_runs(run_ids: list[int]) -> None:
    # The waits it leaves are resumed by the sweep, not by a countdown.
    services.runs_execute(run_ids=run_ids)


@shared_task(name="flows.sweep")
def sweep() -> None:
    result = services.flows_sweep()
    for start in range(0, len(result.invocations), FAN_OUT_BATCH):
        enqueue("flows.fan_out_invocations", result.invocations[start : start + FAN_OUT_BATCH])
    for chunk in result.run_chunks:
        enqueue("flows.execute_runs", chunk)
