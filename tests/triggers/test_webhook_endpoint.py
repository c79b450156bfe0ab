"""The webhook endpoint /hooks/{token} as a sender meets it (SPEC section 4).

Every answer with its code, in the documented order of checks, and the request-log entry
each one leaves: body size → token → sample capture → mode → IP allowlist → signature →
JSON → paused → shape check → mapping → start request → acceptance.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from flows.models import AnalyticsEvent, Card, FlowRun, Invocation
from tests.flows.conftest import row_counts
from tests.triggers.conftest import (
    STRIPE_SECRET,
    STRIPE_SIGNATURE,
    STRUCTURED_MAPPING,
    as_bytes,
    delivery,
    stripe_header,
)
from triggers import services
from triggers.models import HeldState, Trigger, TriggerMode, WebhookRequest

pytestmark = pytest.mark.django_db

ALLOWLIST = {"allowedIps": ["203.0.113.7", "198.51.100.0/24"]}
SIGNED = {"signature": STRIPE_SIGNATURE}
PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


def log_of(trigger: Trigger) -> list[WebhookRequest]:
    """The trigger's request log, newest first."""
    return list(WebhookRequest.objects.filter(trigger=trigger).order_by("-received_at", "-id"))


def last_logged(trigger: Trigger) -> WebhookRequest:
    return log_of(trigger)[0]


def signed(body: Any, timestamp: int | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    """The headers of a correctly signed request (Stripe style)."""
    return {"HTTP_STRIPE_SIGNATURE": stripe_header(as_bytes(body), timestamp or int(time.time()), secret)}


@pytest.fixture
def replay_held(django_capture_on_commit_callbacks):
    """POST held/replay as a member; the replayed starts' runs have executed on return."""

    def replay(session: Any, base: str) -> list[dict[str, Any]]:
        with django_capture_on_commit_callbacks(execute=True):
            response = session.post(f"{base}/held/replay")
        assert response.status_code == 200, response.json()
        return list(response.json()["replayed"])

    return replay


def cards_of(user_id: str) -> list[Card]:
    return list(Card.objects.filter(user_id=user_id).order_by("published_at", "id"))


# --- the endpoint itself ------------------------------------------------------------------------


def test_an_unknown_token_answers_404_json_and_logs_nothing(post_hook) -> None:
    response = post_hook("no-such-token", b"not even json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert WebhookRequest.objects.count() == 0


def test_get_answers_405_in_json(client, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = client.get(f"/hooks/{trigger.token}")

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "method_not_allowed"
    assert WebhookRequest.objects.count() == 0


def test_put_is_accepted_like_post(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)

    response = post_hook(trigger, delivery("by-put"), method="put")

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "flowInvocationId": "by-put", "mode": "test"}
    assert last_logged(trigger).method == "PUT"
    assert [card.title for card in cards_of("tester-1")] == ["Hello Lars"]


def test_an_oversized_body_is_refused_with_413_before_anything_else(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger()
    huge = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'

    known = post_hook(trigger, huge)
    unknown = post_hook("no-such-token", huge)

    assert (known.status_code, known.json()["code"]) == (413, "payload_too_large")
    assert (unknown.status_code, unknown.json()["code"]) == (413, "payload_too_large")
    assert WebhookRequest.objects.count() == 0


def test_a_body_of_exactly_one_mebibyte_is_read(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger()
    padding = 1024 * 1024 - len(b'{"x": ""}')
    body = b'{"x": "' + b"a" * padding + b'"}'
    assert len(body) == 1024 * 1024

    response = post_hook(trigger, body)

    # Read and refused by the mapping (no targets), not by the size guard.
    assert (response.status_code, response.json()["code"]) == (422, "mapping_failed")


# --- accepted starts ----------------------------------------------------------------------------


def test_a_start_request_body_is_accepted_in_test_mode_and_publishes_the_card(
    post_hook, webhook_trigger, test_user
) -> None:
    trigger = webhook_trigger()

    response = post_hook(trigger, {"targetUserIds": ["tester-1"], "variables": {"firstName": "Ada"}})

    assert response.status_code == 202
    answer = response.json()
    assert (answer["status"], answer["mode"]) == ("accepted", "test")
    invocation = Invocation.objects.get(flow_invocation_id=answer["flowInvocationId"])
    assert (invocation.mode, invocation.source, invocation.trigger_id) == ("test", "webhook", trigger.pk)
    [card] = cards_of("tester-1")
    assert (card.title, card.test, card.flow_invocation_id) == ("Hello Ada", True, answer["flowInvocationId"])
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code, entry.mode, entry.flow_invocation_id) == (
        "accepted",
        202,
        "",
        "test",
        answer["flowInvocationId"],
    )


def test_a_structured_mapping_publishes_the_card_to_the_mapped_user_with_its_variables(
    post_hook, webhook_trigger, test_user
) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)

    response = post_hook(trigger, delivery("dlv-42", first_name="Grace"))

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "flowInvocationId": "dlv-42", "mode": "test"}
    [card] = cards_of("tester-1")
    assert (card.title, card.test, card.flow_invocation_id) == ("Hello Grace", True, "dlv-42")
    assert FlowRun.objects.get().status == "completed"


def test_a_script_mapping_sees_body_headers_query_and_method(post_hook, webhook_trigger, test_user) -> None:
    script = """
    function transform(request) {
      return {
        targetUserIds: [request.query.user],
        flowInvocationId: request.headers["x-delivery-id"],
        variables: {firstName: request.body.name + " via " + request.method},
      };
    }
    """
    trigger = webhook_trigger(mapping={"type": "script", "script": script})

    response = post_hook(
        trigger, {"name": "Lars"}, method="put", query="user=nobody&user=tester-1", HTTP_X_DELIVERY_ID="hdr-7"
    )

    assert response.status_code == 202, response.json()
    assert response.json() == {"status": "accepted", "flowInvocationId": "hdr-7", "mode": "test"}
    assert [card.title for card in cards_of("tester-1")] == ["Hello Lars via PUT"]


def test_a_senders_retry_of_the_same_delivery_starts_once_and_answers_200_duplicate(
    post_hook, webhook_trigger, test_user
) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)

    first = post_hook(trigger, delivery("dlv-9"))
    retry = post_hook(trigger, delivery("dlv-9"))

    assert first.status_code == 202
    assert retry.status_code == 200
    assert retry.json() == {"status": "duplicate", "flowInvocationId": "dlv-9", "mode": "test"}
    assert Invocation.objects.count() == 1
    assert len(cards_of("tester-1")) == 1
    assert [(e.outcome, e.status_code) for e in log_of(trigger)] == [("duplicate", 200), ("accepted", 202)]
    received = AnalyticsEvent.objects.filter(name="webhook-received").order_by("id")
    assert [(event.flow_invocation_id, event.test, event.properties) for event in received] == [
        ("dlv-9", True, {"triggerId": trigger.pk, "outcome": "accepted"}),
        ("dlv-9", True, {"triggerId": trigger.pk, "outcome": "duplicate"}),
    ]


def test_test_mode_delivers_only_to_test_users(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger()

    response = post_hook(trigger, {"targetUserIds": ["tester-1", "customer-7"], "flowInvocationId": "t-1"})

    assert response.status_code == 202
    assert Invocation.objects.get().ignored_user_ids == ["customer-7"]
    assert cards_of("customer-7") == []
    assert len(cards_of("tester-1")) == 1
    assert not Customer.objects.filter(user_id="customer-7").exists()


def test_live_mode_starts_a_live_invocation_of_the_published_flow(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, mode="live")

    response = post_hook(trigger, delivery("live-1", user_id="customer-7"))

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "flowInvocationId": "live-1", "mode": "live"}
    [card] = cards_of("customer-7")
    assert (card.title, card.test) == ("Hello Lars", False)
    assert Customer.objects.filter(user_id="customer-7").exists()


def test_live_mode_on_an_unpublished_flow_answers_409_and_starts_nothing(
    post_hook, webhook_trigger, draft_flow
) -> None:
    # Members can no longer switch it so (409 flow_not_published); a trigger made live before
    # that rule, or by hand in the database, is still refused at the door.
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, on_flow=draft_flow)
    Trigger.objects.filter(pk=trigger.pk).update(mode="live")
    before = row_counts()

    response = post_hook(trigger, delivery("live-2", user_id="customer-7"))

    assert response.status_code == 409
    assert response.json()["code"] == "flow_not_published"
    assert row_counts() == before
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code) == ("refused", 409, "flow_not_published")


def test_test_mode_on_an_unpublished_flow_uses_the_draft(post_hook, webhook_trigger, draft_flow, test_user) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]})

    assert response.status_code == 202
    assert [card.title for card in cards_of("tester-1")] == ["Hello there"]


# --- refusals and their log entries -------------------------------------------------------------


def test_a_body_that_is_not_json_answers_400_invalid_payload(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = post_hook(trigger, b"customer=7&name=Lars", content_type="application/x-www-form-urlencoded")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_payload")
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code, entry.body) == (
        "refused",
        400,
        "invalid_payload",
        "customer=7&name=Lars",
    )


def test_a_mapping_that_finds_no_target_answers_422_mapping_failed_with_its_errors(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)
    before = row_counts()

    response = post_hook(trigger, {"delivery": {"id": "d"}, "someone": "else"})

    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "mapping_failed"
    assert "$.customer.id" in " ".join(answer["errors"]["mapping"])
    assert row_counts() == before
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code) == ("refused", 422, "mapping_failed")
    assert entry.errors == answer["errors"]


def test_a_mapped_output_that_is_not_a_valid_start_request_answers_422_with_the_errors(
    post_hook, webhook_trigger
) -> None:
    trigger = webhook_trigger()  # mapping "none": the body must be a start request
    before = row_counts()

    response = post_hook(trigger, {"targetUserIds": [], "variables": "not an object"})

    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "mapping_failed"
    assert answer["errors"]
    assert row_counts() == before


def test_missing_required_variables_answer_422_mapping_failed(post_hook, webhook_trigger, make_flow) -> None:
    strict = make_flow(name="Needs a name", variables=[{"name": "firstName", "default": None, "required": True}])
    trigger = webhook_trigger(on_flow=strict)

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]})

    assert response.status_code == 422
    assert response.json()["code"] == "mapping_failed"
    assert "firstName" in str(response.json()["errors"])


def test_a_disabled_trigger_answers_403_and_starts_nothing(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(mode="disabled")

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]})

    assert (response.status_code, response.json()["code"]) == (403, "trigger_disabled")
    assert Invocation.objects.count() == 0
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code) == ("refused", 403, "trigger_disabled")


def test_a_script_with_an_endless_loop_answers_422_quickly_and_the_next_request_is_served(
    post_hook, webhook_trigger, test_user
) -> None:
    script = """
    function transform(request) {
      if (request.body.loop) { while (true) {} }
      return {targetUserIds: [request.body.user]};
    }
    """
    trigger = webhook_trigger(mapping={"type": "script", "script": script})

    started = time.monotonic()
    looping = post_hook(trigger, {"loop": True, "user": "tester-1"})
    elapsed = time.monotonic() - started
    following = post_hook(trigger, {"loop": False, "user": "tester-1"})

    assert (looping.status_code, looping.json()["code"]) == (422, "mapping_failed")
    assert elapsed < 2
    assert following.status_code == 202
    assert len(cards_of("tester-1")) == 1


def test_the_request_log_keeps_selected_headers_but_never_credentials(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger()

    post_hook(
        trigger,
        {"targetUserIds": []},
        query="source=shop",
        HTTP_X_DELIVERY_ID="dlv-1",
        HTTP_USER_AGENT="Shop-Hooks/1.0",
        HTTP_AUTHORIZATION="Bearer sender-secret",
        HTTP_COOKIE="session=abc",
        HTTP_PROXY_AUTHORIZATION="Basic cHJveHk6c2VjcmV0",
    )

    entry = last_logged(trigger)
    assert entry.headers["x-delivery-id"] == "dlv-1"
    assert entry.headers["user-agent"] == "Shop-Hooks/1.0"
    assert {"authorization", "cookie", "proxy-authorization"}.isdisjoint(entry.headers)
    assert "sender-secret" not in str(entry.headers)
    assert (entry.query, entry.body, entry.source_ip) == ({"source": "shop"}, '{"targetUserIds": []}', "203.0.113.7")


def test_a_body_holding_a_nul_character_is_refused_as_invalid_payload(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger()
    services.trigger_capture_arm(trigger=trigger)

    while_armed = post_hook(trigger, b'{"targetUserIds": ["tester-1"], "variables": {"firstName": "a\\u0000"}}')
    raw_nul = post_hook(trigger, b'{"targetUserIds": ["tester-1"], "x": "\x00"}')

    assert (while_armed.status_code, while_armed.json()["code"]) == (400, "invalid_payload")
    assert (raw_nul.status_code, raw_nul.json()["code"]) == (400, "invalid_payload")
    trigger.refresh_from_db()
    assert (trigger.sample, trigger.capture_until is not None) == (None, True)
    assert "\x00" not in last_logged(trigger).body


def test_an_escaped_backslash_before_u0000_is_not_a_nul(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger()

    response = post_hook(trigger, b'{"targetUserIds": ["tester-1"], "variables": {"firstName": "C:\\\\u0000"}}')

    assert response.status_code == 202
    assert [card.title for card in cards_of("tester-1")] == ["Hello C:\\u0000"]


def test_a_script_that_returns_a_nul_character_answers_422(post_hook, webhook_trigger, test_user) -> None:
    script = "function transform(r) { return {targetUserIds: ['tester-1'], variables: {firstName: 'a\\u0000'}}; }"
    trigger = webhook_trigger(mapping={"type": "script", "script": script})

    response = post_hook(trigger, {})

    assert (response.status_code, response.json()["code"]) == (422, "mapping_failed")
    assert Invocation.objects.count() == 0


def test_a_backtracking_script_answers_422_within_the_limit_is_logged_and_the_next_request_starts(
    post_hook, webhook_trigger, test_user
) -> None:
    script = (
        "function transform(r) { /^(\\w+\\s?)*$/.test(r.body.name); "
        "return {targetUserIds: [r.body.id], flowInvocationId: r.body.name}; }"
    )
    trigger = webhook_trigger(mapping={"type": "script", "script": script})

    started = time.monotonic()
    stuck = post_hook(trigger, {"id": test_user.user_id, "name": "a" * 40 + "!"})
    elapsed = time.monotonic() - started
    next_one = post_hook(trigger, {"id": test_user.user_id, "name": "ada"})

    assert (stuck.status_code, stuck.json()["code"]) == (422, "mapping_failed")
    assert stuck.json()["errors"] == {"mapping": ["The script ran longer than 100 ms."]}
    assert elapsed < 2
    assert next_one.status_code == 202
    assert [(entry.status_code, entry.code) for entry in log_of(trigger)] == [(202, ""), (422, "mapping_failed")]


def test_a_lone_surrogate_sent_to_a_script_mapped_trigger_is_400_and_logged(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping={"type": "script", "script": "function transform(r) { return r.body.x.length; }"})

    response = post_hook(trigger, b'{"x":"\\ud800"}')

    assert (response.status_code, response.json()["code"]) == (400, "invalid_payload")
    assert (last_logged(trigger).status_code, last_logged(trigger).body) == (400, '{"x":"\\ud800"}')


# --- the order of checks ------------------------------------------------------------------------


def test_a_disabled_trigger_with_a_bad_signature_answers_trigger_disabled(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED, mode="disabled")

    response = post_hook(trigger, b"not json", HTTP_STRIPE_SIGNATURE="t=1,v1=00")

    assert (response.status_code, response.json()["code"]) == (403, "trigger_disabled")


def test_a_disabled_trigger_called_from_a_refused_address_answers_trigger_disabled(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=ALLOWLIST, mode="disabled")

    response = post_hook(trigger, {}, remote_addr="192.0.2.1")

    assert (response.status_code, response.json()["code"]) == (403, "trigger_disabled")


def test_a_refused_address_with_a_bad_signature_answers_ip_not_allowed(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security={**ALLOWLIST, **SIGNED})

    response = post_hook(trigger, b"not json", remote_addr="192.0.2.1", HTTP_STRIPE_SIGNATURE="garbage")

    assert (response.status_code, response.json()["code"]) == (403, "ip_not_allowed")


def test_a_bad_signature_on_a_body_that_is_not_json_answers_401(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)

    response = post_hook(trigger, b"not json", HTTP_STRIPE_SIGNATURE="t=1,v1=00")

    assert (response.status_code, response.json()["code"]) == (401, "signature_invalid")
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code) == ("refused", 401, "signature_invalid")


def test_a_well_signed_body_that_is_not_json_answers_400(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)

    response = post_hook(trigger, b"not json", **signed(b"not json"))

    assert (response.status_code, response.json()["code"]) == (400, "invalid_payload")


# --- IP allowlist and trusted proxies -----------------------------------------------------------


@pytest.mark.parametrize("address", ["203.0.113.7", "198.51.100.0", "198.51.100.42", "198.51.100.255"])
def test_addresses_and_cidr_ranges_on_the_allowlist_get_in(post_hook, webhook_trigger, test_user, address) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]}, remote_addr=address)

    assert response.status_code == 202
    assert last_logged(trigger).source_ip == address


@pytest.mark.parametrize("address", ["203.0.113.8", "198.51.101.1", "192.0.2.1", "2001:db8::1"])
def test_addresses_outside_the_allowlist_answer_403_ip_not_allowed(post_hook, webhook_trigger, address) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]}, remote_addr=address)

    assert (response.status_code, response.json()["code"]) == (403, "ip_not_allowed")
    assert Invocation.objects.count() == 0
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code, entry.source_ip) == (
        "refused",
        403,
        "ip_not_allowed",
        address,
    )


def test_an_empty_allowlist_lets_every_address_in(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(security={"allowedIps": []})

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]}, remote_addr="192.0.2.1")

    assert response.status_code == 202


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_the_forwarded_client_behind_a_trusted_proxy_is_checked(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    allowed = post_hook(
        trigger, {"targetUserIds": ["tester-1"]}, remote_addr="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.9"
    )
    refused = post_hook(
        trigger, {"targetUserIds": ["tester-1"]}, remote_addr="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1"
    )

    assert allowed.status_code == 202
    assert (refused.status_code, refused.json()["code"]) == (403, "ip_not_allowed")
    assert [entry.source_ip for entry in log_of(trigger)] == ["192.0.2.1", "198.51.100.9"]


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_a_forged_forwarded_for_from_an_untrusted_peer_gets_nothing(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    response = post_hook(
        trigger, {"targetUserIds": ["tester-1"]}, remote_addr="192.0.2.66", HTTP_X_FORWARDED_FOR="198.51.100.9"
    )

    assert (response.status_code, response.json()["code"]) == (403, "ip_not_allowed")
    assert last_logged(trigger).source_ip == "192.0.2.66"
    assert Invocation.objects.count() == 0


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_a_hop_the_client_wrote_left_of_the_proxys_own_is_not_believed(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    # The client sent "X-Forwarded-For: 198.51.100.9"; the trusted proxy appended the peer it saw.
    response = post_hook(
        trigger,
        {"targetUserIds": ["tester-1"]},
        remote_addr="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.9, 192.0.2.66",
    )

    assert (response.status_code, response.json()["code"]) == (403, "ip_not_allowed")
    assert last_logged(trigger).source_ip == "192.0.2.66"


def test_without_trusted_proxies_forwarded_for_is_ignored(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=ALLOWLIST)

    with override_settings(TRUSTED_PROXIES=[]):
        response = post_hook(
            trigger, {"targetUserIds": ["tester-1"]}, remote_addr="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7"
        )

    assert (response.status_code, response.json()["code"]) == (403, "ip_not_allowed")
    assert last_logged(trigger).source_ip == "10.0.0.2"


# --- signatures ---------------------------------------------------------------------------------


def test_a_stripe_style_signed_request_is_accepted(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, security=SIGNED)
    body = as_bytes(delivery("signed-1"))

    response = post_hook(trigger, body, **signed(body))

    assert response.status_code == 202
    assert response.json()["flowInvocationId"] == "signed-1"
    assert len(cards_of("tester-1")) == 1


def test_the_signature_header_name_is_matched_case_insensitively(post_hook, webhook_trigger, test_user) -> None:
    locations = {
        "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
        "timestamp": {"header": "STRIPE-SIGNATURE", "parsePrefix": "t="},
    }
    config = {**STRIPE_SIGNATURE, "data": locations}
    trigger = webhook_trigger(security={"signature": config})
    body = b'{"targetUserIds": ["tester-1"]}'

    response = post_hook(trigger, body, **signed(body))

    assert response.status_code == 202


def stale(body: bytes) -> dict[str, str]:
    return signed(body, timestamp=int(time.time()) - 301 - 60)


def future(body: bytes) -> dict[str, str]:
    return signed(body, timestamp=int(time.time()) + 301 + 60)


REFUSED_SIGNATURES = {
    "tampered body": lambda body: signed(body.replace(b"tester-1", b"tester-2")),
    "wrong secret": lambda body: signed(body, secret="whsec_someone_else"),
    "stale timestamp": stale,
    "timestamp from the future": future,
    "missing header": lambda body: {},
    "garbage header": lambda body: {"HTTP_STRIPE_SIGNATURE": "garbage"},
    "empty header": lambda body: {"HTTP_STRIPE_SIGNATURE": ""},
    "no signature part": lambda body: {"HTTP_STRIPE_SIGNATURE": f"t={int(time.time())}"},
    "no timestamp part": lambda body: {"HTTP_STRIPE_SIGNATURE": "v1=" + "ab" * 32},
    "timestamp not a number": lambda body: {"HTTP_STRIPE_SIGNATURE": "t=yesterday,v1=" + "ab" * 32},
    "signature not hex": lambda body: {"HTTP_STRIPE_SIGNATURE": f"t={int(time.time())},v1=zz%%ÿ"},
    "huge timestamp": lambda body: {"HTTP_STRIPE_SIGNATURE": "t=" + "9" * 400 + ",v1=00"},
    "many signatures": lambda body: {"HTTP_STRIPE_SIGNATURE": f"t={int(time.time())}," + ",".join(["v1=00"] * 500)},
    "signature in another header": lambda body: {
        "HTTP_X_SIGNATURE": signed(body)["HTTP_STRIPE_SIGNATURE"],
    },
}


@pytest.mark.parametrize("case", list(REFUSED_SIGNATURES))
def test_a_request_not_signed_as_configured_answers_401_signature_invalid(
    post_hook, webhook_trigger, test_user, case
) -> None:
    trigger = webhook_trigger(security=SIGNED)
    body = b'{"targetUserIds": ["tester-1"]}'

    response = post_hook(trigger, body, **REFUSED_SIGNATURES[case](body))

    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert Invocation.objects.count() == 0
    assert STRIPE_SECRET not in response.content.decode()
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.code) == ("refused", 401, "signature_invalid")


def test_a_header_with_two_signatures_passes_when_either_is_valid(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(security=SIGNED)
    body = b'{"targetUserIds": ["tester-1"]}'
    now = int(time.time())
    old_secret = stripe_header(body, now, "whsec_retired").split("v1=")[1]
    new_secret = stripe_header(body, now).split("v1=")[1]

    new_first = post_hook(trigger, body, HTTP_STRIPE_SIGNATURE=f"t={now},v1={new_secret},v1={old_secret}")
    new_last = post_hook(trigger, body, HTTP_STRIPE_SIGNATURE=f"t={now},v1={old_secret},v1={new_secret}")
    neither = post_hook(trigger, body, HTTP_STRIPE_SIGNATURE=f"t={now},v1={old_secret},v1={'0' * 64}")

    assert (new_first.status_code, new_last.status_code) == (202, 202)
    assert (neither.status_code, neither.json()["code"]) == (401, "signature_invalid")


def test_a_timestamp_within_the_tolerance_passes(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(security=SIGNED)
    body = b'{"targetUserIds": ["tester-1"]}'

    response = post_hook(trigger, body, **signed(body, timestamp=int(time.time()) - 240))

    assert response.status_code == 202


def test_the_tolerance_is_judged_against_the_current_time(post_hook, webhook_trigger, test_user) -> None:
    trigger = webhook_trigger(security=SIGNED)
    body = b'{"targetUserIds": ["tester-1"]}'
    headers = signed(body, timestamp=1_700_000_000)

    with mock.patch("triggers.intake.time.time", return_value=1_700_000_000 + 299):
        in_time = post_hook(trigger, body, **headers)
    with mock.patch("triggers.intake.time.time", return_value=1_700_000_000 + 301):
        too_late = post_hook(trigger, body, **headers)

    assert in_time.status_code == 202
    assert (too_late.status_code, too_late.json()["code"]) == (401, "signature_invalid")


# --- sample capture -----------------------------------------------------------------------------


def test_an_armed_trigger_captures_the_next_request_unchecked_and_starts_nothing(
    post_hook, webhook_trigger, test_user
) -> None:
    trigger = webhook_trigger(security={**ALLOWLIST, **SIGNED})
    services.trigger_capture_arm(trigger=trigger)
    before = row_counts()

    response = post_hook(trigger, delivery("sample-1"), remote_addr="192.0.2.1")

    assert response.status_code == 202
    assert response.json() == {"status": "sample_captured"}
    assert row_counts() == before
    trigger.refresh_from_db()
    assert trigger.sample == delivery("sample-1")
    assert trigger.capture_until is None
    entry = last_logged(trigger)
    assert (entry.outcome, entry.status_code, entry.source_ip) == ("sample_captured", 202, "192.0.2.1")


def test_capture_disarms_after_one_request(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)
    services.trigger_capture_arm(trigger=trigger)

    post_hook(trigger, delivery("sample-1"))
    second = post_hook(trigger, delivery("sample-2"))

    assert (second.status_code, second.json()["code"]) == (401, "signature_invalid")
    trigger.refresh_from_db()
    assert trigger.sample == delivery("sample-1")


def test_capture_takes_precedence_over_a_disabled_mode(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(mode="disabled")
    services.trigger_capture_arm(trigger=trigger)

    response = post_hook(trigger, {"any": "shape"})

    assert response.json() == {"status": "sample_captured"}
    trigger.refresh_from_db()
    assert trigger.sample == {"any": "shape"}


def test_a_body_that_is_not_json_keeps_capture_armed(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)
    services.trigger_capture_arm(trigger=trigger)

    refused = post_hook(trigger, b"<xml/>", content_type="application/xml")
    captured = post_hook(trigger, {"now": "json"})

    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_payload")
    assert captured.json() == {"status": "sample_captured"}
    trigger.refresh_from_db()
    assert trigger.sample == {"now": "json"}
    assert [entry.outcome for entry in log_of(trigger)] == ["sample_captured", "refused"]


def test_a_capture_armed_more_than_15_minutes_ago_is_ignored(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(minutes=15, seconds=1)):
        services.trigger_capture_arm(trigger=trigger)

    response = post_hook(trigger, {"late": True})

    assert (response.status_code, response.json()["code"]) == (401, "signature_invalid")
    trigger.refresh_from_db()
    assert trigger.sample is None


def test_a_capture_armed_14_minutes_ago_still_captures(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED)
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(minutes=14)):
        services.trigger_capture_arm(trigger=trigger)

    response = post_hook(trigger, {"in": "time"})

    assert response.json() == {"status": "sample_captured"}


# --- shape check, auto-pause and held requests ---------------------------------------------------


@pytest.fixture
def shape_checked(webhook_trigger, test_user) -> Trigger:
    return webhook_trigger(mapping=STRUCTURED_MAPPING, sample=delivery("sample"), shape_check=True)


def test_a_request_shaped_like_the_sample_is_accepted(post_hook, shape_checked) -> None:
    response = post_hook(shape_checked, {**delivery("d-1"), "extra": {"fields": "are fine"}, "total": 3})

    assert response.status_code == 202
    shape_checked.refresh_from_db()
    assert shape_checked.mode == "test"


def test_a_shape_mismatch_pauses_the_trigger_and_holds_the_request(post_hook, shape_checked) -> None:
    before = row_counts()

    response = post_hook(shape_checked, {**delivery("d-1"), "total": "12.50"})

    assert response.status_code == 202
    assert response.json() == {"status": "held"}
    shape_checked.refresh_from_db()
    assert shape_checked.mode == TriggerMode.PAUSED
    assert "$.total" in shape_checked.paused_reason
    assert shape_checked.mode_before_pause == "test"
    entry = last_logged(shape_checked)
    assert (entry.outcome, entry.status_code, entry.held_state) == ("held", 202, HeldState.HELD)
    assert Invocation.objects.count() == 0
    [paused] = AnalyticsEvent.objects.filter(name="trigger-paused")
    assert (paused.flow_id, paused.test) == (shape_checked.flow_id, True)
    assert paused.properties["triggerId"] == shape_checked.pk
    assert row_counts() == {**before, "AnalyticsEvent": before["AnalyticsEvent"] + 1}
    change = shape_checked.mode_changes.get()
    assert (change.from_mode, change.to_mode, change.changed_by) == ("test", "paused", None)


def test_a_missing_field_is_a_shape_mismatch(post_hook, shape_checked) -> None:
    body = delivery("d-1")
    del body["customer"]["first_name"]

    response = post_hook(shape_checked, body)

    assert response.json() == {"status": "held"}


def test_null_matches_any_type_in_the_shape_check(post_hook, shape_checked) -> None:
    response = post_hook(shape_checked, {**delivery("d-1"), "total": None})

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"


def test_every_request_while_paused_is_held_even_a_well_shaped_one(post_hook, shape_checked) -> None:
    post_hook(shape_checked, {**delivery("d-1"), "total": "12.50"})

    later = post_hook(shape_checked, delivery("d-2"))
    unmappable = post_hook(shape_checked, {"nothing": "mappable"})

    assert (later.status_code, later.json()) == (202, {"status": "held"})
    assert unmappable.json() == {"status": "held"}
    assert Invocation.objects.count() == 0
    assert WebhookRequest.objects.filter(held_state=HeldState.HELD).count() == 3
    assert AnalyticsEvent.objects.filter(name="trigger-paused").count() == 1


def test_a_paused_trigger_still_checks_signatures_and_json(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger(security=SIGNED, sample={"a": 1}, shape_check=True)
    services.trigger_pause(trigger=trigger, reason="testing")

    unsigned = post_hook(trigger, {"a": 1})
    not_json = post_hook(trigger, b"nope", **signed(b"nope"))

    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "signature_invalid")
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_payload")
    assert not WebhookRequest.objects.filter(held_state=HeldState.HELD).exists()


def test_after_reactivation_held_requests_are_replayed_exactly_once(
    post_hook, shape_checked, workbench_a, replay_held
) -> None:
    post_hook(shape_checked, {**delivery("d-1"), "total": "12.50"})
    post_hook(shape_checked, delivery("d-2"))
    base = f"/api/v1/acme/triggers/{shape_checked.pk}"

    while_paused = workbench_a.post(f"{base}/held/replay")
    reactivated = workbench_a.post(f"{base}/reactivate")
    first = replay_held(workbench_a, base)
    second = replay_held(workbench_a, base)

    assert (while_paused.status_code, while_paused.json()["code"]) == (409, "trigger_paused")
    assert (reactivated.status_code, reactivated.json()["mode"]) == (200, "test")
    assert [(item["statusCode"], item["answer"]["flowInvocationId"]) for item in first] == [(202, "d-1"), (202, "d-2")]
    assert second == []
    assert sorted(Invocation.objects.values_list("flow_invocation_id", flat=True)) == ["d-1", "d-2"]
    assert len(cards_of("tester-1")) == 2
    assert not WebhookRequest.objects.filter(held_state=HeldState.HELD).exists()
    assert WebhookRequest.objects.filter(held_state=HeldState.REPLAYED).count() == 2
    assert WebhookRequest.objects.filter(replay_of__isnull=False, outcome="accepted").count() == 2


def test_discarded_held_requests_stay_in_the_log_and_are_never_replayed(
    post_hook, shape_checked, workbench_a, replay_held
) -> None:
    post_hook(shape_checked, {**delivery("d-1"), "total": "12.50"})
    post_hook(shape_checked, delivery("d-2"))
    base = f"/api/v1/acme/triggers/{shape_checked.pk}"
    workbench_a.post(f"{base}/reactivate")

    discarded = workbench_a.post(f"{base}/held/discard")
    replayed = replay_held(workbench_a, base)

    assert discarded.json() == {"discarded": 2}
    assert replayed == []
    assert Invocation.objects.count() == 0
    assert [entry.held_state for entry in log_of(shape_checked)] == [HeldState.DISCARDED, HeldState.DISCARDED]


def test_a_request_arriving_after_another_process_paused_the_trigger_is_held(post_hook, webhook_trigger) -> None:
    trigger = webhook_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(mode=TriggerMode.PAUSED, mode_before_pause="test")

    response = post_hook(trigger, {"targetUserIds": ["tester-1"]})

    assert response.json() == {"status": "held"}
    assert last_logged(trigger).held_state == HeldState.HELD


# --- the hot path ------------------------------------------------------------------------------


def test_an_accepted_webhook_is_one_read_and_one_write_on_postgresql(
    post_hook, webhook_trigger, test_user, django_capture_on_commit_callbacks
) -> None:
    """The trigger is read with its flow in one statement; the invocation and the request's log
    entry are written in one, and the `webhook-received` event by the fan-out. (A failing write
    falls back to slower paths that answer the same, so only the count shows that the fast one
    was taken.)"""
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, security=SIGNED, mode="live")
    body = as_bytes(delivery("hot-1"))

    with django_capture_on_commit_callbacks(execute=False) as fan_outs:
        with CaptureQueriesContext(connection) as queries:
            response = Client().post(
                f"/hooks/{trigger.token}", data=body, content_type="application/json", **signed(body)
            )
        assert response.status_code == 202
        if connection.vendor == "postgresql":  # elsewhere the write is the ORM's, a statement a row
            assert len(statements(queries)) == 2, statements(queries)
        assert last_logged(trigger).outcome == "accepted"
        assert Invocation.objects.get(flow_invocation_id="hot-1").target_user_ids == ["tester-1"]
        assert not AnalyticsEvent.objects.filter(name="webhook-received").exists()
    for fan_out in fan_outs:
        fan_out()

    event = AnalyticsEvent.objects.get(name="webhook-received", flow_invocation_id="hot-1")
    invocation = Invocation.objects.get(flow_invocation_id="hot-1")
    assert (event.user_id, event.test, event.flow_id) == ("", False, trigger.flow_id)
    assert event.properties == {"triggerId": trigger.pk, "outcome": "accepted"}
    assert event.occurred_at == invocation.created_at


def test_a_webhook_reads_its_triggers_sample_only_for_a_shape_check(
    webhook_trigger, test_user, django_capture_on_commit_callbacks
) -> None:
    """A captured sample can be large: only a shape-checked trigger's requests read it."""
    plain = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=delivery("sample"))
    checked = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=delivery("sample"), shape_check=True)
    mismatched = delivery("c-1")
    del mismatched["customer"]["first_name"]

    def request_statements(trigger: Trigger, body: Any) -> tuple[Any, list[str]]:
        with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
            response = Client().post(f"/hooks/{trigger.token}", data=as_bytes(body), content_type="application/json")
        return response, statements(queries)

    plain_answer, plain_statements = request_statements(plain, delivery("p-1"))
    checked_answer, checked_statements = request_statements(checked, mismatched)

    sample_column = connection.ops.quote_name("sample")
    assert plain_answer.json()["status"] == "accepted"
    assert not [sql for sql in plain_statements if sample_column in sql]
    assert checked_answer.json()["status"] == "held"  # the sample was read and compared
    assert [sql for sql in checked_statements if sample_column in sql]


def statements(queries: CaptureQueriesContext) -> list[str]:
    """What the request ran, without the savepoint around its write (a test runs in a
    transaction; a server's request does not)."""
    return [str(query["sql"]) for query in queries if "SAVEPOINT" not in str(query["sql"])]
