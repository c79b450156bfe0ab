"""Configuring webhook triggers over the API (SPEC sections 3 and 4), as an integration with a
`workbench` credential does: the resource, its actions, the request log, and who is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.models import Card, Flow, Invocation
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
from triggers.models import HeldState, Trigger, TriggerModeChange, WebhookRequest

pytestmark = pytest.mark.django_db

SAMPLE = delivery("sample-dlv")


def triggers_url(flow: Flow) -> str:
    return f"/api/v1/acme/flows/{flow.pk}/triggers"


def trigger_url(trigger: Trigger, action: str = "") -> str:
    return f"/api/v1/acme/triggers/{trigger.pk}" + (f"/{action}" if action else "")


@pytest.fixture
def member_call(django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """`member_call(session, method, url, body=None)`: a configuration call whose starts have run on return."""

    def call(session: Any, method: str, url: str, body: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return (
                getattr(session, method)(url, body, format="json")
                if body is not None
                else getattr(session, method)(url)
            )

    return call


def signed_headers(body: Any, secret: str = STRIPE_SECRET) -> dict[str, str]:
    return {"HTTP_STRIPE_SIGNATURE": stripe_header(as_bytes(body), int(time.time()), secret)}


# --- the resource -------------------------------------------------------------------------------


def test_creating_a_webhook_trigger_answers_201_with_its_absolute_url_in_test_mode(workbench_a, flow) -> None:
    response = workbench_a.post(
        triggers_url(flow),
        {"type": "webhook", "sample": SAMPLE, "mapping": STRUCTURED_MAPPING, "shapeCheck": True},
        format="json",
    )

    assert response.status_code == 201, response.json()
    created = response.json()
    trigger = Trigger.objects.get(pk=created["id"])
    assert created["url"] == f"http://testserver/hooks/{trigger.token}"
    assert len(trigger.token) >= 32
    assert {key: created[key] for key in ("flowId", "type", "mode", "pausedReason", "sample", "shapeCheck")} == {
        "flowId": flow.pk,
        "type": "webhook",
        "mode": "test",
        "pausedReason": None,
        "sample": SAMPLE,
        "shapeCheck": True,
    }
    assert created["mapping"]["structured"]["targetUserIds"] == "$.customer.id"
    assert created["security"] == {"allowedIps": [], "signature": None}


def test_two_triggers_get_different_urls(workbench_a, flow) -> None:
    first = workbench_a.post(triggers_url(flow), {"type": "webhook"}, format="json").json()
    second = workbench_a.post(triggers_url(flow), {"type": "webhook"}, format="json").json()

    assert first["url"] != second["url"]


def test_the_created_url_receives_requests(workbench_a, flow, post_hook, test_user) -> None:
    created = workbench_a.post(triggers_url(flow), {"type": "webhook"}, format="json").json()
    token = created["url"].rsplit("/", 1)[1]

    response = post_hook(token, {"targetUserIds": ["tester-1"]})

    assert response.status_code == 202


def test_only_webhook_triggers_are_created_here(workbench_a, flow) -> None:
    missing = workbench_a.post(triggers_url(flow), {}, format="json")
    other = workbench_a.post(triggers_url(flow), {"type": "segment"}, format="json")

    assert (missing.status_code, missing.json()["code"]) == (400, "invalid_request")
    assert "type" in missing.json()["errors"]
    assert other.status_code == 400
    assert not Trigger.objects.filter(type="webhook").exists()


def test_a_trigger_created_live_records_the_mode_change(workbench_a, flow) -> None:
    response = workbench_a.post(triggers_url(flow), {"type": "webhook", "mode": "live"}, format="json")

    assert response.json()["mode"] == "live"
    change = TriggerModeChange.objects.get(trigger_id=response.json()["id"])
    assert (change.from_mode, change.to_mode) == ("test", "live")


def test_the_flows_triggers_are_listed_with_its_api_trigger(workbench_a, flow, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.get(triggers_url(flow))

    assert response.status_code == 200
    listed = {item["type"]: item for item in response.json()}
    assert set(listed) == {"api", "webhook"}
    assert listed["webhook"]["id"] == trigger.pk
    assert listed["webhook"]["url"] == f"http://testserver/hooks/{trigger.token}"


def test_reading_a_trigger_shows_its_configuration(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE, security={"allowedIps": ["203.0.113.7"]})

    response = workbench_a.get(trigger_url(trigger))

    assert response.status_code == 200
    shown = response.json()
    assert (shown["id"], shown["mode"], shown["sample"]) == (trigger.pk, "test", SAMPLE)
    assert shown["security"] == {"allowedIps": ["203.0.113.7"], "signature": None}


def test_patch_changes_the_configuration(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.patch(
        trigger_url(trigger),
        {"mapping": STRUCTURED_MAPPING, "shapeCheck": True, "security": {"allowedIps": ["198.51.100.0/24"]}},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["shapeCheck"] is True
    trigger.refresh_from_db()
    assert trigger.config["mapping"]["type"] == "structured"
    assert trigger.config["security"]["allowedIps"] == ["198.51.100.0/24"]


def test_patching_one_field_keeps_the_others(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE, security={"allowedIps": ["203.0.113.7"]})

    workbench_a.patch(trigger_url(trigger), {"shapeCheck": True}, format="json")

    trigger.refresh_from_db()
    assert trigger.config["mapping"]["type"] == "structured"
    assert trigger.config["security"]["allowedIps"] == ["203.0.113.7"]
    assert trigger.sample == SAMPLE


def test_a_pasted_sample_replaces_the_old_one(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample={"old": 1})

    response = workbench_a.patch(trigger_url(trigger), {"sample": {"pasted": True}}, format="json")

    assert response.json()["sample"] == {"pasted": True}


def test_a_mode_change_is_recorded_with_when_and_by_whom(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()
    before = timezone.now()

    live = workbench_a.patch(trigger_url(trigger), {"mode": "live"}, format="json")
    disabled = workbench_a.patch(trigger_url(trigger), {"mode": "disabled"}, format="json")

    assert (live.json()["mode"], disabled.json()["mode"]) == ("live", "disabled")
    changes = list(trigger.mode_changes.order_by("changed_at", "id"))
    assert [(change.from_mode, change.to_mode) for change in changes] == [("test", "live"), ("live", "disabled")]
    assert all(before <= change.changed_at <= timezone.now() for change in changes)
    # An API credential acts for no member; the change is still recorded, by nobody in particular.
    assert all(change.changed_by is None for change in changes)


def test_a_mode_change_by_a_member_is_recorded_with_the_member(webhook_trigger, owner) -> None:
    trigger = webhook_trigger()

    services.trigger_mode_set(trigger=trigger, mode="live", by=owner)

    assert trigger.mode_changes.get().changed_by == owner


def test_setting_the_same_mode_records_nothing(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.patch(trigger_url(trigger), {"mode": "test"}, format="json")

    assert response.status_code == 200
    assert not trigger.mode_changes.exists()


def test_a_member_cannot_set_paused(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.patch(trigger_url(trigger), {"mode": "paused"}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert "mode" in response.json()["errors"]
    trigger.refresh_from_db()
    assert trigger.mode == "test"
    assert not trigger.mode_changes.exists()


def test_a_trigger_is_deleted_only_once_disabled(workbench_a, webhook_trigger, post_hook) -> None:
    trigger = webhook_trigger()
    post_hook(trigger, {"targetUserIds": []})

    refused = workbench_a.delete(trigger_url(trigger))
    workbench_a.patch(trigger_url(trigger), {"mode": "disabled"}, format="json")
    deleted = workbench_a.delete(trigger_url(trigger))

    assert (refused.status_code, refused.json()["code"]) == (409, "trigger_not_disabled")
    assert deleted.status_code == 204
    assert workbench_a.get(trigger_url(trigger)).status_code == 404
    assert post_hook(trigger, {"targetUserIds": []}).status_code == 404
    assert not WebhookRequest.objects.exists()


def test_the_api_trigger_cannot_be_deleted(workbench_a, flow) -> None:
    api_trigger = Trigger.objects.get(flow=flow, type="api")

    response = workbench_a.delete(trigger_url(api_trigger))

    assert response.status_code == 409
    assert Trigger.objects.filter(pk=api_trigger.pk).exists()


# --- validation ---------------------------------------------------------------------------------


INVALID = {
    "bad mapping": (
        {"mapping": {"type": "structured", "structured": {"targetUserIds": "customer.id", "bogus": "$.x"}}},
        {"mapping.structured.targetUserIds", "mapping.structured.bogus"},
    ),
    "unknown mapping type": ({"mapping": {"type": "magic"}}, {"mapping.type"}),
    "script without transform": ({"mapping": {"type": "script", "script": "function nope() {}"}}, {"mapping.script"}),
    "bad allowlist": (
        {"security": {"allowedIps": ["300.1.1.1", "203.0.113.7", "10.0.0.1/8"]}},
        {"security.allowedIps.0", "security.allowedIps.2"},
    ),
    "bad signature config": (
        {"security": {"signature": {**STRIPE_SIGNATURE, "algorithm": "md5", "secret": ""}}},
        {"security.signature.algorithm", "security.signature.secret"},
    ),
    "unknown security field": ({"security": {"allowedIps": [], "firewall": True}}, {"security"}),
    "unknown fields": ({"shapeCheck": True, "colour": "red", "token": "mine"}, {"colour", "token"}),
    "shape check not a boolean": ({"shapeCheck": "maybe"}, {"shapeCheck"}),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_configuration_is_refused_with_the_location_of_each_problem(workbench_a, webhook_trigger, case) -> None:
    trigger = webhook_trigger(sample=SAMPLE)
    config_before = dict(trigger.config)
    body, locations = INVALID[case]

    response = workbench_a.patch(trigger_url(trigger), body, format="json")

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert set(answer["errors"]) == locations
    trigger.refresh_from_db()
    assert (trigger.config, trigger.sample) == (config_before, SAMPLE)


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_configuration_creates_no_trigger(workbench_a, flow, case) -> None:
    body, locations = INVALID[case]

    response = workbench_a.post(triggers_url(flow), {"type": "webhook", **body}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == locations
    assert not Trigger.objects.filter(type="webhook").exists()


def test_a_sample_holding_a_nul_character_is_refused(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample=SAMPLE)

    response = workbench_a.patch(trigger_url(trigger), {"sample": {"name": "a\x00"}}, format="json")

    # The API's JSON parser refuses it before the trigger is looked at (the Workbench's
    # paste form is refused by the service, on "sample").
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    trigger.refresh_from_db()
    assert trigger.sample == SAMPLE


# --- the signature secret -----------------------------------------------------------------------


def test_the_signature_secret_is_never_returned(workbench_a, flow) -> None:
    created = workbench_a.post(
        triggers_url(flow), {"type": "webhook", "security": {"signature": STRIPE_SIGNATURE}}, format="json"
    )
    trigger_id = created.json()["id"]

    answers = [
        created,
        workbench_a.get(f"/api/v1/acme/triggers/{trigger_id}"),
        workbench_a.get(triggers_url(flow)),
        workbench_a.patch(f"/api/v1/acme/triggers/{trigger_id}", {"shapeCheck": True}, format="json"),
    ]

    for answer in answers:
        assert answer.status_code in (200, 201)
        assert STRIPE_SECRET not in answer.content.decode()
    assert created.json()["security"]["signature"]["secret"] == services.SECRET_MASK
    assert created.json()["security"]["signature"]["algorithm"] == "sha256"


def test_sending_the_mask_back_keeps_the_secret(workbench_a, webhook_trigger, post_hook, test_user) -> None:
    trigger = webhook_trigger(security={"signature": STRIPE_SIGNATURE})
    shown = workbench_a.get(trigger_url(trigger)).json()["security"]

    # The member changes the tolerance and sends the rest back as shown, mask included.
    shown["signature"]["toleranceSeconds"] = 600
    patched = workbench_a.patch(trigger_url(trigger), {"security": shown}, format="json")
    body = {"targetUserIds": ["tester-1"]}
    with_original = post_hook(trigger, body, **signed_headers(body))
    with_mask = post_hook(trigger, body, **signed_headers(body, secret=services.SECRET_MASK))

    assert patched.status_code == 200, patched.json()
    assert patched.json()["security"]["signature"]["toleranceSeconds"] == 600
    assert with_original.status_code == 202
    assert (with_mask.status_code, with_mask.json()["code"]) == (401, "signature_invalid")


def test_a_new_secret_replaces_the_old_one(workbench_a, webhook_trigger, post_hook, test_user) -> None:
    trigger = webhook_trigger(security={"signature": STRIPE_SIGNATURE})

    workbench_a.patch(
        trigger_url(trigger), {"security": {"signature": {**STRIPE_SIGNATURE, "secret": "whsec_new"}}}, format="json"
    )
    body = {"targetUserIds": ["tester-1"]}

    assert post_hook(trigger, body, **signed_headers(body)).status_code == 401
    assert post_hook(trigger, body, **signed_headers(body, secret="whsec_new")).status_code == 202


def test_the_mask_is_not_a_secret_when_none_was_saved(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.patch(
        trigger_url(trigger),
        {"security": {"signature": {**STRIPE_SIGNATURE, "secret": services.SECRET_MASK}}},
        format="json",
    )

    assert response.status_code == 400
    assert "security.signature.secret" in response.json()["errors"]
    trigger.refresh_from_db()
    assert trigger.config["security"]["signature"] is None


def test_removing_the_signature_lets_unsigned_requests_in(workbench_a, webhook_trigger, post_hook, test_user) -> None:
    trigger = webhook_trigger(security={"signature": STRIPE_SIGNATURE})

    workbench_a.patch(trigger_url(trigger), {"security": {"signature": None}}, format="json")

    assert post_hook(trigger, {"targetUserIds": ["tester-1"]}).status_code == 202


# --- capture, preview, mappable properties, send-test --------------------------------------------


def test_capture_sample_arms_the_trigger_for_15_minutes(workbench_a, webhook_trigger, post_hook) -> None:
    trigger = webhook_trigger()
    before = timezone.now()

    armed = workbench_a.post(trigger_url(trigger, "capture-sample"))
    captured = post_hook(trigger, SAMPLE)

    assert armed.status_code == 202
    assert armed.json()["status"] == "armed"
    until = Trigger.objects.get(pk=trigger.pk)
    assert until.capture_until is None  # disarmed by the capture
    assert captured.json() == {"status": "sample_captured"}
    assert workbench_a.get(trigger_url(trigger)).json()["sample"] == SAMPLE
    trigger.refresh_from_db()
    # The window it had: 15 minutes from when it was armed.
    services.trigger_capture_arm(trigger=trigger)
    assert timedelta(minutes=15) <= trigger.capture_until - before <= timedelta(minutes=15, seconds=5)


def test_capture_sample_shows_when_the_window_closes(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    workbench_a.post(trigger_url(trigger, "capture-sample"))

    assert workbench_a.get(trigger_url(trigger)).json()["captureArmedUntil"] is not None


def test_preview_maps_the_sample_with_the_saved_mapping_and_starts_nothing(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE)
    before = row_counts()

    response = workbench_a.post(trigger_url(trigger, "preview"), {}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "output": {"targetUserIds": ["tester-1"], "flowInvocationId": "sample-dlv", "variables": {"firstName": "Lars"}},
        "errors": [],
    }
    assert row_counts() == before
    assert not WebhookRequest.objects.exists()


def test_preview_maps_a_given_payload(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE)

    response = workbench_a.post(
        trigger_url(trigger, "preview"), {"payload": delivery("other", user_id="u-9")}, format="json"
    )

    assert response.json()["output"]["targetUserIds"] == ["u-9"]
    assert response.json()["errors"] == []


def test_preview_tries_an_unsaved_mapping_without_saving_it(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample=SAMPLE)
    unsaved = {
        "type": "structured",
        "structured": {"targetUserIds": "$.customer.id", "metadata": {"src": {"value": "x"}}},
    }

    response = workbench_a.post(trigger_url(trigger, "preview"), {"mapping": unsaved}, format="json")

    assert response.json() == {"output": {"targetUserIds": ["tester-1"], "metadata": {"src": "x"}}, "errors": []}
    trigger.refresh_from_db()
    assert trigger.config["mapping"] == {"type": "none"}


def test_preview_shows_the_errors_of_an_output_that_is_not_a_start_request(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample={"targetUserIds": [], "variables": []})

    response = workbench_a.post(trigger_url(trigger, "preview"), {}, format="json")

    assert response.status_code == 200
    assert response.json()["output"] == {"targetUserIds": [], "variables": []}
    assert response.json()["errors"]


def test_preview_shows_mapping_errors_without_output(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample={"nobody": True})

    response = workbench_a.post(trigger_url(trigger, "preview"), {}, format="json")

    assert response.json()["output"] is None
    assert any("$.customer.id" in error for error in response.json()["errors"])


def test_preview_of_an_invalid_unsaved_mapping_names_the_problem(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample=SAMPLE)

    response = workbench_a.post(trigger_url(trigger, "preview"), {"mapping": {"type": "magic"}}, format="json")

    assert response.json()["output"] is None
    assert response.json()["errors"]


def test_preview_without_a_sample_or_payload_says_so(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.post(trigger_url(trigger, "preview"), {}, format="json")

    assert response.status_code == 200
    assert response.json()["output"] is None
    assert "sample" in response.json()["errors"][0]


def test_mappable_properties_are_every_path_of_the_sample(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(sample={"customer": {"id": "u", "tags": ["a"]}, "total": 1})

    response = workbench_a.get(trigger_url(trigger, "mappable-properties"))

    assert response.json() == {
        "properties": ["$.customer", "$.customer.id", "$.customer.tags", "$.customer.tags[0]", "$.total"]
    }


def test_mappable_properties_without_a_sample_are_empty(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    assert workbench_a.get(trigger_url(trigger, "mappable-properties")).json() == {"properties": []}


def test_send_test_starts_a_test_invocation_from_the_sample(
    workbench_a, webhook_trigger, member_call, test_user
) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE, mode="live")

    response = member_call(workbench_a, "post", trigger_url(trigger, "send-test"))

    assert response.status_code == 202, response.json()
    assert (response.json()["status"], response.json()["mode"]) == ("accepted", "test")
    invocation = Invocation.objects.get()
    assert (invocation.mode, invocation.source, invocation.trigger_id) == ("test", "webhook", trigger.pk)
    [card] = Card.objects.filter(user_id="tester-1")
    assert (card.title, card.test) == ("Hello Lars", True)


def test_send_test_without_a_sample_answers_409_no_sample(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.post(trigger_url(trigger, "send-test"))

    assert (response.status_code, response.json()["code"]) == (409, "no_sample")
    assert not Invocation.objects.exists()


def test_send_test_with_a_sample_that_does_not_map_answers_422(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample={"nobody": True})

    response = workbench_a.post(trigger_url(trigger, "send-test"))

    assert (response.status_code, response.json()["code"]) == (422, "mapping_failed")


# --- pausing, reactivation, held requests --------------------------------------------------------


@pytest.fixture
def paused(webhook_trigger, post_hook, test_user) -> Trigger:
    """A live trigger that a shape mismatch paused, holding two requests."""
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=SAMPLE, shape_check=True, mode="live")
    post_hook(trigger, {**delivery("held-1"), "total": "twelve"})
    post_hook(trigger, delivery("held-2"))
    trigger.refresh_from_db()
    assert trigger.mode == "paused"
    return trigger


def test_a_paused_trigger_shows_why_and_how_many_requests_it_holds(workbench_a, paused) -> None:
    shown = workbench_a.get(trigger_url(paused)).json()

    assert shown["mode"] == "paused"
    assert "$.total" in shown["pausedReason"]
    assert shown["heldRequests"] == 2


def test_reactivate_returns_a_paused_trigger_to_the_mode_it_had(workbench_a, paused) -> None:
    response = workbench_a.post(trigger_url(paused, "reactivate"))

    assert response.status_code == 200
    assert (response.json()["mode"], response.json()["pausedReason"]) == ("live", None)
    assert [(c.from_mode, c.to_mode) for c in paused.mode_changes.order_by("changed_at", "id")] == [
        ("test", "live"),
        ("live", "paused"),
        ("paused", "live"),
    ]


def test_reactivate_answers_409_when_not_paused(workbench_a, webhook_trigger) -> None:
    trigger = webhook_trigger()

    response = workbench_a.post(trigger_url(trigger, "reactivate"))

    assert (response.status_code, response.json()["code"]) == (409, "trigger_not_paused")
    assert not trigger.mode_changes.exists()


def test_held_requests_replay_in_the_mode_the_trigger_had(workbench_a, paused, member_call) -> None:
    workbench_a.post(trigger_url(paused, "reactivate"))

    first = member_call(workbench_a, "post", trigger_url(paused, "held/replay"))
    second = member_call(workbench_a, "post", trigger_url(paused, "held/replay"))

    assert first.status_code == 200
    assert [(item["statusCode"], item["answer"]["mode"]) for item in first.json()["replayed"]] == [
        (202, "live"),
        (202, "live"),
    ]
    assert second.json() == {"replayed": []}
    assert sorted(Invocation.objects.values_list("flow_invocation_id", "mode")) == [
        ("held-1", "live"),
        ("held-2", "live"),
    ]
    assert Card.objects.filter(user_id="tester-1", test=False).count() == 2


def test_held_replay_while_paused_answers_409(workbench_a, paused) -> None:
    response = workbench_a.post(trigger_url(paused, "held/replay"))

    assert (response.status_code, response.json()["code"]) == (409, "trigger_paused")
    assert WebhookRequest.objects.filter(held_state=HeldState.HELD).count() == 2


def test_held_discard_marks_every_held_request_discarded(workbench_a, paused, member_call) -> None:
    workbench_a.post(trigger_url(paused, "reactivate"))

    discarded = workbench_a.post(trigger_url(paused, "held/discard"))
    replayed = member_call(workbench_a, "post", trigger_url(paused, "held/replay"))

    assert discarded.json() == {"discarded": 2}
    assert replayed.json() == {"replayed": []}
    assert not Invocation.objects.exists()
    assert [item["held"] for item in workbench_a.get(trigger_url(paused, "requests")).json()] == [
        "discarded",
        "discarded",
    ]


def test_a_held_request_replayed_alone_is_not_replayed_again_with_the_rest(workbench_a, paused, member_call) -> None:
    # A mapping without the delivery id: a second replay would be a second start.
    workbench_a.patch(
        trigger_url(paused),
        {"mapping": {"type": "structured", "structured": {"targetUserIds": "$.customer.id"}}},
        format="json",
    )
    workbench_a.post(trigger_url(paused, "reactivate"))
    oldest = WebhookRequest.objects.filter(trigger=paused).order_by("received_at", "id").first()
    assert oldest is not None

    alone = member_call(workbench_a, "post", trigger_url(paused, f"requests/{oldest.pk}/replay"))
    rest = member_call(workbench_a, "post", trigger_url(paused, "held/replay"))

    assert alone.status_code == 202
    assert len(rest.json()["replayed"]) == 1
    assert Invocation.objects.count() == 2
    assert not WebhookRequest.objects.filter(held_state=HeldState.HELD).exists()


# --- the request log ----------------------------------------------------------------------------


def test_the_request_log_lists_requests_newest_first(workbench_a, webhook_trigger, post_hook, test_user) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)
    post_hook(trigger, delivery("first"))
    post_hook(trigger, b"not json", remote_addr="198.51.100.4")
    post_hook(trigger, delivery("first"))

    response = workbench_a.get(trigger_url(trigger, "requests"))

    assert response.status_code == 200
    listed = response.json()
    assert [(e["outcome"], e["code"], e["flowInvocationId"]) for e in listed] == [
        ("duplicate", None, "first"),
        ("refused", "invalid_payload", None),
        ("accepted", None, "first"),
    ]
    assert listed[1]["sourceIp"] == "198.51.100.4"
    assert all({"id", "receivedAt", "sourceIp", "outcome", "code", "flowInvocationId"} <= set(e) for e in listed)


def test_a_logged_request_shows_its_headers_and_body(workbench_a, webhook_trigger, post_hook) -> None:
    trigger = webhook_trigger()
    post_hook(trigger, {"targetUserIds": []}, HTTP_X_SHOP_TOPIC="orders/create", HTTP_AUTHORIZATION="Bearer x")
    logged = WebhookRequest.objects.get()

    response = workbench_a.get(trigger_url(trigger, f"requests/{logged.pk}"))

    detail = response.json()
    assert detail["id"] == logged.pk
    assert detail["body"] == '{"targetUserIds": []}'
    assert detail["headers"]["x-shop-topic"] == "orders/create"
    assert "authorization" not in detail["headers"]
    assert detail["errors"]


def test_another_triggers_request_is_not_found_here(workbench_a, webhook_trigger, post_hook) -> None:
    mine, other = webhook_trigger(), webhook_trigger()
    post_hook(other, {})
    logged = WebhookRequest.objects.get()

    assert workbench_a.get(trigger_url(mine, f"requests/{logged.pk}")).status_code == 404
    assert workbench_a.post(trigger_url(mine, f"requests/{logged.pk}/replay")).status_code == 404


def test_a_refused_request_replays_through_the_current_mapping(
    workbench_a, webhook_trigger, post_hook, member_call, test_user
) -> None:
    trigger = webhook_trigger()  # mapping "none": a sender's own payload fails
    post_hook(trigger, delivery("fixed-later"))
    refused = WebhookRequest.objects.get()
    assert refused.code == "mapping_failed"

    workbench_a.patch(trigger_url(trigger), {"mapping": STRUCTURED_MAPPING}, format="json")
    replayed = member_call(workbench_a, "post", trigger_url(trigger, f"requests/{refused.pk}/replay"))

    assert replayed.status_code == 202
    assert replayed.json() == {"status": "accepted", "flowInvocationId": "fixed-later", "mode": "test"}
    assert Card.objects.filter(user_id="tester-1", title="Hello Lars").count() == 1
    newest = workbench_a.get(trigger_url(trigger, "requests")).json()[0]
    assert (newest["outcome"], newest["replayOf"], newest["flowInvocationId"]) == (
        "accepted",
        refused.pk,
        "fixed-later",
    )


def test_replaying_an_accepted_request_is_a_duplicate(workbench_a, webhook_trigger, post_hook, test_user) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)
    post_hook(trigger, delivery("once"))
    accepted = WebhookRequest.objects.get()

    replayed = workbench_a.post(trigger_url(trigger, f"requests/{accepted.pk}/replay"))

    assert (replayed.status_code, replayed.json()["status"]) == (200, "duplicate")
    assert Invocation.objects.count() == 1


def test_replaying_on_a_disabled_trigger_answers_409(workbench_a, webhook_trigger, post_hook) -> None:
    trigger = webhook_trigger()
    post_hook(trigger, {"targetUserIds": []})
    services.trigger_mode_set(trigger=trigger, mode="disabled")

    response = workbench_a.post(trigger_url(trigger, f"requests/{WebhookRequest.objects.get().pk}/replay"))

    assert (response.status_code, response.json()["code"]) == (409, "trigger_disabled")
    assert WebhookRequest.objects.count() == 1


# --- request log retention ----------------------------------------------------------------------


def test_pruning_keeps_held_requests_and_respects_each_environments_retention(
    webhook_trigger, post_hook, make_flow, env_b
) -> None:
    env_b.request_log_retention_days = 7
    env_b.save()
    trigger_a = webhook_trigger(sample={"a": 1}, shape_check=True)
    trigger_b = webhook_trigger(on_flow=make_flow(environment=env_b))
    post_hook(trigger_a, {"a": 1})  # refused: no targets
    post_hook(trigger_a, {"a": "x"})  # held
    post_hook(trigger_b, {"b": 1})
    now = timezone.now()

    after_8_days = services.request_log_prune(now=now + timedelta(days=8))
    b_left = WebhookRequest.objects.filter(trigger=trigger_b).count()
    after_29_days = services.request_log_prune(now=now + timedelta(days=29))
    after_31_days = services.request_log_prune(now=now + timedelta(days=31))
    after_a_year = services.request_log_prune(now=now + timedelta(days=365))

    assert (after_8_days.deleted, b_left) == (1, 0)
    assert after_29_days.deleted == 0
    assert after_31_days.deleted == 1
    assert after_a_year.deleted == 0
    [kept] = WebhookRequest.objects.all()
    assert (kept.trigger_id, kept.held_state) == (trigger_a.pk, HeldState.HELD)


def test_pruning_keeps_requests_within_the_retention(webhook_trigger, post_hook) -> None:
    trigger = webhook_trigger()
    post_hook(trigger, {})

    pruned = services.request_log_prune(now=timezone.now() + timedelta(days=29, hours=23))

    assert pruned.deleted == 0
    assert WebhookRequest.objects.count() == 1


# --- who may call -------------------------------------------------------------------------------


ENDPOINTS = [
    ("get", "flows/{flow}/triggers"),
    ("post", "flows/{flow}/triggers"),
    ("get", "triggers/{trigger}"),
    ("patch", "triggers/{trigger}"),
    ("delete", "triggers/{trigger}"),
    ("post", "triggers/{trigger}/capture-sample"),
    ("post", "triggers/{trigger}/preview"),
    ("get", "triggers/{trigger}/mappable-properties"),
    ("post", "triggers/{trigger}/send-test"),
    ("post", "triggers/{trigger}/reactivate"),
    ("get", "triggers/{trigger}/requests"),
    ("get", "triggers/{trigger}/requests/{request}"),
    ("post", "triggers/{trigger}/requests/{request}/replay"),
    ("post", "triggers/{trigger}/held/replay"),
    ("post", "triggers/{trigger}/held/discard"),
]
BODIES = {
    "post flows/{flow}/triggers": {"type": "webhook"},
    "patch triggers/{trigger}": {"mode": "disabled", "shapeCheck": False},
    "post triggers/{trigger}/preview": {"payload": {"a": 1}},
}


@pytest.fixture
def guarded(webhook_trigger, post_hook, test_user) -> tuple[Trigger, WebhookRequest]:
    """A paused trigger with a sample and a held request: every action would change something."""
    trigger = webhook_trigger(sample={"targetUserIds": ["tester-1"]}, shape_check=True)
    post_hook(trigger, {"targetUserIds": "tester-1"})
    trigger.refresh_from_db()
    assert trigger.mode == "paused"
    return trigger, WebhookRequest.objects.get()


def state_of(trigger: Trigger) -> Any:
    trigger = Trigger.objects.get(pk=trigger.pk)
    return (
        (trigger.mode, trigger.config, trigger.sample, trigger.capture_until, trigger.token),
        Trigger.objects.count(),
        TriggerModeChange.objects.count(),
        list(WebhookRequest.objects.values_list("id", "held_state")),
        row_counts(),
    )


def call(client: Any, method: str, path: str, trigger: Trigger, logged: WebhookRequest) -> Any:
    url = "/api/v1/acme/" + path.format(flow=trigger.flow_id, trigger=trigger.pk, request=logged.pk)
    body = BODIES.get(f"{method} {path}")
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_outsiders_credential_gets_404_and_changes_nothing(
    session_with, guarded, method, path, django_capture_on_commit_callbacks
) -> None:
    trigger, logged = guarded
    before = state_of(trigger)

    with django_capture_on_commit_callbacks(execute=True):
        response = call(session_with("outsider", "workbench"), method, path, trigger, logged)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert state_of(trigger) == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_events_credential_gets_403(api_client, env_a, guarded, method, path) -> None:
    trigger, logged = guarded
    before = state_of(trigger)

    response = call(api_client(env_a, "events").client, method, path, trigger, logged)

    assert response.status_code == 403
    assert state_of(trigger) == before


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid"])
def test_a_call_without_a_valid_token_gets_401(session_with, guarded, method, path, kind) -> None:
    trigger, logged = guarded
    before = state_of(trigger)

    response = call(session_with(kind, "workbench"), method, path, trigger, logged)

    assert response.status_code == 401
    assert state_of(trigger) == before


def test_an_outsider_cannot_reach_a_trigger_of_its_own_environment_through_ours(
    session_with, webhook_trigger, make_flow, env_b
) -> None:
    """The 404 is about the environment, not the id: B's own trigger is not found under A's path."""
    theirs = webhook_trigger(on_flow=make_flow(environment=env_b))
    outsider = session_with("outsider", "workbench")

    under_a = outsider.get(f"/api/v1/acme/triggers/{theirs.pk}")
    under_b = outsider.get(f"/api/v1/globex/triggers/{theirs.pk}")

    assert under_a.status_code == 404
    assert under_b.status_code == 200


def test_a_member_of_one_environment_cannot_reach_anothers_trigger_by_id(
    workbench_a, webhook_trigger, make_flow, env_b
) -> None:
    theirs = webhook_trigger(on_flow=make_flow(environment=env_b))

    assert workbench_a.get(f"/api/v1/acme/triggers/{theirs.pk}").status_code == 404
    assert (
        workbench_a.patch(f"/api/v1/acme/triggers/{theirs.pk}", {"mode": "disabled"}, format="json").status_code == 404
    )
    theirs.refresh_from_db()
    assert theirs.mode == "test"


def test_pruning_costs_the_same_however_many_triggers_share_a_retention(webhook_trigger, post_hook) -> None:
    def prune_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            pruned = services.request_log_prune(now=timezone.now() + timedelta(days=31))
        assert pruned.deleted > 0
        return len(queries.captured_queries)

    post_hook(webhook_trigger(), {})
    with_one_trigger = prune_queries()
    for _ in range(5):
        post_hook(webhook_trigger(), {})
    with_five_triggers = prune_queries()

    assert with_five_triggers == with_one_trigger
