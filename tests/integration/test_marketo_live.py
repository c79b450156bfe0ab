"""Marketo triggers on real services: batches posted to gunicorn, a real Celery worker starting
the leads and calling Marketo back, PostgreSQL keeping batches and callbacks (SPEC section 7).

Marketo's callback endpoint is a local server (OUTBOUND_ALLOW_PRIVATE=1 in the test settings).
Time is not waited out: where a retry or a lease is due later, the test moves the row's time and
sends the sweep (what beat does every 5 s).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows.models import Invocation
from flows.services import flow_create, flow_publish
from tests.gunicorn import GunicornServer
from tests.integration.conftest import WorkerProcess, wait_for
from tests.triggers.marketo_receiver import marketo_receiver
from triggers import marketo
from triggers.models import MarketoCallback, MarketoCallbackStatus, WebhookRequest
from triggers.services import trigger_mode_set
from workbench.celery import enqueue
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CARD = {"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "Thanks for joining", "actions": []}}


@pytest.fixture
def live_marketo() -> marketo.CreatedTrigger:
    environment = environment_create(slug="acme", name="Acme")
    flow = flow_create(
        environment=environment,
        name="Webinar follow-up",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    flow_publish(flow=flow)
    created = marketo.marketo_trigger_create(flow=flow, flow_fields=[{"name": "firstName"}])
    trigger_mode_set(trigger=created.trigger, mode="live")
    return created


def submit(server: GunicornServer, created: marketo.CreatedTrigger, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{server.url}{marketo.base_path(created.trigger)}submitAsyncAction",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "x-api-key": created.api_key},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def batch(callback_url: str, count: int, token: str = "tok-live") -> dict[str, Any]:  # noqa: S107
    leads = [
        {"objectContext": {"id": index, "userId": f"u{index}"}, "flowStepContext": {"firstName": f"N{index}"}}
        for index in range(1, count + 1)
    ]
    leads.append({"objectContext": {"id": 999}, "flowStepContext": {}})  # no user id: fails alone
    return {
        "token": token,
        "callbackUrl": callback_url,
        "apiCallBackKey": "cb-key",
        "context": {"subscription": {"munchkinId": "123-ABC-456"}},
        "objectData": leads,
    }


def make_due(callback: MarketoCallback) -> None:
    """Time passes until the callback's next attempt, and beat's sweep runs."""
    MarketoCallback.objects.filter(pk=callback.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    enqueue("triggers.marketo_sweep")


def test_marketo_down_for_a_while_gets_every_leads_result_once_it_is_back(
    api_server: Callable[..., GunicornServer], live_marketo: marketo.CreatedTrigger
) -> None:
    server = api_server()
    with marketo_receiver(statuses=[503, 503]) as receiver:
        assert submit(server, live_marketo, batch(receiver.url, 50)) == 201
        assert wait_for(lambda: receiver.count() == 1)
        assert Invocation.objects.count() == 50
        for answered in (2, 3):
            callback = MarketoCallback.objects.get()
            assert wait_for(lambda: MarketoCallback.objects.get().lease_until is None)
            make_due(callback)
            assert wait_for(lambda n=answered: receiver.count() == n)  # type: ignore[misc]
        assert wait_for(lambda: MarketoCallback.objects.get().status == MarketoCallbackStatus.DELIVERED)

        results = receiver.results()
    assert len(results) == 51
    assert all(results[index]["success"] for index in range(1, 51))
    assert results[999]["errorCode"] == "missing_user_id"
    assert [r.status for r in receiver.requests] == [503, 503, 200]
    attempts = WebhookRequest.objects.filter(method="CALLBACK").order_by("received_at")
    assert [a.status_code for a in attempts] == [503, 503, 200]


def test_a_worker_killed_mid_callback_resends_it_after_a_restart(
    api_server: Callable[..., GunicornServer],
    live_marketo: marketo.CreatedTrigger,
    celery_worker_process: WorkerProcess,
) -> None:
    server = api_server()
    with marketo_receiver(hold_seconds=4) as receiver:
        assert submit(server, live_marketo, batch(receiver.url, 20)) == 201
        assert wait_for(lambda: receiver.arrived == 1)
        celery_worker_process.kill()  # mid-callback: Marketo has the request, we never see its answer
        callback = MarketoCallback.objects.get()
        assert (callback.status, callback.attempts) == (MarketoCallbackStatus.PENDING, 1)
        assert callback.lease_until is not None

        receiver.hold_seconds = 0
        celery_worker_process.start()
        # Time passes for the dead worker's lease, and beat's sweep resends the callback.
        MarketoCallback.objects.filter(pk=callback.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        enqueue("triggers.marketo_sweep")
        assert wait_for(lambda: MarketoCallback.objects.get().status == MarketoCallbackStatus.DELIVERED, timeout=30)
        assert wait_for(lambda: receiver.count() == 2, timeout=10)

        tokens = [r.body["token"] for r in receiver.requests]
        results = receiver.results()
    assert tokens == ["tok-live", "tok-live"]  # the repeat: same batch, same results
    assert receiver.requests[0].body["objectData"] == receiver.requests[1].body["objectData"]
    assert len(results) == 21
    assert MarketoCallback.objects.get().attempts == 2
    assert Invocation.objects.count() == 20


def test_a_resubmitted_batch_starts_nothing_new(
    api_server: Callable[..., GunicornServer], live_marketo: marketo.CreatedTrigger
) -> None:
    server = api_server()
    with marketo_receiver() as receiver:
        body = batch(receiver.url, 30, token="tok-again")
        assert submit(server, live_marketo, body) == 201
        assert wait_for(lambda: receiver.count() == 1)
        assert submit(server, live_marketo, body) == 201
        assert wait_for(lambda: receiver.count() == 2)
        first, second = (r.body["objectData"] for r in receiver.requests)

    assert Invocation.objects.count() == 30
    assert first == second
