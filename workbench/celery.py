"""The Celery app, and the one way work is delivered to it.

Delivery (CONVENTIONS.md, "Delivering work"):

1. Whoever commits work sends its task after the commit, by name:
   `transaction.on_commit(lambda: enqueue_items("flows.fan_out_invocations", ids))`. Naming
   the task keeps the import direction one way: tasks import services, services import
   nothing of tasks.
2. The periodic sweep (`flows.sweep`, every SWEEP_INTERVAL_SECONDS on beat's schedule) is the
   safety net: it sends again what was committed but never picked up (the broker was down at
   the commit, a message died with a worker or with a process before it was published, a
   message named a task that no longer exists), and it is the only thing that resumes `wait`
   steps. Nothing is sent with a countdown or an eta, so no message can outlive the broker's
   visibility timeout.

How a request's items are published: by a thread of the process, many requests' items to a
message (`enqueue_items`), not by the request itself. Measured on the 2-core development
machine: publishing one message to Redis costs 440-500 µs of CPU (a bare LPUSH is 37 µs: the
rest is Celery building the message and kombu making a redis-py client per publish). A web
process spent 2.4-2.6 ms of CPU per API start with the publishing thread and 2.8-3.3 ms when
the request published its own message; live through gunicorn (`python -m bench`, four
alternating rounds), starts fell about 20% of their rate and webhooks about 13% without the
thread. Issue 10 allows at most 10%, so the thread stays, as the way `enqueue_items`
publishes rather than a second path: the commit hands the items over, the sweep covers
whatever a killed process still held. Work that is not per request (a worker's chunks of
runs, the sweep's resends) is sent at once with `enqueue`. The alternative, workers claiming
due rows on beat's tick (healthchecks' loop), would spare the publish too, but no start would
be seen before the next tick and the tests and `make run` would have to drive the tick.

The app itself:

- JSON only: a task message never carries pickled Python.
- acks_late + reject_on_worker_lost: a task is acknowledged after it ran, so a worker
  killed mid-task leaves the message to be redelivered (tasks are idempotent for this).
- prefetch 1: a killed worker holds back at most one message per process.
- Soft and hard time limits: a stuck task cannot hold a worker forever.
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
    if not app.conf.task_always_eager:
        return _publish(task_name, args)
    try:
        _registered(task_name).apply_async(args=args)
    except Exception:
        logger.warning("Could not enqueue %s%r; the sweep will retry", task_name, args, exc_info=True)
        return False
    return True


def _publish(task_name: str, args: tuple[Any, ...]) -> bool:
    """Send the named task to the broker; a broker that is down is logged, not raised."""
    try:
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


# Items per message of `enqueue_items`: a task given more runs for longer, and a message lost
# with a worker leaves more for the sweep.
MAX_BATCH = 100
# How long the publishing thread lets items gather after the first: under load one message
# per 50 ms instead of one per request, for at most 50 ms more before a worker sees the work.
BATCH_LINGER_SECONDS = 0.05


def enqueue_items(task_name: str, items: Iterable[Any]) -> None:
    """Have the named task (which takes a list) run for these items, published from this
    process's publishing thread with other requests' items. Without a broker (eager mode:
    `make run`, the tests) the task runs now, in this thread, as `enqueue` runs it."""
    items = list(items)
    if not items:
        return
    if app.conf.task_always_eager:
        enqueue(task_name, items)
    else:
        _publisher.put(task_name, items)


class _Publisher:
    """The publishing thread of `enqueue_items`: wakes on the first item, lets others gather
    for BATCH_LINGER_SECONDS (one item when the process is quiet, dozens under load) and sends
    one message per task. What it holds at exit is sent then; what a killed process held is
    committed work the sweep sends."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0  # the process the thread runs in: a forked child starts its own

    def put(self, task_name: str, items: list[Any]) -> None:
        for item in items:
            self._items.put((task_name, item))
        if self._pid != os.getpid():
            self._start()

    def flush(self) -> None:
        """Send everything queued now, in this thread."""
        while pending := self._take(MAX_BATCH):
            self._send(pending)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="enqueue-items", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            first = self._items.get()
            time.sleep(BATCH_LINGER_SECONDS)
            self._send([first, *self._take(MAX_BATCH - 1)])

    def _take(self, limit: int) -> list[tuple[str, Any]]:
        taken: list[tuple[str, Any]] = []
        while len(taken) < limit:
            try:
                taken.append(self._items.get_nowait())
            except queue.Empty:
                break
        return taken

    @staticmethod
    def _send(pending: list[tuple[str, Any]]) -> None:
        by_task: dict[str, list[Any]] = defaultdict(list)
        for task_name, item in pending:
            by_task[task_name].append(item)
        for task_name, items in by_task.items():
            # Only ever published: items come here only when there is a broker, and running a
            # task on this thread would leave a database connection open on it.
            _publish(task_name, (items,))


_publisher = _Publisher()
