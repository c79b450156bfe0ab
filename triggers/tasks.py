"""Celery tasks of the triggers app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from workbench.celery import enqueue

from . import segment_triggers, services


@shared_task(name="triggers.prune_request_log")
def prune_request_log() -> int:
    return services.request_log_prune().deleted


@shared_task(name="triggers.start_segment_members")
def start_segment_members(trigger_id: int) -> int:
    """Start a segment's current members after a publish asked for it (idempotent: each member
    starts under the key of their entry, so a second run starts nobody again)."""
    return segment_triggers.segment_members_start_by_id(trigger_id=trigger_id)


@shared_task(name="triggers.resend_member_backfills")
def resend_member_backfills() -> None:
    # Beat: a backfill whose message was lost, or whose worker died, is sent again.
    for trigger_id in segment_triggers.member_backfills_resend():
        enqueue("triggers.start_segment_members", trigger_id)
