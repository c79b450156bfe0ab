from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from customers.services import member_test_user_set
from workbench.models import Membership

pytestmark = pytest.mark.browser


def test_an_editor_builds_a_flow_previews_it_saves_and_sees_the_test_in_the_feed(
    e2e_log_in, e2e_environment, e2e_make_member
):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    membership = Membership.objects.get(user=editor.user, environment=e2e_environment)
    member_test_user_set(membership=membership, user_id="edward-phone")
    page = e2e_log_in(editor)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Flows").click()
    expect(page.get_by_text("No flows yet")).to_be_visible()
    page.get_by_role("link", name="New flow").click()
    page.get_by_label("Name").fill("Welcome series")
    page.get_by_role("button", name="Create flow").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome series")

    # A variable and a card step; the preview renders the card with the variable's default.
    page.get_by_role("button", name="+ Add variable").click()
    expect(page.get_by_label("Variable 1 name")).to_be_focused()
    page.get_by_label("Variable 1 name").fill("firstName")
    page.get_by_label("Variable 1 default").fill("Lars")
    page.get_by_role("button", name="+ Send a card").click()
    page.get_by_label("Title").fill("Hej {{firstName}}!")
    page.get_by_label("Body").fill("Your account is ready.")
    preview = page.locator("#flow-preview")
    expect(preview).to_contain_text("Hej Lars!")
    expect(preview).to_contain_text("Your account is ready.")

    page.get_by_label("Variable 1 default").fill("Ada")
    expect(preview).to_contain_text("Hej Ada!")
    expect(page.get_by_text("Unsaved changes")).to_be_visible()

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    expect(page.get_by_label("Title")).to_have_value("Hej {{firstName}}!")

    # A test to myself, in the testing tab: my own test user is chosen already.
    page.get_by_role("navigation", name="Flow", exact=True).get_by_role("link", name="Testing").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/\d+/testing/$"))
    send_test = page.locator("#send-test")
    expect(send_test.get_by_role("checkbox", name=re.compile("edward-phone"))).to_be_checked()
    send_test.get_by_role("button", name="Send test").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/invocations/\d+/$"))
    expect(page.get_by_role("status")).to_contain_text("Test sent to edward-phone.")
    expect(page.locator("#cards")).to_contain_text("Hej Ada!")

    page.locator("#runs").get_by_role("link", name="See feed").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/feed/\?user=edward-phone&test=true$"))
    feed = page.locator("#feed")
    expect(feed.locator(".app-card")).to_have_count(1)
    expect(feed).to_contain_text("Hej Ada!")
    expect(feed.locator(".badge.test")).to_have_text("test")
