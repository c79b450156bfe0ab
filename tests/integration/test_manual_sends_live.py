"""Customers-dashboard sends on PostgreSQL with a real worker process (issue 13).

The send's task goes through the broker to the worker, which starts every customer once; a
worker SIGKILLed in the middle of a send resumes after a restart (the sweep resends it once
its lease has expired) and still starts every customer exactly once. Live starts; the runs'
execution is not what is asserted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection

from customers.models import Customer
from flows import services as flow_services
from flows.models import Flow, Invocation, InvocationStatus
from tests.integration.conftest import WorkerProcess, wait_for
from triggers.manual_sends import manual_send_create
from triggers.models import ManualSend, ManualSendStatus
from workbench.celery import enqueue
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

CUSTOMERS = 10_000
EVERYONE = {"match": "all", "conditions": [{"tag": "spring", "op": "has"}]}


@pytest.fixture(autouse=True)
def _worker_idle_after_the_test(celery_worker_process: WorkerProcess) -> Iterator[None]:
    """Drop the fan-outs and runs still queued and mark the starts completed, so that the
    worker is idle before the test database is flushed (their execution is not asserted)."""
    yield
    with Connection(settings.CELERY_BROKER_URL) as broker:
        broker.default_channel.queue_purge(celery_worker_process.queue)
    Invocation.objects.exclude(status=InvocationStatus.COMPLETED).update(status=InvocationStatus.COMPLETED)
    time.sleep(2)


def spring_sale(customers: int) -> Flow:
    environment = environment_create(slug="acme", name="Acme")
    Customer.objects.bulk_create(
        [Customer(environment=environment, user_id=f"c-{n:05d}", tags=["spring"]) for n in range(customers)]
    )
    flow = flow_services.flow_create(
        environment=environment,
        name="Spring sale",
        variables=[{"name": "code", "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Code {{code}}", "body": "", "actions": []}}],
    )
    return flow_services.flow_publish(flow=flow).flow


def send_to_everyone(flow: Flow) -> ManualSend:
    environment = flow.environment
    return manual_send_create(
        environment=environment, flow=flow, by=None, rules=EVERYONE, description="Spring", variables={"code": "S25"}
    )


def keys_started(flow: Flow) -> Counter[str]:
    started = Invocation.objects.filter(flow=flow, source="dashboard")
    return Counter(started.values_list("flow_invocation_id", flat=True))


def test_a_send_reaches_every_customer_once_through_the_worker(celery_worker_process: WorkerProcess) -> None:
    flow = spring_sale(2_000)

    send = send_to_everyone(flow)

    assert wait_for(lambda: ManualSend.objects.get(pk=send.pk).status == ManualSendStatus.COMPLETED, timeout=120)
    send.refresh_from_db()
    assert (send.started_count, send.failed_count) == (2_000, 0)
    started = keys_started(flow)
    assert set(started.values()) == {1}
    assert set(started) == {f"dash-{send.pk}-c-{n:05d}" for n in range(2_000)}
    assert {invocation.variables["code"] for invocation in Invocation.objects.filter(flow=flow)} == {"S25"}


def test_a_worker_killed_mid_send_resumes_and_starts_every_customer_once(
    celery_worker_process: WorkerProcess,
) -> None:
    flow = spring_sale(CUSTOMERS)
    send = send_to_everyone(flow)

    assert wait_for(lambda: ManualSend.objects.get(pk=send.pk).started_count >= 1_000, timeout=120, interval=0.05)
    celery_worker_process.kill()
    send.refresh_from_db()
    assert send.status == ManualSendStatus.RUNNING
    assert send.started_count < CUSTOMERS
    # Progress and starts commit together: what is counted started, and nothing more.
    assert len(keys_started(flow)) == send.started_count

    celery_worker_process.start()
    # Time passes for the dead worker's lease, and beat's sweep resends the send.
    ManualSend.objects.filter(pk=send.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    enqueue("triggers.resend_manual_sends")

    assert wait_for(lambda: ManualSend.objects.get(pk=send.pk).status == ManualSendStatus.COMPLETED, timeout=300)
    send.refresh_from_db()
    assert (send.started_count, send.failed_count) == (CUSTOMERS, 0)
    started = keys_started(flow)
    assert len(started) == CUSTOMERS
    assert set(started.values()) == {1}
