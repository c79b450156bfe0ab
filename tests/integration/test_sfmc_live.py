"""Salesforce Marketing Cloud triggers on real services: Journey Builder's execute calls go to
/integrations/sfmc/{token}/execute on gunicorn, against PostgreSQL, and the real worker
publishes the cards (SPEC section 7).

What Journey Builder relies on: a contact's execute call is answered 200 once durable and its
card arrives; its retries, even ten at once, start one invocation and one run; a call that is
not signed HS256 with the package's secret is refused and logged, and starts nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest

from flows.models import Card, FlowRun, Invocation
from flows.services import flow_create, flow_publish
from tests.gunicorn import GunicornServer
from tests.integration.conftest import wait_for
from triggers import sfmc
from triggers.models import Trigger, WebhookRequest
from triggers.services import trigger_mode_set
from workbench.services import environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "sfmc-live-jwt-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
CARD = {"type": "send_card", "card": {"title": "Welcome {{firstName}}", "body": "Glad you are here", "actions": []}}


def claims(key_value: str, first_name: str = "Lars") -> dict[str, Any]:
    return {
        "inArguments": [{"userId": key_value}, {"firstName": first_name}],
        "outArguments": [],
        "activityObjectID": "5b7c3c1e-aaaa-4bbb-8ccc-111111111111",
        "journeyId": "0d5f0f3e-bbbb-4ccc-8ddd-222222222222",
        "activityId": "8c3f9f0e-5e44-4c7e-9d0b-1f7f0b6f2a11",
        "definitionInstanceId": "2f6b8d3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        "activityInstanceId": "9e8d7c6b-cccc-4ddd-8eee-333333333333",
        "keyValue": key_value,
    }


def execute(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/jwt"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def live_trigger() -> Trigger:
    environment = environment_create(slug="acme", name="Acme")
    flow = flow_create(
        environment=environment,
        name="Welcome journey",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    flow_publish(flow=flow)
    trigger = sfmc.sfmc_trigger_create(flow=flow, jwt_secret=SECRET)
    trigger_mode_set(trigger=trigger, mode="live")
    trigger.refresh_from_db()
    return trigger


def execute_url(server: GunicornServer, trigger: Trigger) -> str:
    return f"{server.url}/integrations/sfmc/{trigger.token}/execute"


def test_ten_concurrent_retries_of_one_contacts_execute_call_start_one_invocation_and_one_run(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = execute_url(api_server(), live_trigger)
    body = jwt.encode(claims("c-1", "Grace"), SECRET, algorithm="HS256").encode()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: execute(url, body), range(10)))

    assert answers == [(200, {})] * 10
    assert wait_for(lambda: Card.objects.count() == 1)
    assert Invocation.objects.count() == 1
    assert FlowRun.objects.count() == 1
    assert list(Card.objects.values_list("user_id", "title", "test")) == [("c-1", "Welcome Grace", False)]
    outcomes = sorted(WebhookRequest.objects.values_list("outcome", flat=True))
    assert outcomes == ["accepted"] + ["duplicate"] * 9


def test_forged_and_unsigned_calls_are_refused_and_logged_on_the_real_stack(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = execute_url(api_server(), live_trigger)
    forged = jwt.encode(claims("c-2"), "another-installed-packages-secret-0123456789abcdef", algorithm="HS256")

    answers = [
        execute(url, forged.encode()),
        execute(url, json.dumps(claims("c-2")).encode()),
        execute(url, b"\x00\xff garbage"),
    ]

    assert [status for status, _ in answers] == [401, 401, 401]
    assert {answer["code"] for _, answer in answers} == {"signature_invalid"}
    assert not Invocation.objects.exists()
    assert sorted(WebhookRequest.objects.values_list("status_code", flat=True)) == [401, 401, 401]
