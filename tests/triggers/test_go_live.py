"""Safe go-live (SPEC section 4, "Modes"), trigger names and fresh test sends, over the
configuration API and the services: a trigger goes live only on a published flow that is
not archived; a marketer names their triggers; every test send is a new test."""

from __future__ import annotations

import pytest

from flows.models import Invocation
from flows.services import flow_archive, flow_publish
from tests.triggers.conftest import STRUCTURED_MAPPING, delivery
from triggers import services
from triggers.models import Trigger, TriggerModeChange

pytestmark = pytest.mark.django_db


def triggers_url(flow) -> str:
    return f"/api/v1/acme/flows/{flow.pk}/triggers"


def trigger_url(trigger: Trigger, action: str = "") -> str:
    return f"/api/v1/acme/triggers/{trigger.pk}" + (f"/{action}" if action else "")


# --- Going live needs a published flow ----------------------------------------------------------


def test_patching_a_trigger_live_on_an_unpublished_flow_answers_409_flow_not_published(
    workbench_a, webhook_trigger, draft_flow
) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)

    response = workbench_a.patch(trigger_url(trigger), {"mode": "live"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "flow_not_published"
    assert "Publish the flow first" in response.json()["detail"]
    trigger.refresh_from_db()
    assert trigger.mode == "test"
    assert not TriggerModeChange.objects.exists()


def test_a_refused_go_live_changes_nothing_else_in_the_same_patch(workbench_a, webhook_trigger, draft_flow) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)

    response = workbench_a.patch(
        trigger_url(trigger), {"mode": "live", "name": "Orders", "shapeCheck": True}, format="json"
    )

    assert response.status_code == 409
    trigger.refresh_from_db()
    assert (trigger.mode, trigger.name, trigger.config["shapeCheck"]) == ("test", "", False)


def test_creating_a_live_trigger_on_an_unpublished_flow_answers_409_and_creates_nothing(workbench_a, draft_flow):
    response = workbench_a.post(triggers_url(draft_flow), {"type": "webhook", "mode": "live"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "flow_not_published")
    assert not Trigger.objects.filter(type="webhook").exists()


def test_once_published_the_same_trigger_goes_live(workbench_a, webhook_trigger, draft_flow) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)
    assert workbench_a.patch(trigger_url(trigger), {"mode": "live"}, format="json").status_code == 409

    flow_publish(flow=draft_flow)
    response = workbench_a.patch(trigger_url(trigger), {"mode": "live"}, format="json")

    assert (response.status_code, response.json()["mode"]) == (200, "live")


def test_an_archived_flows_trigger_cannot_go_live_409_flow_archived(workbench_a, webhook_trigger, flow) -> None:
    trigger = webhook_trigger()
    flow_archive(flow=flow)

    response = workbench_a.patch(trigger_url(trigger), {"mode": "live"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "flow_archived")
    assert Trigger.objects.get(pk=trigger.pk).mode == "test"


def test_an_archived_flow_gets_no_new_trigger(workbench_a, flow) -> None:
    flow_archive(flow=flow)

    response = workbench_a.post(triggers_url(flow), {"type": "webhook"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "flow_archived")


def test_a_paused_live_trigger_is_not_reactivated_live_once_its_flow_is_archived(
    workbench_a, webhook_trigger, flow
) -> None:
    trigger = webhook_trigger(mode="live")
    services.trigger_pause(trigger=trigger, reason="A request was not shaped like the sample")
    flow_archive(flow=flow)

    response = workbench_a.post(trigger_url(trigger, "reactivate"))

    assert (response.status_code, response.json()["code"]) == (409, "flow_archived")
    assert Trigger.objects.get(pk=trigger.pk).mode == "paused"


def test_test_and_disabled_need_no_published_flow(workbench_a, webhook_trigger, draft_flow) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)

    disabled = workbench_a.patch(trigger_url(trigger), {"mode": "disabled"}, format="json")
    test = workbench_a.patch(trigger_url(trigger), {"mode": "test"}, format="json")

    assert (disabled.json()["mode"], test.json()["mode"]) == ("disabled", "test")


# --- Names --------------------------------------------------------------------------------------


def test_a_trigger_is_created_renamed_and_listed_with_its_name(workbench_a, flow) -> None:
    created = workbench_a.post(
        triggers_url(flow), {"type": "webhook", "name": "  Orders  from Shopify "}, format="json"
    )
    assert (created.status_code, created.json()["name"]) == (201, "Orders from Shopify")
    trigger = Trigger.objects.get(pk=created.json()["id"])

    renamed = workbench_a.patch(trigger_url(trigger), {"name": "Paid invoices"}, format="json")

    assert renamed.json()["name"] == "Paid invoices"
    listed = {item["type"]: item for item in workbench_a.get(triggers_url(flow)).json()}
    assert listed["webhook"]["name"] == "Paid invoices"
    assert listed["api"]["name"] == ""


def test_a_name_is_optional_and_too_long_a_name_is_refused(workbench_a, flow, webhook_trigger) -> None:
    trigger = webhook_trigger()

    too_long = workbench_a.patch(trigger_url(trigger), {"name": "x" * 201}, format="json")
    blank = workbench_a.patch(trigger_url(trigger), {"name": ""}, format="json")

    assert (too_long.status_code, list(too_long.json()["errors"])) == (400, ["name"])
    assert (blank.status_code, blank.json()["name"]) == (200, "")
    assert Trigger.objects.get(pk=trigger.pk).display_name == f"Webhook {trigger.pk}"


def test_the_api_trigger_can_be_named_but_has_no_mode_to_set(workbench_a, flow) -> None:
    api = Trigger.objects.get(flow=flow, type="api")

    named = workbench_a.patch(trigger_url(api), {"name": "From the app"}, format="json")
    moded = workbench_a.patch(trigger_url(api), {"mode": "test"}, format="json")

    assert (named.status_code, named.json()["name"]) == (200, "From the app")
    assert (moded.status_code, moded.json()["code"]) == (409, "api_trigger_mode")


# --- Every test send is a new test --------------------------------------------------------------


def test_each_send_test_starts_a_new_test_invocation(
    workbench_a, webhook_trigger, test_user, django_capture_on_commit_callbacks
) -> None:
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=delivery("sample-dlv"))

    with django_capture_on_commit_callbacks(execute=True):
        first = workbench_a.post(trigger_url(trigger, "send-test"))
        second = workbench_a.post(trigger_url(trigger, "send-test"))

    assert (first.status_code, second.status_code) == (202, 202)
    assert (first.json()["status"], second.json()["status"]) == ("accepted", "accepted")
    keys = [first.json()["flowInvocationId"], second.json()["flowInvocationId"]]
    assert keys[0] != keys[1]
    assert all(key.startswith("sample-dlv-test-") for key in keys)  # still says which sample it came from
    assert Invocation.objects.filter(flow=trigger.flow, mode="test").count() == 2


def test_send_test_without_a_mapped_key_starts_anew_each_time_too(
    workbench_a, webhook_trigger, test_user, django_capture_on_commit_callbacks
) -> None:
    mapping = {"type": "structured", "structured": {"targetUserIds": "$.customer.id"}}
    trigger = webhook_trigger(mapping=mapping, sample=delivery("sample-dlv"))

    with django_capture_on_commit_callbacks(execute=True):
        keys = {workbench_a.post(trigger_url(trigger, "send-test")).json()["flowInvocationId"] for _ in range(2)}

    assert len(keys) == 2


def test_a_sender_retrying_a_delivery_is_still_started_once(webhook_trigger, post_hook, test_user) -> None:
    """The fresh keys are the test button's alone: a sender's retries keep their idempotency."""
    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)

    first = post_hook(trigger, delivery("dlv-9"))
    retry = post_hook(trigger, delivery("dlv-9"))

    assert (first.json()["status"], retry.json()["status"]) == ("accepted", "duplicate")


def test_the_admin_shows_the_mode_but_changes_it_only_through_the_workbench_or_the_api(
    admin_client, webhook_trigger, draft_flow
) -> None:
    trigger = webhook_trigger(on_flow=draft_flow)

    page = admin_client.get(f"/admin/triggers/trigger/{trigger.pk}/change/").content.decode()

    assert 'name="mode"' not in page  # read-only: the admin cannot bypass the go-live check
    assert 'name="name"' in page
