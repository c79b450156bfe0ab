"""Chunks of one invocation executed at the same time by two workers all run, first time.

(A lock taken on the invocation's row once made one worker skip every run of the chunk it
was given, leaving them to the sweep.)
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from flows.models import Card, FlowRun
from flows.services import flow_create, flow_publish, invocations_fan_out, runs_execute
from tests.flows.conftest import accept_start
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_two_workers_executing_chunks_of_one_invocation_complete_every_run() -> None:
    environment = environment_create(slug="acme", name="Acme")
    flow = flow_create(
        environment=environment, name="Welcome", steps=[{"type": "send_card", "card": {"title": "Hi", "body": ""}}]
    )
    flow_publish(flow=flow)
    body = {"targetUserIds": [f"user-{number}" for number in range(1000)]}
    invocation_id = accept_start(flow=flow, mode="live", body=body, source="api").outcomes[0].invocation_id
    chunks = invocations_fan_out(invocation_ids=[invocation_id])
    start = threading.Barrier(2)

    def worker(assigned: list[list[int]]) -> None:
        try:
            start.wait()
            for chunk in assigned:
                runs_execute(run_ids=chunk)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(chunks[offset::2],)) for offset in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(chunks) == 2
    assert FlowRun.objects.filter(status="completed").count() == 1000
    assert Card.objects.count() == 1000
