"""Celery tasks of customers: thin, idempotent wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="customers.prune_message_keys")
def prune_message_keys() -> None:
    # Hourly (beat): keys past the 24-hour window no longer count, so this only frees space.
    services.event_message_keys_prune()
