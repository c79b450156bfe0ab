"""Starts accepted at the same moment in one process are committed together, and a start
that fails in a group fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import connection

from flows.models import AnalyticsEvent, Invocation
from flows.services import AcceptResult, FlowRefused, flow_create, flow_publish, invocations_accept
from tests.factories import EnvironmentFactory
from tests.services.conftest import wait_for
from workbench import group_commit
from workbench.raw_rows import json_rows_insert

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

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
        return invocations_accept(flow=live_flow, mode="live", body=body, source="api")

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
    assert AnalyticsEvent.objects.filter(name="flow-invocation-accepted", flow=live_flow).count() == 12


def test_a_taken_key_in_a_group_fails_only_its_own_start(live_flow) -> None:
    invocations_accept(
        flow=live_flow, mode="live", body={"targetUserIds": ["u"], "flowInvocationId": "k"}, source="api"
    )

    def start(index: int) -> AcceptResult:
        key = "k" if index == 0 else f"new-{index}"
        target = "other" if index == 0 else "u"  # index 0 reuses "k" with other content
        return invocations_accept(
            flow=live_flow, mode="live", body={"targetUserIds": [target], "flowInvocationId": key}, source="api"
        )

    results = in_threads(8, start)

    assert isinstance(results[0], FlowRefused)
    assert results[0].code == "idempotency_mismatch"
    assert all(result.outcomes[0].status == "accepted" for result in results[1:]), results
    assert Invocation.objects.filter(flow=live_flow).count() == 8


def test_repeats_of_one_key_at_the_same_moment_start_once(live_flow) -> None:
    body = {"targetUserIds": ["u1", "u2"], "flowInvocationId": "same-delivery"}

    results = in_threads(10, lambda index: invocations_accept(flow=live_flow, mode="live", body=body, source="api"))

    statuses = sorted(result.outcomes[0].status for result in results)
    assert statuses == ["accepted"] + ["duplicate"] * 9
    assert Invocation.objects.filter(flow=live_flow).count() == 1


def test_the_writer_refuses_to_run_inside_a_transaction() -> None:
    from django.db import transaction

    rows = json_rows_insert([AnalyticsEvent(name="x", flow_invocation_id="", properties={})])
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside a transaction"):
        group_commit.insert_durably([rows])


def other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_stopping_the_writer_closes_its_connection_and_a_later_start_starts_another(live_flow) -> None:
    invocations_accept(flow=live_flow, mode="live", body={"targetUserIds": ["a"]}, source="api")
    with_writer = other_connections()

    group_commit.stop()

    assert wait_for(lambda: other_connections() == with_writer - 1)
    invocations_accept(flow=live_flow, mode="live", body={"targetUserIds": ["b"]}, source="api")
    assert Invocation.objects.filter(flow=live_flow).count() == 2


def test_a_start_waiting_for_a_key_does_not_hold_up_the_other_starts_of_the_process(live_flow) -> None:
    """Another transaction has inserted key "k" and not committed: a start reusing "k" must
    wait for it, but not the starts behind it in the writer's queue."""
    db = connection.settings_dict
    holder = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    template = Invocation.objects.filter(flow=live_flow)
    invocations_accept(flow=live_flow, mode="live", body={"targetUserIds": ["x"]}, source="api")
    existing = template.get()
    holder.execute(
        "INSERT INTO flows_invocation (environment_id, flow_id, mode, flow_invocation_id, source, status,"
        " content_hash, request, definition, variables, notification_detail, metadata, card_options,"
        " target_user_ids, ignored_user_ids, created_at)"
        " SELECT environment_id, flow_id, mode, 'k', source, status, content_hash, request, definition, variables,"
        " notification_detail, metadata, card_options, target_user_ids, ignored_user_ids, created_at"
        " FROM flows_invocation WHERE id = %s",
        [existing.pk],
    )
    waiting = threading.Thread(
        target=lambda: (
            invocations_accept(
                flow=live_flow, mode="live", body={"targetUserIds": ["y"], "flowInvocationId": "k"}, source="api"
            ),
            connection.close(),
        )
    )
    try:
        waiting.start()
        time.sleep(0.1)  # the keyed start is now waiting for the holder's transaction

        started = time.monotonic()
        invocations_accept(flow=live_flow, mode="live", body={"targetUserIds": ["z"]}, source="api")

        assert time.monotonic() - started < 2
        assert waiting.is_alive()
    finally:
        holder.rollback()
        holder.close()
        waiting.join(timeout=10)
    assert set(template.values_list("flow_invocation_id", flat=True)) >= {"k"}
    assert template.count() == 3
