"""A Marketo trigger as a marketer sets it up: from the flow's Triggers tab to a trigger page with
the service URL and the API key shown once, its rotation, the flow step's fields, the mapping
preview on the last lead, and Marketo's batches and callbacks in the request log.
Screenshots go to /tmp/shots/marketo/."""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from flows.services import flow_create
from tests.factories import TestUserFactory
from tests.triggers.marketo_receiver import marketo_receiver
from triggers.models import MarketoCallback, Trigger

pytestmark = pytest.mark.browser

SHOTS = Path(tempfile.gettempdir()) / "shots" / "marketo"
CARD = {"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "See you at the webinar."}}


@pytest.fixture(autouse=True)
def _shots_dir() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)


def submit(live_server: Any, path: str, key: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        live_server.url + path + "submitAsyncAction",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "x-api-key": key},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_an_editor_installs_a_marketo_trigger_and_sees_its_batches_and_callbacks(
    e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any, live_server: Any
) -> None:
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(
        environment=e2e_environment,
        name="Webinar follow-up",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    TestUserFactory(environment=e2e_environment, user_id="tester-1")
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/")
    page.locator("#add-trigger summary").click()
    page.locator("#add-trigger").get_by_role("link", name="Marketo").click()
    expect(page.get_by_role("heading", name="New Marketo trigger")).to_be_visible()
    # The flow's variables are offered as the flow step's fields.
    expect(page.locator("input[name=field_name]").first).to_have_value("firstName")
    page.locator("input[name=field_label]").first.fill("First name")
    page.get_by_label("Lead field with the userId").fill("appUserId")
    page.screenshot(path=SHOTS / "new.png", full_page=True)
    page.get_by_role("button", name="Create Marketo trigger").click()

    trigger = Trigger.objects.get(type="marketo")
    key = page.locator("#marketo-api-key").inner_text()
    assert key.startswith("mkto_")
    expect(page.locator("#marketo-service-url")).to_have_text(
        f"{live_server.url}/integrations/marketo/{trigger.token}/openapi.json"
    )
    expect(page.locator("#marketo-steps")).to_contain_text("Admin → Service Providers")
    page.screenshot(path=SHOTS / "created_key_once.png", full_page=True)

    # Shown once: a reload shows its last characters only.
    page.reload()
    expect(page.locator("#marketo-api-key")).to_have_count(0)
    expect(page.locator("#marketo-api-key-hint")).to_contain_text(key[-4:])

    # Rotating asks first; the new key is shown once and the old one stops working.
    page.get_by_role("button", name="Rotate key").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate key").click()
    new_key = page.locator("#marketo-api-key").inner_text()
    assert new_key != key

    with marketo_receiver() as receiver:
        leads = [
            {"objectContext": {"id": 12}, "flowStepContext": {"firstName": "Nobody"}},
            {"objectContext": {"id": 11, "appUserId": "tester-1"}, "flowStepContext": {"firstName": "Lars"}},
        ]
        body = {
            "token": "batch-token-1",
            "callbackUrl": receiver.url,
            "apiCallBackKey": "cb",
            "campaignId": 77,
            "context": {"subscription": {"munchkinId": "123-ABC-456"}},
            "objectData": leads,
        }
        base = f"/integrations/marketo/{trigger.token}/"
        assert submit(live_server, base, new_key, body) == 201
        assert receiver.results()[11]["success"] is True
        assert receiver.results()[12]["errorCode"] == "missing_user_id"
    assert MarketoCallback.objects.get().status == "delivered"

    page.goto(f"/e/acme/triggers/{trigger.pk}/")
    expect(page.locator("#marketo-sample")).to_contain_text('"Lars"')
    expect(page.locator("#mapping-preview")).to_contain_text("tester-1")
    expect(page.locator("#callback-counts")).to_contain_text("1 delivered")
    expect(page.locator("#recent-requests")).to_contain_text("CALLBACK")
    expect(page.locator("#recent-requests")).to_contain_text("callback_delivered")
    page.screenshot(path=SHOTS / "trigger_page.png", full_page=True)

    page.get_by_role("link", name="Request log").first.click()
    expect(page.locator("table.request-log")).to_contain_text("CALLBACK")
    page.screenshot(path=SHOTS / "request_log.png", full_page=True)


def test_a_viewer_sees_the_setup_but_cannot_rotate_or_edit(
    e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any
) -> None:
    from triggers.marketo import marketo_trigger_create

    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    flow = flow_create(
        environment=e2e_environment,
        name="Webinar follow-up",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )
    created = marketo_trigger_create(flow=flow, flow_fields=[{"name": "firstName"}])
    page = e2e_log_in(viewer)

    page.goto(f"/e/acme/triggers/{created.trigger.pk}/")
    expect(page.locator("#marketo-service-url")).to_be_visible()
    expect(page.get_by_role("button", name="Rotate key")).to_have_count(0)
    expect(page.get_by_label("Lead field with the userId")).to_be_disabled()
    page.screenshot(path=SHOTS / "viewer.png", full_page=True)
