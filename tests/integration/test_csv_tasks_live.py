"""CSV bulk sends on PostgreSQL with a real worker process (issue 13, "Reliability").

A worker SIGKILLed in the middle of a file, the same file uploaded twice and a cancel during a
run: every row starts at most once, and exactly once unless cancelled. The big file is a test
send to ids that are not test users, so each start is an invocation with nothing to deliver and
the worker spends its time on the CSV task, not on runs. CSV_LIVE_ROWS sets its size.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection

from flows import services as flow_services
from flows.models import Flow, Invocation, InvocationStatus
from tests.integration.conftest import WorkerProcess, wait_for
from triggers.csv_tasks import csv_task_cancel, csv_task_stage
from triggers.models import CsvTask, CsvTaskStatus
from workbench.celery import enqueue
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

ROWS = int(os.environ.get("CSV_LIVE_ROWS", "100000"))


@pytest.fixture(autouse=True)
def _worker_idle_after_the_test(celery_worker_process: WorkerProcess) -> Iterator[None]:
    """Leave the worker idle before the test database is flushed under it, without making it
    fan out the 100,000 starts (minutes on two processes, and not what these tests assert):
    drop the messages still queued, then mark the starts completed, so that what a worker
    process already holds finds nothing to take up."""
    yield
    with Connection(settings.CELERY_BROKER_URL) as broker:
        broker.default_channel.queue_purge(celery_worker_process.queue)
    Invocation.objects.exclude(status=InvocationStatus.COMPLETED).update(status=InvocationStatus.COMPLETED)
    time.sleep(2)  # a fan-out batch in hand ends at its first claim


def make_flow() -> Flow:
    environment = environment_create(slug="acme", name="Acme")
    flow = flow_services.flow_create(
        environment=environment,
        name="Bulk",
        variables=[{"name": "code", "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Code {{code}}", "body": "", "actions": []}}],
    )
    return flow_services.flow_publish(flow=flow).flow


def big_file(rows: int, keyed: bool = False) -> bytes:
    header = "target.usersById,payload.variables.code" + (",flowInvocationId" if keyed else "") + "\n"
    lines = (f"user-{index},C{index}" + (f",key-{index}" if keyed else "") + "\n" for index in range(rows))
    return (header + "".join(lines)).encode()


def stage(flow: Flow, content: bytes, mode: str = "test") -> CsvTask:
    return csv_task_stage(flow=flow, mode=mode, upload=io.BytesIO(content), file_name="big.csv", by=None, confirm=True)


def keys_started(flow: Flow) -> Counter[str]:
    return Counter(Invocation.objects.filter(flow=flow).values_list("flow_invocation_id", flat=True))


def finished(task: CsvTask) -> bool:
    task.refresh_from_db()
    return task.status in (CsvTaskStatus.COMPLETED, CsvTaskStatus.FAILED, CsvTaskStatus.CANCELLED)


def test_a_worker_killed_mid_file_resumes_and_starts_every_row_once(celery_worker_process: WorkerProcess) -> None:
    flow = make_flow()
    task = stage(flow, big_file(ROWS))

    assert wait_for(lambda: CsvTask.objects.get(pk=task.pk).rows_done >= ROWS // 10, timeout=300)
    celery_worker_process.kill()
    task.refresh_from_db()
    assert task.status == CsvTaskStatus.RUNNING
    assert task.rows_done < ROWS
    # Whatever committed is counted, and nothing more: progress and starts commit together.
    assert Invocation.objects.filter(flow=flow).count() == task.rows_done

    celery_worker_process.start()
    # Time passes for the dead worker's lease (rather than waiting it out), and beat's sweep
    # resends the task.
    CsvTask.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    enqueue("triggers.resend_csv_tasks")

    assert wait_for(lambda: finished(task), timeout=900, interval=1)
    assert (task.status, task.rows_done, task.rows_failed) == (CsvTaskStatus.COMPLETED, ROWS, 0)
    started = keys_started(flow)
    assert len(started) == ROWS
    assert set(started.values()) == {1}
    assert set(started) == {f"csv-{task.pk}-{row}" for row in range(2, ROWS + 2)}


def test_the_same_file_uploaded_twice_starts_its_keyed_rows_once(celery_worker_process: WorkerProcess) -> None:
    flow = make_flow()
    content = big_file(3_000, keyed=True)

    first, second = stage(flow, content, mode="live"), stage(flow, content, mode="live")

    assert wait_for(lambda: finished(first) and finished(second), timeout=300, interval=0.5)
    assert (first.status, second.status) == (CsvTaskStatus.COMPLETED, CsvTaskStatus.COMPLETED)
    assert (first.rows_failed, second.rows_failed) == (0, 0)
    started = keys_started(flow)
    assert len(started) == 3_000
    assert set(started.values()) == {1}


def test_rows_after_a_cancel_never_start(celery_worker_process: WorkerProcess) -> None:
    flow = make_flow()
    rows = min(ROWS, 50_000)
    task = stage(flow, big_file(rows))
    assert wait_for(lambda: CsvTask.objects.get(pk=task.pk).rows_done >= 4_000, timeout=300)

    task = csv_task_cancel(task=task)
    started_at_cancel = Invocation.objects.filter(flow=flow).count()

    assert task.status == CsvTaskStatus.CANCELLED
    assert started_at_cancel == task.rows_done < rows
    # Give the worker time to reach its next batch; resending the task changes nothing either.
    enqueue("triggers.run_csv_task", task.pk)
    assert not wait_for(lambda: Invocation.objects.filter(flow=flow).count() > started_at_cancel, timeout=5)
    task.refresh_from_db()
    assert (task.status, task.rows_done) == (CsvTaskStatus.CANCELLED, started_at_cancel)
