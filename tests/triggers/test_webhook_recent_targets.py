"""A webhook token answered recently is answered without reading its trigger again
(`triggers.start_reads.RecentReads`): its start is written only while the trigger's
and the flow's rows are as read, so whatever changed them in between (a service, a queryset
update) is obeyed by the very next delivery. PostgreSQL only: row versions are its.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from flows.models import Flow, FlowStatus, Invocation
from flows.services import flow_publish, flow_update
from tests.triggers.conftest import STRIPE_SIGNATURE, STRUCTURED_MAPPING, as_bytes, delivery, stripe_header
from triggers import services
from triggers.models import Trigger, TriggerMode, WebhookRequest

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row versions are PostgreSQL's"),
]

ROTATED_SECRET = "whsec_rotated_0b1c2d3e"


@pytest.fixture
def live_trigger(webhook_trigger, test_user) -> Trigger:
    """A live, signed trigger that has accepted one delivery: its target is remembered."""
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, security={"signature": STRIPE_SIGNATURE}, mode="live")
    first = send(trigger, delivery("first"))
    assert first.status_code == 202, first.json()
    return trigger


def send(trigger: Trigger, body: Any, secret: str = STRIPE_SIGNATURE["secret"]) -> Any:
    data = as_bytes(body)
    signature = stripe_header(data, int(time.time()), secret)
    return Client().post(
        f"/hooks/{trigger.token}", data=data, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def outcomes(trigger: Trigger) -> list[tuple[str, int]]:
    return list(WebhookRequest.objects.filter(trigger=trigger).order_by("id").values_list("outcome", "status_code"))


def test_the_next_delivery_is_one_statement_and_kept_like_the_first(live_trigger: Trigger) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = send(live_trigger, delivery("second"))

    assert response.status_code == 202
    statements = [str(query["sql"]) for query in queries if "SAVEPOINT" not in str(query["sql"])]
    assert len(statements) == 1, statements  # the write: no read (the first delivery made two)
    assert outcomes(live_trigger) == [("accepted", 202), ("accepted", 202)]
    second = Invocation.objects.get(flow_invocation_id="second")
    assert (second.mode, second.trigger_id, second.target_user_ids) == ("live", live_trigger.pk, ["tester-1"])


def test_a_rotated_secret_refuses_the_old_signature_at_once(live_trigger: Trigger) -> None:
    services.webhook_trigger_update(
        trigger=live_trigger, security={"signature": {**STRIPE_SIGNATURE, "secret": ROTATED_SECRET}}
    )

    old = send(live_trigger, delivery("old-secret"))
    new = send(live_trigger, delivery("new-secret"), secret=ROTATED_SECRET)

    assert (old.status_code, old.json()["code"]) == (401, "signature_invalid")
    assert new.status_code == 202
    assert not Invocation.objects.filter(flow_invocation_id="old-secret").exists()
    assert outcomes(live_trigger)[1:] == [("refused", 401), ("accepted", 202)]


def test_a_trigger_disabled_by_a_queryset_update_refuses_the_next_delivery(live_trigger: Trigger) -> None:
    Trigger.objects.filter(pk=live_trigger.pk).update(mode=TriggerMode.DISABLED)  # no service, no updated_at

    response = send(live_trigger, delivery("while-disabled"))

    assert (response.status_code, response.json()["code"]) == (403, "trigger_disabled")
    assert not Invocation.objects.filter(flow_invocation_id="while-disabled").exists()


def test_a_trigger_paused_meanwhile_holds_the_next_delivery(live_trigger: Trigger) -> None:
    services.trigger_pause(trigger=live_trigger, reason="Paused by a test.")

    response = send(live_trigger, delivery("while-paused"))

    assert response.json() == {"status": "held"}
    assert outcomes(live_trigger)[-1] == ("held", 202)


def test_capture_armed_meanwhile_captures_the_next_delivery(live_trigger: Trigger) -> None:
    services.trigger_capture_arm(trigger=live_trigger)

    response = send(live_trigger, delivery("captured"))

    assert response.json() == {"status": "sample_captured"}
    assert Trigger.objects.get(pk=live_trigger.pk).sample == delivery("captured")
    assert not Invocation.objects.filter(flow_invocation_id="captured").exists()


def test_an_archived_flow_refuses_the_next_delivery(live_trigger: Trigger) -> None:
    Flow.objects.filter(pk=live_trigger.flow_id).update(status=FlowStatus.ARCHIVED)

    response = send(live_trigger, delivery("after-archive"))

    assert (response.status_code, response.json()["code"]) == (409, "flow_archived")


def test_the_next_delivery_runs_the_version_published_meanwhile(live_trigger: Trigger) -> None:
    flow = Flow.objects.get(pk=live_trigger.flow_id)
    flow_update(flow=flow, steps=[{"type": "send_card", "card": {"title": "Version two"}}])
    flow_publish(flow=flow)

    assert send(live_trigger, delivery("after-publish")).status_code == 202

    invocation = Invocation.objects.get(flow_invocation_id="after-publish")
    assert invocation.version_number == 2
    assert invocation.definition["steps"][0]["card"]["title"] == "Version two"


def test_a_repeated_delivery_is_still_answered_as_a_duplicate(live_trigger: Trigger) -> None:
    repeat = send(live_trigger, delivery("first"))

    assert repeat.status_code == 200
    assert repeat.json() == {"status": "duplicate", "flowInvocationId": "first", "mode": "live"}
    assert Invocation.objects.filter(flow_invocation_id="first").count() == 1
    assert outcomes(live_trigger) == [("accepted", 202), ("duplicate", 200)]
