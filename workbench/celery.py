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

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")

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
    timezone="UTC",
    enable_utc=True,
)
app.autodiscover_tasks()


def safe_countdown(seconds: float) -> float:
    """The longest countdown that cannot outlive the broker's visibility timeout."""
    return max(0.0, min(seconds, settings.MAX_TASK_COUNTDOWN_SECONDS))
