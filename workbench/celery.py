"""The Celery app, and the one way work is delivered to it.

Delivery (CONVENTIONS.md, "Delivering work"):

1. Whoever commits work sends its task after the commit, by name:
   `transaction.on_commit(lambda: enqueue("flows.fan_out_invocations", ids))`. Naming the task
   keeps the import direction one way: tasks import services, services import nothing of tasks.
2. The periodic sweep (`flows.sweep`, every SWEEP_INTERVAL_SECONDS on beat's schedule) is the
   safety net: it sends again what was committed but never picked up (the broker was down at
   the commit, a message died with a worker, a message named a task that no longer exists),
   and it is the only thing that resumes `wait` steps. Nothing is sent with a countdown or an
   eta, so no message can outlive the broker's visibility timeout.

Why this and not workers claiming due rows on beat's tick (`SELECT … FOR UPDATE SKIP
LOCKED`, healthchecks' loop), measured on the 2-core development machine:

- Publishing one fan-out message to Redis costs the request 440-500 µs of CPU
  (`fan_out_invocations.delay([id])` in a timeit loop; a bare LPUSH is 37 µs: the rest is
  Celery building the message and kombu making a redis-py client per publish). A web
  process spent 2.4-2.6 ms of CPU per API start when a thread batched the messages and
  2.8-3.3 ms when the request publishes its own (test client, PostgreSQL, Redis).
- Live, through gunicorn (`python -m bench`, four alternating rounds on a machine shared
  with other test runs, so noisy): starts fell from a median 0.31 of the bare endpoint to
  0.245, about 20%; webhooks from 0.196 to 0.17, about 13%.
- Claiming rows would spare the request that cost, but then no start is seen before the
  next tick, nothing runs in `make run` or the tests unless the tick is driven, and chunks
  of runs still travel to several workers as messages. The batching thread spared it too,
  as a second channel with its own failure modes (a flush at exit, a lost batch on a kill).
  One mechanism, CONVENTIONS.md's, is worth that CPU here; if it is not, the place to win it
  back is the publish itself, not a second path.

The app itself:

- JSON only: a task message never carries pickled Python.
- acks_late + reject_on_worker_lost: a task is acknowledged after it ran, so a worker
  killed mid-task leaves the message to be redelivered (tasks are idempotent for this).
- prefetch 1: a killed worker holds back at most one message per process.
- Soft and hard time limits: a stuck task cannot hold a worker forever.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")

logger = logging.getLogger(__name__)

app = Celery("workbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    accept_content=["json"],
    task_serializer="json",
    result_serializer="json",
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # Publishing gives up quickly when the broker is down; the sweep resends later.
    broker_connection_timeout=3,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    timezone="UTC",
    enable_utc=True,
)
app.autodiscover_tasks()


def enqueue(task_name: str, *args: Any) -> bool:
    """Send the named task, never failing the caller: the work is already in the database.

    With a broker the message is published by name, without importing the task's module.
    Without one (`make run`, the test suite: eager mode) the task runs here and now. A broker
    that is down, or a task that fails in eager mode, is logged; the sweep sends the work again.
    """
    try:
        if app.conf.task_always_eager:
            _registered(task_name).apply_async(args=args)
        else:
            app.send_task(task_name, args=args)
    except Exception:
        logger.warning("Could not enqueue %s%r; the sweep will retry", task_name, args, exc_info=True)
        return False
    return True


def _registered(task_name: str) -> Task:
    """The task of that name, importing the apps' tasks modules first as a worker does."""
    if task_name not in app.tasks:
        app.loader.import_default_modules()
    return app.tasks[task_name]
