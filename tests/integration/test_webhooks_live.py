"""Webhook triggers on real services: senders post to /hooks/{token} on gunicorn, against
PostgreSQL, and the real worker publishes the cards (SPEC section 4).

What a sender relies on: a signed delivery is accepted once and its cards arrive; its retries
and a burst of identical deliveries start nothing more; refusals are answered and logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db.models import Count

from flows.models import Card, Flow, FlowRun, Invocation
from flows.services import flow_create, flow_publish
from tests.gunicorn import GunicornServer, issue_token
from tests.integration.conftest import wait_for
from triggers.models import Trigger, WebhookRequest
from triggers.services import trigger_mode_set, webhook_trigger_create, webhook_trigger_update
from workbench.services import credential_create, environment_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "whsec_live_7d3a"
SIGNATURE = {
    "secret": SECRET,
    "algorithm": "sha256",
    "digest": "hex",
    "data": {
        "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
        "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="},
    },
    "template": "[timestamp].[payload]",
    "toleranceSeconds": 300,
}
MAPPING = {
    "type": "structured",
    "structured": {
        "targetUserIds": "$.recipients[*]",
        "flowInvocationId": "$.delivery.id",
        "variables": {"firstName": "$.name"},
    },
}
CARD = {"type": "send_card", "card": {"title": "Hello {{firstName}}", "body": "Your order shipped", "actions": []}}


def sign(body: bytes, secret: str = SECRET) -> str:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(url: str, body: bytes, signature: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "X-Delivery-Attempt": "1"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def order_shipped(delivery_id: str, recipients: list[str], name: str = "Lars") -> bytes:
    return json.dumps({"delivery": {"id": delivery_id}, "recipients": recipients, "name": name}).encode()


@pytest.fixture
def live_trigger() -> Trigger:
    environment = environment_create(slug="acme", name="Acme")
    flow: Flow = flow_create(
        environment=environment,
        name="Order shipped",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    flow_publish(flow=flow)
    trigger = webhook_trigger_create(flow=flow, mapping=MAPPING, security={"signature": SIGNATURE})
    trigger_mode_set(trigger=trigger, mode="live")
    trigger.refresh_from_db()
    return trigger


def hook_url(server: GunicornServer, trigger: Trigger) -> str:
    return f"{server.url}/hooks/{trigger.token}"


def test_a_signed_delivery_through_gunicorn_reaches_every_mapped_users_feed(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = order_shipped("dlv-1", ["u1", "u2"], name="Grace")

    status, answer = deliver(url, body, sign(body))

    assert (status, answer) == (202, {"status": "accepted", "flowInvocationId": "dlv-1", "mode": "live"})
    assert wait_for(lambda: Card.objects.count() == 2)
    cards = sorted(Card.objects.values_list("user_id", "title", "test", "flow_invocation_id"))
    assert cards == [("u1", "Hello Grace", False, "dlv-1"), ("u2", "Hello Grace", False, "dlv-1")]
    logged = WebhookRequest.objects.get()
    assert (logged.outcome, logged.status_code, logged.source_ip) == ("accepted", 202, "127.0.0.1")
    assert logged.headers["x-delivery-attempt"] == "1"


def test_a_senders_retry_of_the_same_delivery_starts_once(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = order_shipped("dlv-retry", ["u1"])

    first = deliver(url, body, sign(body))
    assert wait_for(lambda: Card.objects.filter(user_id="u1").exists())
    # The sender did not see the answer in time and retries, signing afresh.
    retry = deliver(url, body, sign(body))

    assert first[0] == 202
    assert retry == (200, {"status": "duplicate", "flowInvocationId": "dlv-retry", "mode": "live"})
    assert Invocation.objects.count() == 1
    assert FlowRun.objects.count() == 1
    assert Card.objects.count() == 1
    assert sorted(WebhookRequest.objects.values_list("outcome", flat=True)) == ["accepted", "duplicate"]


def test_thirty_concurrent_identical_deliveries_make_one_run_per_user(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = order_shipped("dlv-burst", ["u1", "u2", "u3"])
    signature = sign(body)

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda _: deliver(url, body, signature), range(30)))

    assert sorted(status for status, _ in answers) == [200] * 29 + [202]
    assert sorted(answer["status"] for _, answer in answers) == ["accepted"] + ["duplicate"] * 29
    assert {answer["flowInvocationId"] for _, answer in answers} == {"dlv-burst"}
    assert wait_for(lambda: Card.objects.count() == 3)
    assert Invocation.objects.count() == 1
    runs = FlowRun.objects.values("user_id").annotate(n=Count("id"))
    assert sorted((run["user_id"], run["n"]) for run in runs) == [("u1", 1), ("u2", 1), ("u3", 1)]
    assert sorted(Card.objects.values_list("user_id", flat=True)) == ["u1", "u2", "u3"]
    assert WebhookRequest.objects.count() == 30


def test_a_request_with_a_wrong_signature_is_refused_and_logged_on_the_real_stack(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = order_shipped("dlv-forged", ["u1"])

    status, answer = deliver(url, body, sign(body, secret="whsec_guess"))

    assert (status, answer["code"]) == (401, "signature_invalid")
    assert not Invocation.objects.exists()
    logged = WebhookRequest.objects.get()
    assert (logged.outcome, logged.code) == ("refused", "signature_invalid")


def test_a_body_with_a_nul_byte_is_answered_and_logged_not_a_server_error(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = b'{"delivery": {"id": "d"}, "name": "\x00"}'

    status, answer = deliver(url, body, sign(body))

    assert (status, answer["code"]) == (400, "invalid_payload")
    assert WebhookRequest.objects.get().code == "invalid_payload"


def test_an_escaped_nul_in_the_body_or_query_is_answered_and_logged_not_a_server_error(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    url = hook_url(api_server(), live_trigger)
    body = b'{"delivery": {"id": "d-nul"}, "recipients": ["u1"], "name": "Zo\\u0000e"}'
    fine = order_shipped("d-query", ["u1"])

    escaped = deliver(url, body, sign(body))
    in_query = deliver(f"{url}?ref=a%00b", fine, sign(fine))

    assert (escaped[0], escaped[1]["code"]) == (400, "invalid_payload")
    assert in_query[0] == 202
    logged = {entry.code: entry for entry in WebhookRequest.objects.all()}
    assert "\\u0000" in logged["invalid_payload"].body
    assert logged[""].query == {"ref": "a\ufffdb"}
    assert not Invocation.objects.filter(flow_invocation_id="d-nul").exists()


def workbench_token(server: GunicornServer, trigger: Trigger) -> str:
    issued = credential_create(environment=trigger.environment, role="workbench")
    return issue_token(server.url, {"clientId": issued.credential.client_id, "clientSecret": issued.client_secret})


def member_post(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_concurrent_held_replays_replay_each_held_request_exactly_once(
    api_server: Callable[..., GunicornServer], live_trigger: Trigger
) -> None:
    # Without a delivery id in the mapping, a request replayed twice would start twice.
    webhook_trigger_update(
        trigger=live_trigger,
        sample={"recipients": ["u"], "name": "x"},
        sample_given=True,
        shape_check=True,
        mapping={"type": "structured", "structured": {"targetUserIds": "$.recipients[*]"}},
        security={"signature": None},
    )
    server = api_server()
    url = hook_url(server, live_trigger)
    held = [deliver(url, json.dumps({"recipients": [f"u{n}"], "name": n}).encode(), None) for n in range(6)]
    assert [answer for _, answer in held] == [{"status": "held"}] * 6
    token = workbench_token(server, live_trigger)
    base = f"{server.url}/api/v1/acme/triggers/{live_trigger.pk}"
    assert member_post(f"{base}/reactivate", token)[0] == 200

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: member_post(f"{base}/held/replay", token), range(4)))

    assert [status for status, _ in answers] == [200] * 4
    replayed = sorted(item["id"] for _, answer in answers for item in answer["replayed"])
    assert len(replayed) == len(set(replayed)) == 6
    assert Invocation.objects.count() == 6
    assert wait_for(lambda: Card.objects.count() == 6)
    assert sorted(Card.objects.values_list("user_id", flat=True)) == [f"u{n}" for n in range(6)]
