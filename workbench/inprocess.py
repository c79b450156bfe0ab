"""In-process background work for the embedded default (`make run`: no broker, no beat).

Tasks already run in-process (Celery's eager mode, after the transaction commits). What is
missing without `celery beat` is the periodic schedule — the sweep that resumes waiting
runs, the heartbeat — so a daemon thread of the server process runs CELERY_BEAT_SCHEDULE.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections

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
    from workbench.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules, as a worker would
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    next_due = dict.fromkeys(schedule, 0.0)
    while True:
        now = time.monotonic()
        for name, entry in schedule.items():
            if now < next_due[name]:
                continue
            next_due[name] = now + float(entry["schedule"])
            try:
                app.tasks[entry["task"]].apply()
            except Exception:
                logger.exception("In-process task %s failed", entry["task"])
            finally:
                close_old_connections()
        time.sleep(1)
