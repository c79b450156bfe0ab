"""The start pipeline on real services: gunicorn, PostgreSQL, Redis and a real worker process.

What an API consumer relies on: an answered start happens, once, even when the broker is down
at that moment or a worker dies in the middle of a large fan-out.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db.models import Count

from customers.services import testuser_create
from flows.models import AnalyticsEvent, Card, Flow, FlowRun, Invocation
from flows.services import flow_create, flow_publish
from flows.tasks import sweep
from tests.gunicorn import GunicornServer, issue_token
from tests.integration.conftest import WorkerProcess, wait_for
from workbench.celery import app as celery_app
from workbench.models import Environment, WorkerHeartbeat
from workbench.services import credential_create, environment_create
from workbench.tasks import record_worker_heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CARD = {"type": "send_card", "card": {"title": "Hello {{firstName}}", "body": "Welcome aboard", "actions": []}}


def http(method: str, url: str, body: Any = None, token: str | None = None, form: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else form
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


class Consumer:
    """An API consumer of one environment, with an events token from the server's /oauth/token."""

    def __init__(self, server: GunicornServer, environment: Environment):
        issued = credential_create(environment=environment, role="events")
        credential = {"clientId": issued.credential.client_id, "clientSecret": issued.client_secret}
        self.token = issue_token(server.url, credential)
        self.base = f"{server.url}/api/v1/{environment.slug}"

    def start(self, flow: Flow, body: Any, mode: str = "start") -> tuple[int, Any]:
        status, answer = http("POST", f"{self.base}/action-flow/{flow.pk}/{mode}", body, self.token)
        return status, answer

    def cards(self, user_id: str) -> list[dict[str, Any]]:
        status, answer = http("GET", f"{self.base}/users/{user_id}/cards", token=self.token)
        assert status == 200, answer
        return list(answer["data"])


@pytest.fixture
def live_flow() -> Flow:
    environment = environment_create(slug="acme", name="Acme")
    flow = flow_create(
        environment=environment,
        name="Welcome",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    flow_publish(flow=flow)
    return flow


def test_a_live_start_through_the_api_reaches_the_users_feed(
    api_server: Callable[..., GunicornServer], live_flow: Flow
) -> None:
    consumer = Consumer(api_server(), live_flow.environment)

    status, answer = consumer.start(live_flow, {"targetUserIds": ["u1", "u2"], "variables": {"firstName": "Lars"}})

    assert status == 202
    [invocation] = answer["data"]["invocations"]
    assert invocation["status"] == "accepted"
    assert wait_for(lambda: len(consumer.cards("u2")) == 1)
    [card] = consumer.cards("u1")
    assert (card["title"], card["test"], card["flowInvocationId"]) == (
        "Hello Lars",
        False,
        invocation["flowInvocationId"],
    )


def test_a_test_start_reaches_only_test_users(api_server: Callable[..., GunicornServer], live_flow: Flow) -> None:
    testuser_create(environment=live_flow.environment, user_id="tester")
    consumer = Consumer(api_server(), live_flow.environment)

    status, answer = consumer.start(live_flow, {"targetUserIds": ["tester", "customer"]}, mode="test")

    assert status == 202
    assert answer["data"]["invocations"][0]["ignoredUserIds"] == ["customer"]
    assert wait_for(lambda: len(consumer.cards("tester")) == 1)
    assert consumer.cards("tester")[0]["test"] is True
    assert consumer.cards("customer") == []


def test_a_start_accepted_while_the_broker_is_down_runs_once_it_is_back(
    api_server: Callable[..., GunicornServer], live_flow: Flow
) -> None:
    broker_down = api_server(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    consumer = Consumer(broker_down, live_flow.environment)

    status, answer = consumer.start(live_flow, {"targetUserIds": ["u1"], "flowInvocationId": "during-outage"})

    assert status == 202, answer
    assert Invocation.objects.filter(flow_invocation_id="during-outage", status="accepted").exists()
    assert Card.objects.count() == 0

    # The broker is back: the periodic sweep finds the committed start nobody picked up.
    def swept() -> bool:
        sweep.delay()
        return wait_for(lambda: Card.objects.filter(user_id="u1").exists(), timeout=3)

    assert wait_for(swept, timeout=30, interval=0)
    assert Card.objects.filter(user_id="u1").count() == 1


def test_fifty_concurrent_identical_starts_make_one_run_and_one_card_per_user(
    api_server: Callable[..., GunicornServer], live_flow: Flow
) -> None:
    consumer = Consumer(api_server(), live_flow.environment)
    body = {"targetUserIds": ["u1", "u2", "u3"], "flowInvocationId": "same-key"}

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda _: consumer.start(live_flow, body), range(50)))

    statuses = sorted(answer["data"]["invocations"][0]["status"] for _, answer in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert sorted(status for status, _ in answers) == [200] * 49 + [202]
    assert wait_for(lambda: Card.objects.count() == 3)
    assert Invocation.objects.count() == 1
    assert FlowRun.objects.count() == 3
    assert sorted(Card.objects.values_list("user_id", flat=True)) == ["u1", "u2", "u3"]


def test_a_worker_killed_mid_fan_out_completes_every_run_exactly_once_after_a_restart(
    api_server: Callable[..., GunicornServer], celery_worker_process: WorkerProcess, live_flow: Flow
) -> None:
    consumer = Consumer(api_server(), live_flow.environment)
    for batch in range(10):
        targets = [f"user-{batch}-{number}" for number in range(1000)]
        status, _ = consumer.start(live_flow, {"targetUserIds": targets})
        assert status == 202

    assert wait_for(lambda: Card.objects.exists(), timeout=60, interval=0.01)
    celery_worker_process.kill()
    cards_when_killed = Card.objects.count()
    celery_worker_process.start()

    def all_done() -> bool:
        sweep.delay()  # resends the runs whose messages died with the worker
        return wait_for(lambda: Card.objects.count() == 10_000, timeout=5)

    assert wait_for(all_done, timeout=180, interval=0)
    assert cards_when_killed < 10_000, "the worker finished before it was killed; the test proved nothing"
    assert FlowRun.objects.count() == 10_000
    assert FlowRun.objects.exclude(status="completed").count() == 0
    duplicated = Card.objects.values("run").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicated.exists()
    assert AnalyticsEvent.objects.filter(name="card-published").count() == 10_000
    assert AnalyticsEvent.objects.filter(name="flow-run-completed").count() == 10_000


def test_a_queued_message_of_the_removed_one_invocation_task_is_dropped_and_the_sweep_runs_its_start(
    api_server: Callable[..., GunicornServer], live_flow: Flow
) -> None:
    """`flows.fan_out_invocation` is gone; its messages may still wait in a queue after an upgrade."""
    consumer = Consumer(api_server(CELERY_BROKER_URL="redis://127.0.0.1:1/0"), live_flow.environment)
    status, _ = consumer.start(live_flow, {"targetUserIds": ["u1"], "flowInvocationId": "queued-before-upgrade"})
    assert status == 202
    invocation = Invocation.objects.get(flow_invocation_id="queued-before-upgrade")

    celery_app.send_task("flows.fan_out_invocation", args=(invocation.pk,))
    record_worker_heartbeat.delay("after-the-old-message")

    # The worker rejected the unknown message and went on; the start is still accepted.
    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname="after-the-old-message").exists())
    assert Invocation.objects.get(pk=invocation.pk).status == "accepted"

    def swept() -> bool:
        sweep.delay()
        return wait_for(lambda: Card.objects.filter(user_id="u1").exists(), timeout=3)

    assert wait_for(swept, timeout=30, interval=0)
    assert Card.objects.filter(user_id="u1").count() == 1


def test_a_wait_step_is_resumed_by_the_sweep(api_server: Callable[..., GunicornServer], live_flow: Flow) -> None:
    """No countdown: the worker leaves the run waiting, and a sweep after its time resumes it."""
    flow = flow_create(
        environment=live_flow.environment,
        name="Wait a second",
        variables=[],
        steps=[
            {"type": "wait", "seconds": 1},
            {"type": "send_card", "card": {"title": "After the wait", "body": "", "actions": []}},
        ],
    )
    flow_publish(flow=flow)
    consumer = Consumer(api_server(), live_flow.environment)

    status, _ = consumer.start(flow, {"targetUserIds": ["u1"]})

    assert status == 202
    assert wait_for(lambda: FlowRun.objects.filter(status="waiting").exists())
    assert not Card.objects.exists()

    def swept() -> bool:
        sweep.delay()  # what beat sends every SWEEP_INTERVAL_SECONDS
        return wait_for(lambda: Card.objects.exists(), timeout=1)

    assert wait_for(swept, timeout=30, interval=0)
    assert list(Card.objects.values_list("title", flat=True)) == ["After the wait"]
