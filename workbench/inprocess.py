"""Beat's stand-in for the embedded default (`make run`: no broker, no `celery beat`).

Without a broker every task runs in-process (Celery's eager mode): `enqueue` runs it at once,
in the thread that committed the work. What is missing is beat itself, which sends the tasks
of CELERY_BEAT_SCHEDULE on their intervals — above all the sweep, the only thing that resumes
`wait` steps. So a daemon thread of the server process sends the same schedule's tasks,
through the same `enqueue` that beat's messages end in, on the same intervals: the delivery
is production's, only the scheduler is smaller. It runs only without a broker; with one,
`celery -A workbench beat` is the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from .celery import enqueue

logger = logging.getLogger(__name__)
_started = threading.Event()


def start_beat_thread() -> None:
    """Start the schedule thread once per process."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_run_schedule, name="inprocess-beat", daemon=True).start()
    logger.info("In-process schedule started: %s", ", ".join(settings.CELERY_BEAT_SCHEDULE))


def _run_schedule() -> None:
    next_due: dict[str, float] = {}
    while True:
        run_due(next_due, time.monotonic())
        time.sleep(max(0.1, min(next_due.values(), default=0.0) - time.monotonic()))


def run_due(next_due: dict[str, float], now: float) -> None:
    """Send each schedule entry whose time has come (`now` in monotonic seconds) and note when
    it is due next; an entry not yet in `next_due` is due."""
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    for name, entry in schedule.items():
        if now < next_due.get(name, now):
            continue
        next_due[name] = now + float(entry["schedule"])
        try:
            enqueue(entry["task"])  # a task that fails is logged; its next time tries again
        finally:
            close_old_connections()
