"""The ground under every background job: PostgreSQL, the broker and a real worker process."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.integration.conftest import WorkerProcess, wait_for
from workbench.models import WorkerHeartbeat
from workbench.tasks import record_worker_heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_suite_runs_on_postgresql() -> None:
    assert connection.vendor == "postgresql"


def test_a_task_sent_through_the_broker_is_run_by_the_worker_process(celery_worker_process: WorkerProcess) -> None:
    record_worker_heartbeat.delay("probe-host")

    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname="probe-host").exists())


def test_a_task_sent_while_the_worker_is_down_runs_once_it_is_back(celery_worker_process: WorkerProcess) -> None:
    celery_worker_process.kill()
    record_worker_heartbeat.delay("queued-while-down")
    assert not WorkerHeartbeat.objects.filter(hostname="queued-while-down").exists()

    celery_worker_process.start()

    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname="queued-while-down").exists())
