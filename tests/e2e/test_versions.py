"""Versions in the browser (issue 11, item 4): the publish dialog shows what changes and refuses
an unchanged draft; the versions tab lists every version with who published it and what
changed; one version's page shows its cards; a version is restored into the draft."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

GREETING_STEPS = [
    {
        "type": "send_card",
        "card": {
            "title": "Welcome, {{firstName}}!",
            "body": "Your account is ready.",
            "actions": [{"label": "Open the app", "url": "https://example.com/start"}],
        },
    }
]
VARIABLES = [{"name": "firstName", "default": "there", "required": False}]


def _welcome_flow(environment: Any, by: Any) -> Any:
    """A flow published once, as version 1, by `by`."""
    from flows import services

    flow = services.flow_create(
        environment=environment, name="Welcome series", variables=VARIABLES, steps=GREETING_STEPS
    )
    services.flow_publish(flow=flow, by=by)
    return flow


def _three_versions(environment: Any, editor: Any, owner: Any) -> Any:
    from flows import services

    flow = _welcome_flow(environment, editor)
    services.flow_update(
        flow=flow,
        variables=[*VARIABLES, {"name": "plan", "default": "basic", "required": False}],
        steps=[
            {
                "type": "send_card",
                "card": {
                    "title": "Welcome aboard, {{firstName}}!",
                    "body": "Your {{plan}} plan is ready.",
                    "actions": [{"label": "Take the tour", "url": "https://example.com/tour"}],
                },
            }
        ],
    )
    services.flow_publish(flow=flow, by=owner)
    services.flow_update(
        flow=flow,
        steps=[
            *flow.draft["steps"],
            {"type": "wait", "seconds": 2 * 86400},
            {
                "type": "send_card",
                "card": {"title": "Set up payments", "body": "Connect your bank in a few taps.", "actions": []},
            },
        ],
    )
    services.flow_publish(flow=flow)  # through the API: no member
    return flow


def _open_publish_dialog(page: Page) -> Any:
    page.locator(".head-actions").get_by_role("link", name="Publish…").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_the_publish_dialog_shows_the_changes_then_refuses_an_unchanged_draft(
    e2e_log_in, e2e_environment, e2e_make_member, tmp_path
):
    from flows import services

    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = _welcome_flow(e2e_environment, editor.user)
    services.flow_update(
        flow=flow,
        steps=[
            {**GREETING_STEPS[0], "card": {**GREETING_STEPS[0]["card"], "title": "Hi {{firstName}}, welcome!"}},
            {"type": "wait", "seconds": 3600},
        ],
    )
    page = e2e_log_in(editor)
    page.goto(f"/e/acme/flows/{flow.pk}/")

    dialog = _open_publish_dialog(page)
    expect(dialog.get_by_role("heading", name="Publish version 2 of “Welcome series”?")).to_be_visible()
    expect(dialog).to_contain_text("What changes compared with version 1, live now")
    expect(dialog).to_contain_text("1 step added, 1 step changed")
    expect(dialog.locator(".diff-before").first).to_have_text(re.compile(r"Welcome, \{\{firstName\}\}!"))
    expect(dialog.locator(".diff-after").first).to_have_text(re.compile(r"Hi \{\{firstName\}\}, welcome!"))
    expect(dialog).to_contain_text("Wait 1 hour")
    page.screenshot(path=tmp_path / "publish_dialog_with_diff.png", full_page=True)

    dialog.get_by_role("button", name="Publish version 2").click()
    expect(page.get_by_role("status")).to_contain_text("Version 2 published.")

    dialog = _open_publish_dialog(page)
    expect(dialog.get_by_role("heading", name="Nothing to publish")).to_be_visible()
    expect(dialog).to_contain_text("The draft is the same as version 2: nothing to publish")
    expect(dialog.get_by_role("button", name="Publish version 3")).to_be_disabled()
    page.screenshot(path=tmp_path / "publish_dialog_nothing_to_publish.png", full_page=True)
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()

    # Without the dialog, the same confirmation is a page of its own.
    page.goto(f"/e/acme/flows/{flow.pk}/publish")
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing to publish")
    expect(page.get_by_role("button", name="Publish version 3")).to_be_disabled()
    page.screenshot(path=tmp_path / "publish_page_nothing_to_publish.png", full_page=True)


def test_the_versions_tab_lists_versions_shows_one_and_restores_it_into_the_draft(
    e2e_log_in, e2e_environment, e2e_make_member, tmp_path
):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    flow = _three_versions(e2e_environment, editor.user, owner.user)
    page = e2e_log_in(editor)
    page.goto(f"/e/acme/flows/{flow.pk}/")

    page.get_by_role("navigation", name="Flow", exact=True).get_by_role("link", name="Versions").click()
    expect(page).to_have_url(re.compile(rf"/e/acme/flows/{flow.pk}/versions/$"))
    items = page.locator(".version-item")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_contain_text("Version 3")
    expect(items.nth(0).locator(".badge.status-published")).to_have_text("live")
    expect(items.nth(0).get_by_title("The draft is the same as this version")).to_have_text("the draft")
    expect(items.nth(0).get_by_role("button", name="Restore into draft")).to_have_count(0)
    expect(items.nth(0)).to_contain_text("an API credential")
    expect(items.nth(0)).to_contain_text("2 steps added")
    expect(items.nth(1)).to_contain_text("olivia")
    expect(items.nth(1)).to_contain_text("1 variable added, 1 step changed")
    expect(items.nth(2)).to_contain_text("edward")
    expect(items.nth(2)).to_contain_text("First version")
    page.screenshot(path=tmp_path / "versions_tab.png", full_page=True)

    items.nth(1).get_by_role("link", name="View").click()
    expect(page).to_have_url(re.compile(rf"/e/acme/flows/{flow.pk}/versions/2/$"))
    expect(page.get_by_role("heading", name="Version 2")).to_be_visible()
    expect(page.locator(".version-changes")).to_contain_text("Changes since version 1")
    expect(page.locator("#flow-preview .app-card-title")).to_have_text("Welcome aboard, there!")
    page.locator(".version-changes summary").click()  # the JSON details
    expect(page.locator(".json-diff-added").first).to_be_visible()
    page.screenshot(path=tmp_path / "version_detail_diff.png", full_page=True)

    page.get_by_role("button", name="Restore into draft").click()
    dialog = page.get_by_role("dialog", name="Restore version 2 into the draft?")
    expect(dialog).to_contain_text("The live version does not change until you publish.")
    dialog.get_by_role("button", name="Restore into draft").click()

    expect(page).to_have_url(re.compile(rf"/e/acme/flows/{flow.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Version 2 restored into the draft; publish to make it live")
    expect(page.get_by_label("Title")).to_have_value("Welcome aboard, {{firstName}}!")
    flow.refresh_from_db()
    assert flow.published_version == 3


def test_a_viewer_sees_the_history_without_restore(e2e_log_in, e2e_environment, e2e_make_member, tmp_path):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    flow = _welcome_flow(e2e_environment, editor.user)
    page = e2e_log_in(viewer)

    page.goto(f"/e/acme/flows/{flow.pk}/versions/")

    expect(page.locator(".version-item")).to_have_count(1)
    expect(page.get_by_role("button", name="Restore into draft")).to_have_count(0)
    expect(page.get_by_role("link", name="Publish…")).to_have_count(0)


def test_a_flow_never_published_explains_where_versions_come_from(
    e2e_log_in, e2e_environment, e2e_make_member, tmp_path
):
    from flows import services

    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = services.flow_create(environment=e2e_environment, name="Win-back", variables=VARIABLES, steps=GREETING_STEPS)
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/versions/")

    expect(page.get_by_role("heading", name="No version yet")).to_be_visible()
    page.screenshot(path=tmp_path / "versions_empty.png", full_page=True)
    page.locator(".empty-state").get_by_role("link", name="Publish…").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog.get_by_role("heading", name="Publish version 1 of “Win-back”?")).to_be_visible()
    expect(dialog).to_contain_text("First version: 1 variable added, 1 step added")
    dialog.get_by_role("button", name="Publish version 1").click()
    expect(page.get_by_role("status")).to_contain_text("Version 1 published.")
