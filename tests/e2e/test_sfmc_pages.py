"""A Salesforce Marketing Cloud trigger as a marketer sets it up, and its configuration inspector
as Journey Builder drives it.

Journey Builder is impersonated twice: execute calls are JWTs signed with PyJWT (HS256 with the
Installed Package's secret), and the inspector is framed by a parent page on 127.0.0.1 (served
by the live server through this module's URLconf) that speaks Postmonger's messages: it answers
`ready` with `initActivity` and reads the `updateActivity` the inspector sends on Done.
Screenshots go to /tmp/shots/sfmc/.
"""

from __future__ import annotations

import json
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from csp.decorators import csp_exempt
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from playwright.sync_api import BrowserContext, expect

from flows.models import FlowRun
from flows.services import flow_create, flow_publish
from tests.factories import TestUserFactory
from triggers import sfmc
from triggers.models import Trigger

pytestmark = pytest.mark.browser

SHOTS = Path(tempfile.gettempdir()) / "shots" / "sfmc"
SECRET = "sfmc-jwt-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMN"
CARD = {"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "Welcome aboard."}}
# What Journey Builder hands the inspector: the activity as the journey holds it.
ACTIVITY = {
    "id": "a1b2c3",
    "key": "REST-1",
    "name": "Action Flow",
    "metaData": {"icon": "https://example.invalid/icon.png", "isConfigured": False},
    "arguments": {"execute": {"inArguments": [{"userId": "{{Contact.Key}}"}], "url": "x"}},
    "configurationArguments": {},
    "outcomes": [{"next": "WAITBYDURATION-1"}],
}
PARENT_PAGE = """<!doctype html><html><head><title>Journey Builder (test)</title></head><body>
<iframe id="jb" src="/integrations/sfmc/%(token)s/" width="900" height="620"></iframe>
<script>
  const frame = document.getElementById("jb");
  window.received = [];
  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow) { return; }
    const data = JSON.parse(event.data);
    window.received.push(data);
    if (data.e === "ready") {
      frame.contentWindow.postMessage(JSON.stringify({e: "initActivity", a1: %(activity)s}), "*");
    }
    if (data.e === "requestSchema") {
      const schema = [{key: "Event.DEAudience-1.FirstName", type: "Text"}];
      frame.contentWindow.postMessage(JSON.stringify({e: "requestedSchema", a1: {schema: schema}}), "*");
    }
  });
  window.journeyBuilder = function (name) {
    frame.contentWindow.postMessage(JSON.stringify({e: name}), "*");
  };
</script></body></html>"""


@csp_exempt()
def journey_builder_parent(request: HttpRequest, token: str) -> HttpResponse:
    """Journey Builder's page, as far as the inspector can tell: it frames it and talks Postmonger."""
    return HttpResponse(PARENT_PAGE % {"token": token, "activity": json.dumps(ACTIVITY)})


urlpatterns: list[URLPattern | URLResolver] = [
    path("test-journey-builder/<str:token>", journey_builder_parent),
    path("", include("workbench.urls")),
]


@pytest.fixture(autouse=True)
def _shots_dir() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def journey_builder_origin(live_server: Any, settings: Any) -> Iterator[str]:
    """This module's parent page is served, and the inspector's frame-ancestors let this test's
    origin frame it as Marketing Cloud's hosts may (the decorator holds the list itself)."""
    settings.ROOT_URLCONF = __name__
    sfmc.FRAME_ANCESTORS.append(live_server.url)
    yield live_server.url
    sfmc.FRAME_ANCESTORS.remove(live_server.url)


def execute(live_server: Any, trigger: Trigger, claims: dict[str, Any], secret: str = SECRET) -> int:
    request = urllib.request.Request(
        f"{live_server.url}/integrations/sfmc/{trigger.token}/execute",
        data=jwt.encode(claims, secret, algorithm="HS256").encode(),
        method="POST",
        headers={"Content-Type": "application/jwt"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def claims(key_value: str, first_name: str) -> dict[str, Any]:
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


def welcome_flow(environment: Any) -> Any:
    return flow_create(
        environment=environment,
        name="Welcome journey",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[CARD],
    )


def test_an_editor_connects_journey_builder_and_sees_its_calls(
    e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any, live_server: Any
) -> None:
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = welcome_flow(e2e_environment)
    TestUserFactory(environment=e2e_environment, user_id="tester-1")
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/")
    page.locator("#add-trigger summary").click()
    page.locator("#add-trigger").get_by_role("link", name="Salesforce Marketing Cloud").click()
    expect(page.get_by_role("heading", name="New Salesforce Marketing Cloud trigger")).to_be_visible()
    page.get_by_label("Name").fill("Welcome journey activity")
    page.screenshot(path=SHOTS / "new.png", full_page=True)
    page.get_by_role("button", name="Create Marketing Cloud trigger").click()

    trigger = Trigger.objects.get(type="sfmc")
    expect(page.locator("#sfmc-url")).to_have_text(f"{live_server.url}/integrations/sfmc/{trigger.token}/")
    expect(page.locator("#connect")).to_contain_text("Journey Builder Activity")
    expect(page.locator("#secret-state")).to_contain_text("No secret yet")
    page.screenshot(path=SHOTS / "created.png", full_page=True)

    # Calls before the secret is pasted are refused and logged.
    assert execute(live_server, trigger, claims("tester-1", "Lars")) == 401
    page.get_by_label("Paste the secret").fill(SECRET)
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator("#secret-state")).to_contain_text("A secret is saved")
    assert SECRET not in page.content()

    # Journey Builder calls execute for a test user (twice: a retry) and for a real contact.
    assert execute(live_server, trigger, claims("tester-1", "Lars")) == 200
    assert execute(live_server, trigger, claims("tester-1", "Lars")) == 200
    assert execute(live_server, trigger, claims("customer-9", "Maja")) == 200
    assert execute(live_server, trigger, claims("tester-1", "Lars"), secret="x" * 64) == 401
    assert list(FlowRun.objects.values_list("user_id", flat=True)) == ["tester-1"]

    page.reload()
    # The sample is a call's mapping input (the newest, refreshed at most once a second).
    expect(page.locator("#sfmc-sample")).to_contain_text(re.compile('"(Lars|Maja)"'))
    expect(page.locator("#mapping-preview")).to_contain_text(re.compile("tester-1|customer-9"))
    expect(page.locator("#recent-requests")).to_contain_text("execute")
    expect(page.locator("#recent-requests")).to_contain_text("signature_invalid")
    expect(page.locator("#recent-requests")).to_contain_text("duplicate")
    page.screenshot(path=SHOTS / "trigger_page.png", full_page=True)

    page.get_by_role("link", name="Request log").first.click()
    expect(page.locator("table.request-log")).to_contain_text("execute")
    page.screenshot(path=SHOTS / "request_log.png", full_page=True)


def test_journey_builder_configures_the_activity_in_the_inspector(
    e2e_context: BrowserContext, e2e_environment: Any, journey_builder_origin: str
) -> None:
    flow = welcome_flow(e2e_environment)
    flow_publish(flow=flow)
    trigger = sfmc.sfmc_trigger_create(flow=flow, jwt_secret=SECRET)
    page = e2e_context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)

    page.goto(f"/test-journey-builder/{trigger.token}")
    inspector = page.frame_locator("#jb")
    expect(inspector.locator("#status")).to_contain_text("then choose Done")
    expect(inspector.locator(".arg-name").first).to_have_value("userId")
    expect(inspector.locator(".arg-binding").first).to_have_value("{{Contact.Key}}")
    inspector.get_by_role("button", name="+ Add an in-argument").click()
    inspector.locator(".arg-name").nth(1).fill("firstName")
    inspector.locator(".arg-binding").nth(1).fill("{{Event.DEAudience-1.FirstName}}")
    page.screenshot(path=SHOTS / "inspector.png", full_page=True)

    page.evaluate("window.journeyBuilder('clickedNext')")
    page.wait_for_function("window.received.some(m => m.e === 'updateActivity')")

    received = page.evaluate("window.received")
    assert [message["e"] for message in received][:2] == ["ready", "requestSchema"]
    update = next(message for message in received if message["e"] == "updateActivity")["a1"]
    assert update["metaData"]["isConfigured"] is True
    assert update["arguments"]["execute"]["inArguments"] == [
        {"userId": "{{Contact.Key}}"},
        {"firstName": "{{Event.DEAudience-1.FirstName}}"},
    ]
    assert update["key"] == "REST-1"  # the rest of the activity goes back as it came
    assert update["outcomes"] == ACTIVITY["outcomes"]
    expect(inspector.locator("#status")).to_contain_text("Saved in the journey")
    assert not violations, violations


def test_the_inspector_refuses_to_send_rows_without_names(
    e2e_context: BrowserContext, e2e_environment: Any, journey_builder_origin: str
) -> None:
    trigger = sfmc.sfmc_trigger_create(flow=welcome_flow(e2e_environment), jwt_secret=SECRET)
    page = e2e_context.new_page()

    page.goto(f"/test-journey-builder/{trigger.token}")
    inspector = page.frame_locator("#jb")
    expect(inspector.locator(".arg-name").first).to_have_value("userId")
    inspector.get_by_role("button", name="+ Add an in-argument").click()
    inspector.locator(".arg-binding").nth(1).fill("{{Contact.Attribute.Profile.City}}")
    page.evaluate("window.journeyBuilder('clickedNext')")

    expect(inspector.locator("#problems")).to_contain_text("Row 2 needs a name")
    assert all(message["e"] != "updateActivity" for message in page.evaluate("window.received"))


def test_any_other_site_cannot_frame_the_inspector(
    e2e_context: BrowserContext, e2e_environment: Any, live_server: Any, settings: Any
) -> None:
    settings.ROOT_URLCONF = __name__  # the parent page, without widening frame-ancestors
    trigger = sfmc.sfmc_trigger_create(flow=welcome_flow(e2e_environment), jwt_secret=SECRET)
    page = e2e_context.new_page()
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text) if "frame-ancestors" in message.text else None)

    page.goto(f"/test-journey-builder/{trigger.token}")
    page.wait_for_timeout(500)

    assert refusals, "Chromium framed the inspector for a host that is not Marketing Cloud's"
    assert page.evaluate("window.received.length") == 0
