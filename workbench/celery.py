"""The Celery app, set up so that no accepted work is lost.

- JSON only: a task message never carries pickled Python.
- acks_late + reject_on_worker_lost: a task is acknowledged after it ran, so a worker
  killed mid-task leaves the message to be redelivered (tasks are idempotent for this).
- prefetch 1: a killed worker holds back at most one message per process.
- Soft and hard time limits: a stuck task cannot hold a worker forever.
- Countdowns are capped below the broker's visibility timeout (see `safe_countdown`);
  longer delays are kept in the database and picked up by a periodic sweep.
- Hot paths hand their work to `enqueue_batched`: a thread of the process publishes it,
  many items to a message, so a request does not wait on the broker.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from celery import Celery
from django.conf import settings

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


def safe_countdown(seconds: float) -> float:
    """The longest countdown that cannot outlive the broker's visibility timeout."""
    return max(0.0, min(seconds, settings.MAX_TASK_COUNTDOWN_SECONDS))


def enqueue(task: Any, *args: Any, countdown: float = 0) -> bool:
    """Send a task, never failing the caller: work is already durable in the database.

    A broker that is down, or a task that fails in eager mode, is logged; the periodic sweep
    finds the committed work nobody picked up and sends it again.
    """
    try:
        task.apply_async(args=args, countdown=safe_countdown(countdown) or None)
    except Exception:
        logger.warning("Could not enqueue %s%r; the sweep will retry", getattr(task, "name", task), args, exc_info=True)
        return False
    return True


# Items per message of `enqueue_batched`: a task given more runs for longer, and a message
# lost with a worker leaves more for the sweep.
MAX_BATCH = 100
# How long the publishing thread lets items gather after the first: a publish costs about a
# millisecond of the process's CPU, so under load one message per 50 ms instead of one per
# item, for at most 50 ms more before a worker sees the work.
BATCH_LINGER_SECONDS = 0.05


class _Batcher:
    """Publishes `enqueue_batched` work from a daemon thread, one message per task and batch.

    A request puts its items on a queue and goes on; the thread wakes on the first item,
    lets others gather for BATCH_LINGER_SECONDS (one item when the process is quiet, dozens
    under load) and sends `task(items)`. What the queue holds when the process stops is sent
    at exit; what a killed process held is committed work the periodic sweep resends.
    """

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0  # the process the thread runs in: a forked child starts its own

    def put(self, task: Any, items: Iterable[Any]) -> None:
        for item in items:
            self._items.put((task, item))
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="enqueue-batched", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            first = self._items.get()
            time.sleep(BATCH_LINGER_SECONDS)
            self._send([first, *self._take(MAX_BATCH - 1)])

    def _take(self, limit: int) -> list[tuple[Any, Any]]:
        taken: list[tuple[Any, Any]] = []
        while len(taken) < limit:
            try:
                taken.append(self._items.get_nowait())
            except queue.Empty:
                break
        return taken

    def flush(self) -> None:
        """Send everything queued now, in this thread."""
        while pending := self._take(MAX_BATCH):
            self._send(pending)

    @staticmethod
    def _send(pending: list[tuple[Any, Any]]) -> None:
        by_task: dict[Any, list[Any]] = defaultdict(list)
        for task, item in pending:
            by_task[task].append(item)
        for task, items in by_task.items():
            enqueue(task, items)


_batcher = _Batcher()


def enqueue_batched(task: Any, items: Iterable[Any]) -> None:
    """Have `task(list_of_items)` run for these items, batched with other callers' items.

    For work already durable in the database (a periodic sweep finds what was never sent):
    the caller does not wait on the broker. In eager mode (no broker, tests) the task runs
    now, in this thread, as `enqueue` would run it.
    """
    items = list(items)
    if not items:
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        enqueue(task, items)
    else:
        _batcher.put(task, items)
