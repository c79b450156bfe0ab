"""Starts accepted at the same moment in one process, each written in one statement: every
caller gets its own rows back, and a start that reuses a key fails or repeats alone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from flows.models import Invocation
from flows.services import AcceptResult, FlowRefused, flow_create, flow_publish
from tests.factories import EnvironmentFactory
from tests.flows.conftest import accept_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CARD = {"type": "send_card", "card": {"title": "Hi {{name}}", "body": "Welcome.", "actions": []}}


@pytest.fixture
def live_flow():
    flow = flow_create(
        environment=EnvironmentFactory(), name="Welcome", variables=[{"name": "name", "default": "you"}], steps=[CARD]
    )
    flow_publish(flow=flow)
    return flow


def in_threads(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` in `count` threads released at once; results (or exceptions) by i."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_starts_are_each_accepted_once_with_their_own_rows(live_flow) -> None:
    def start(index: int) -> AcceptResult:
        body = {"targetUserIds": [f"user-{index}"], "variables": {"name": f"N{index}"}}
        return accept_start(flow=live_flow, mode="live", body=body, source="api")

    results = in_threads(12, start)

    assert all(isinstance(result, AcceptResult) for result in results), results
    invocations = {invocation.pk: invocation for invocation in Invocation.objects.filter(flow=live_flow)}
    assert len(invocations) == 12
    for index, result in enumerate(results):
        [outcome] = result.outcomes
        invocation = invocations[outcome.invocation_id]  # each caller got its own row's id back
        assert invocation.flow_invocation_id == outcome.flow_invocation_id
        assert invocation.target_user_ids == [f"user-{index}"]
        assert invocation.variables == {"name": f"N{index}"}


def test_a_taken_key_fails_only_its_own_start(live_flow) -> None:
    accept_start(flow=live_flow, mode="live", body={"targetUserIds": ["u"], "flowInvocationId": "k"}, source="api")

    def start(index: int) -> AcceptResult:
        key = "k" if index == 0 else f"new-{index}"
        target = "other" if index == 0 else "u"  # index 0 reuses "k" with other content
        return accept_start(
            flow=live_flow, mode="live", body={"targetUserIds": [target], "flowInvocationId": key}, source="api"
        )

    results = in_threads(8, start)

    assert isinstance(results[0], FlowRefused)
    assert results[0].code == "idempotency_mismatch"
    assert all(result.outcomes[0].status == "accepted" for result in results[1:]), results
    assert Invocation.objects.filter(flow=live_flow).count() == 8


def test_repeats_of_one_key_at_the_same_moment_start_once(live_flow) -> None:
    body = {"targetUserIds": ["u1", "u2"], "flowInvocationId": "same-delivery"}

    results = in_threads(10, lambda index: accept_start(flow=live_flow, mode="live", body=body, source="api"))

    statuses = sorted(result.outcomes[0].status for result in results)
    assert statuses == ["accepted"] + ["duplicate"] * 9
    assert Invocation.objects.filter(flow=live_flow).count() == 1
