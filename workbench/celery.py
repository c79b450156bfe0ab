"""The Celery app, set up so that no accepted work is lost.

- JSON only: a task message never carries pickled Python.
- acks_late + reject_on_worker_lost: a task is acknowledged after it ran, so a worker
  killed mid-task leaves the message to be redelivered (tasks are idempotent for this).
- prefetch 1: a killed worker holds back at most one message per process.
- Soft and hard time limits: a stuck task cannot hold a worker forever.
- Countdowns are capped below the broker's visibility timeout (see `safe_countdown`);
  longer delays are kept in the database and picked up by a periodic sweep.
"""

from __future__ import annotations

import logging
import os
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
