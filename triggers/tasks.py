"""Celery tasks of the triggers app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="triggers.prune_request_log")
def prune_request_log() -> int:
    return services.request_log_prune().deleted
