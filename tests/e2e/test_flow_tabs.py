"""Browser tests of the flow page's tabs and the builder: moving between tabs, the warning
before leaving unsaved changes, rows added without a round trip, waits in the preview and a
test send with a missing value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from customers.services import member_test_user_set
from flows.models import Flow, Mode
from flows.services import flow_create, flow_publish
from tests.flows.conftest import accept_start
from workbench.models import Membership

pytestmark = pytest.mark.browser

CODES = {
    "variables": [
        {"name": "code", "default": None, "required": True},
        {"name": "firstName", "default": "there", "required": False},
    ],
    "steps": [
        {"type": "send_card", "card": {"title": "Hi {{firstName}}, your code is {{code}}", "body": "Use it today."}},
        {"type": "wait", "seconds": 7200},
        {"type": "send_card", "card": {"title": "Did the code work?", "body": "Tell us if it did not."}},
    ],
}


@pytest.fixture
def editor_page(e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any) -> Page:
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    membership = Membership.objects.get(user=editor.user, environment=e2e_environment)
    member_test_user_set(membership=membership, user_id="edward-phone")
    page: Page = e2e_log_in(editor)
    return page


@pytest.fixture
def codes(e2e_environment: Any) -> Flow:
    return flow_create(environment=e2e_environment, name="Codes", **CODES)


def tabs(page: Page) -> Any:
    return page.get_by_role("navigation", name="Flow", exact=True)


def test_each_tab_is_a_page_of_its_own(editor_page: Page, codes: Flow, tmp_path: Path) -> None:
    page = editor_page
    published = flow_publish(flow=codes).flow
    for key in range(3):
        accept_start(flow=published, mode=Mode.LIVE, body={"targetUserIds": [f"u{key}"], "variables": {"code": "1"}})

    page.goto(f"/e/acme/flows/{codes.pk}/")
    expect(tabs(page).get_by_role("link", name="Builder")).to_have_attribute("aria-current", "page")
    expect(page.get_by_label("Flow name")).to_have_value("Codes")
    expect(page.locator("#api-trigger")).to_have_count(0)
    page.screenshot(path=tmp_path / "tab-builder.png", full_page=True)

    tabs(page).get_by_role("link", name="Testing").click()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/testing/$"))
    expect(tabs(page).get_by_role("link", name="Testing")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Send a test")).to_be_visible()
    page.screenshot(path=tmp_path / "tab-testing.png", full_page=True)

    tabs(page).get_by_role("link", name="Activity").click()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/activity/$"))
    expect(page.locator("#recent-invocations tbody tr")).to_have_count(3)
    expect(page.locator("#analytics")).to_contain_text("Invocations")
    page.screenshot(path=tmp_path / "tab-activity.png", full_page=True)

    page.get_by_role("link", name="All invocations →").click()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/invocations/$"))
    expect(tabs(page).get_by_role("link", name="Activity")).to_have_attribute("aria-current", "page")
    page.screenshot(path=tmp_path / "tab-invocations.png", full_page=True)

    # The other helpers' tabs, as far as they exist: each opens with its own tab current.
    for name in ("Triggers", "Analytics", "Versions"):
        link = tabs(page).get_by_role("link", name=name, exact=True)
        if link.count():
            link.click()
            expect(tabs(page).get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
            page.screenshot(path=tmp_path / f"tab-{name.lower()}.png", full_page=True)


def test_leaving_the_builder_with_unsaved_changes_asks_first(editor_page: Page, codes: Flow, tmp_path: Path) -> None:
    page = editor_page
    page.goto(f"/e/acme/flows/{codes.pk}/")
    dialog = page.locator("#confirm-dialog")

    # Nothing changed: the links simply go.
    tabs(page).get_by_role("link", name="Testing").click()
    expect(page).to_have_url(re.compile(r"/testing/$"))
    tabs(page).get_by_role("link", name="Builder").click()

    page.get_by_label("Flow name").fill("Codes, renamed")
    expect(page.get_by_text("Unsaved changes")).to_be_visible()
    page.get_by_role("link", name="← Flows").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Leave without saving?")
    page.screenshot(path=tmp_path / "builder-leave-dialog.png", full_page=True)

    # Staying keeps the edit.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/$"))
    expect(page.get_by_label("Flow name")).to_have_value("Codes, renamed")

    # A tab asks too; leaving drops the edit.
    tabs(page).get_by_role("link", name="Activity").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Leave without saving").click()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/activity/$"))
    codes.refresh_from_db()
    assert codes.name == "Codes"


def test_an_edit_undone_or_saved_leaves_without_asking(editor_page: Page, codes: Flow) -> None:
    page = editor_page
    page.goto(f"/e/acme/flows/{codes.pk}/")
    title = page.get_by_label("Flow name")

    title.fill("Codes 2")
    title.fill("Codes")
    expect(page.get_by_text("Unsaved changes")).to_be_hidden()

    title.fill("Codes 2")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    page.get_by_role("link", name="← Flows").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/$"))
    expect(page.locator("#confirm-dialog")).to_be_hidden()


def test_reloading_with_unsaved_changes_lets_the_browser_ask(editor_page: Page, codes: Flow) -> None:
    page = editor_page
    page.goto(f"/e/acme/flows/{codes.pk}/")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_label("Flow name").fill("Codes, renamed")
    page.get_by_label("Flow name").press("End")  # a real keystroke: browsers ask only after one
    page.evaluate("() => { window.location.reload(); }")
    page.wait_for_timeout(500)

    assert asked == ["beforeunload"]
    expect(page.get_by_label("Flow name")).to_have_value("Codes, renamed")


def test_rows_are_added_in_the_page_and_save_as_the_server_adds_them(
    editor_page: Page, e2e_environment: Any, tmp_path: Path
) -> None:
    page = editor_page
    flow = flow_create(environment=e2e_environment, name="Reminder")
    page.goto(f"/e/acme/flows/{flow.pk}/")
    posts: list[Request] = []
    page.on("request", lambda request: posts.append(request) if request.url.endswith(f"/flows/{flow.pk}/") else None)

    page.get_by_role("button", name="+ Add variable").click()
    expect(page.get_by_label("Variable 1 name")).to_be_focused()
    page.get_by_label("Variable 1 name").fill("firstName")
    page.get_by_label("Variable 1 default").fill("there")
    page.get_by_role("button", name="+ Send a card").click()
    expect(page.get_by_label("Title")).to_be_focused()
    page.get_by_label("Title").fill("Hi {{firstName}}")
    page.get_by_role("button", name="+ Wait").click()
    expect(page.locator("#steps-1-amount")).to_be_focused()
    page.locator("#steps-1-amount").fill("2")
    page.get_by_label("Step 2 unit").select_option(label="days")
    page.get_by_role("button", name="+ Send a card").click()
    page.locator("#steps-2-title").fill("Still there, {{firstName}}?")
    assert posts == []  # not one request to the builder: the rows came from the page

    # The preview: the cards in order with the wait between them, said as a person would.
    preview = page.locator("#flow-preview")
    expect(preview.locator(".timeline-wait")).to_have_text("then wait 2 days")
    expect(preview.locator(".app-card-title")).to_have_text(["Hi there", "Still there, there?"])
    # The new last step can move up, the first one down (no other step was redrawn).
    expect(page.get_by_role("button", name="Move step 3 up")).to_be_visible()
    expect(page.get_by_role("button", name="Move step 1 down")).to_be_visible()
    expect(page.get_by_role("button", name="Move step 1 up")).to_be_hidden()
    page.screenshot(path=tmp_path / "builder-rows-added.png", full_page=True)

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    flow.refresh_from_db()
    assert flow.draft == {
        "variables": [{"name": "firstName", "default": "there", "required": False}],
        "steps": [
            {"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "", "actions": []}},
            {"type": "wait", "seconds": 2 * 86400},
            {"type": "send_card", "card": {"title": "Still there, {{firstName}}?", "body": "", "actions": []}},
        ],
    }
    # Moving a step still asks the server, and the rows stay numbered in order.
    page.get_by_role("button", name="Move step 3 up").click()
    expect(page.locator("#steps-1-title")).to_have_value("Still there, {{firstName}}?")
    expect(page.get_by_text("Unsaved changes")).to_be_visible()


def test_a_missing_required_value_is_marked_at_its_field(editor_page: Page, codes: Flow, tmp_path: Path) -> None:
    page = editor_page
    page.goto(f"/e/acme/flows/{codes.pk}/testing/")

    page.get_by_role("button", name="Send test").click()

    code = page.get_by_role("textbox", name=re.compile("^code"))
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/test$"))
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(code).to_have_accessible_description(re.compile("Missing required variable: code."))
    expect(page.get_by_role("alert")).to_contain_text("Not sent.")
    expect(page.get_by_role("checkbox", name=re.compile("edward-phone"))).to_be_checked()
    page.screenshot(path=tmp_path / "testing-missing-value.png", full_page=True)

    code.fill("42")
    page.get_by_role("button", name="Send test").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/invocations/\d+/$"))
    expect(page.locator("#cards")).to_contain_text("Hi there, your code is 42")


def test_publish_opens_its_confirmation_in_the_dialog_from_any_tab(
    editor_page: Page, codes: Flow, tmp_path: Path
) -> None:
    page = editor_page
    page.goto(f"/e/acme/flows/{codes.pk}/activity/")

    page.get_by_role("link", name="Publish…").click()

    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name=re.compile("Publish version 1"))).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/flows/{codes.pk}/activity/$"))
    page.screenshot(path=tmp_path / "publish-dialog.png", full_page=True)


def test_a_new_flow_opens_on_an_empty_builder_that_says_what_to_add(
    editor_page: Page, e2e_environment: Any, tmp_path: Path
) -> None:
    page = editor_page
    flow = flow_create(environment=e2e_environment, name="Empty")

    page.goto(f"/e/acme/flows/{flow.pk}/")

    expect(page.get_by_text("No steps yet.")).to_be_visible()
    expect(page.get_by_text("No variables.")).to_be_visible()
    expect(page.locator("#variables table")).to_be_hidden()
    page.get_by_role("button", name="+ Add variable").click()
    expect(page.locator("#variables table")).to_be_visible()
    expect(page.get_by_text("No variables.")).to_be_hidden()
    page.get_by_role("button", name="Remove variable 1").click()
    expect(page.get_by_text("No variables.")).to_be_visible()
    expect(page.get_by_text("Unsaved changes")).to_be_hidden()  # back to what is saved
    page.screenshot(path=tmp_path / "builder-empty.png", full_page=True)
