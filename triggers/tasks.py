"""Celery tasks of the triggers app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from workbench.celery import enqueue

from . import csv_tasks, manual_sends, marketo, segment_triggers, services


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


@shared_task(name="triggers.run_csv_task")
def run_csv_task(task_id: int) -> str:
    """Process a CSV task from where it stands (a second delivery finds it claimed or done)."""
    return csv_tasks.csv_task_run(task_id=task_id)


@shared_task(name="triggers.check_csv_task")
def check_csv_task(task_id: int) -> None:
    """The Workbench's dry run of an uploaded CSV, kept on the task (idempotent)."""
    csv_tasks.csv_task_check(task_id=task_id)


@shared_task(name="triggers.resend_csv_tasks")
def resend_csv_tasks() -> None:
    # Beat: a task whose worker died (its lease expired) or whose message was lost is sent
    # again, and so is a dry run nobody is making.
    for task_id in csv_tasks.csv_tasks_to_resend():
        enqueue("triggers.run_csv_task", task_id)
    for task_id in csv_tasks.csv_checks_to_resend():
        enqueue("triggers.check_csv_task", task_id)


@shared_task(name="triggers.run_manual_send")
def run_manual_send(send_id: int) -> int:
    """A customers-dashboard send (idempotent: each customer starts under its send's key)."""
    return manual_sends.manual_send_run(send_id=send_id)


@shared_task(name="triggers.resend_manual_sends")
def resend_manual_sends() -> None:
    # Beat: sends never picked up, or whose worker died (lease expired), are sent again.
    manual_sends.manual_sends_resend()


@shared_task(name="triggers.marketo_process_batch")
def marketo_process_batch(batch_id: int) -> int:
    """Start a Marketo batch's leads and post their callbacks (a second delivery finds it done)."""
    return marketo.marketo_batch_run(batch_id=batch_id)


@shared_task(name="triggers.marketo_deliver_callback")
def marketo_deliver_callback(callback_id: int) -> str:
    """Post one callback to Marketo if it is due and nobody holds it (its lease)."""
    return marketo.marketo_callback_deliver(callback_id=callback_id)


@shared_task(name="triggers.marketo_sweep")
def marketo_sweep() -> None:
    # Beat: batches nobody processed, and callbacks due (retries, or a dead worker's lease expired).
    due = marketo.marketo_sweep()
    for batch_id in due.batches:
        enqueue("triggers.marketo_process_batch", batch_id)
    for callback_id in due.callbacks:
        enqueue("triggers.marketo_deliver_callback", callback_id)
