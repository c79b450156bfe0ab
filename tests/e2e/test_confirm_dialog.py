"""One confirmation pattern everywhere (issue 11, item 7): the Workbench's own <dialog>, never the
browser's confirm().

`form[data-confirm]` asks in the dialog before it submits; `a[data-confirm-page]` shows its
confirmation page's fragment in the same dialog, and without JavaScript simply opens the page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def _fail_on_native_dialogs(page: Page) -> list[str]:
    """Collect any window.confirm/alert the page opens; the test then fails on it."""
    opened: list[str] = []

    def record(dialog):
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return opened


@pytest.fixture
def test_user_page(e2e_log_in, e2e_environment, e2e_make_member):
    from customers.services import testuser_create

    testuser_create(environment=e2e_environment, user_id="qa-phone", name="QA phone")
    editor = e2e_make_member("edith", {e2e_environment: "editor"})
    page = e2e_log_in(editor)
    page.goto(f"/e/{e2e_environment.slug}/test-users/")
    return page


def test_a_confirmation_opens_the_workbench_dialog_and_cancel_changes_nothing(test_user_page, tmp_path):
    page = test_user_page
    native = _fail_on_native_dialogs(page)

    page.get_by_role("button", name="Remove").click()

    dialog = page.get_by_role("dialog", name="Remove this test user?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("qa-phone will no longer receive tests")
    confirm = dialog.get_by_role("button", name="Remove")
    expect(confirm).to_have_class(re.compile(r"\bdanger-solid\b"))
    # The focus is in the dialog, on the choice that changes nothing.
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.screenshot(path=tmp_path / "confirm_dialog.png", full_page=True)

    dialog.get_by_role("button", name="Cancel").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("cell", name="qa-phone")).to_be_visible()
    expect(page.get_by_role("button", name="Remove")).to_be_focused()
    assert native == []


def test_escape_closes_the_dialog_without_submitting(test_user_page):
    page = test_user_page
    native = _fail_on_native_dialogs(page)

    page.get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")

    expect(dialog).to_be_hidden()
    page.reload()
    expect(page.get_by_role("cell", name="qa-phone")).to_be_visible()
    assert native == []


def test_confirming_submits_the_form(test_user_page):
    page = test_user_page
    native = _fail_on_native_dialogs(page)

    page.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()

    expect(page.get_by_role("status")).to_contain_text("qa-phone no longer receives tests")
    expect(page.get_by_role("cell", name="qa-phone")).to_have_count(0)
    assert native == []


def test_no_page_calls_the_browsers_confirm(e2e_page, live_server):
    """The shared script has no window.confirm left to call."""
    script = e2e_page.request.get(f"{live_server.url}/static/js/workbench.js").text()

    assert not re.search(r"(?<![\w.])confirm\(|window\.confirm", script)
    assert "showModal()" in script


@pytest.fixture
def members_page(e2e_log_in, e2e_environment, e2e_make_member):
    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    e2e_make_member("edward", {e2e_environment: "editor"})
    page = e2e_log_in(owner)
    page.goto(f"/e/{e2e_environment.slug}/members/")
    return page


def test_a_confirmation_page_opens_in_the_dialog_and_cancel_stays_on_the_page(members_page, tmp_path):
    page = members_page
    native = _fail_on_native_dialogs(page)
    url = page.url

    page.get_by_role("link", name="Remove…").click()

    dialog = page.get_by_role("dialog", name="Remove edward?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("will no longer see or change anything in Acme production")
    assert page.url == url  # the page stays; only its fragment came
    expect(dialog.locator(".sidenav")).to_have_count(0)
    page.screenshot(path=tmp_path / "confirm_page_dialog.png", full_page=True)

    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert page.url == url

    page.get_by_role("link", name="Remove…").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator('#members tr[data-username="edward"]')).to_be_visible()
    assert native == []


def test_a_confirmation_pages_form_submits_from_the_dialog(members_page):
    page = members_page

    page.get_by_role("link", name="Remove…").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove edward").click()

    expect(page.get_by_role("status")).to_have_text("edward is no longer a member of Acme production.")
    expect(page.locator('#members tr[data-username="edward"]')).to_have_count(0)


def test_without_javascript_the_confirmation_link_opens_the_page(
    e2e_browser, live_server, e2e_environment, e2e_make_member
):
    e2e_make_member("olivia", {e2e_environment: "owner"})
    e2e_make_member("edward", {e2e_environment: "editor"})
    context = e2e_browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill("olivia")
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Log in").click()
        page.goto(f"/e/{e2e_environment.slug}/members/")

        page.get_by_role("link", name="Remove…").click()

        expect(page).to_have_url(re.compile(r"/members/\d+/remove$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Remove edward?")
        page.get_by_role("button", name="Remove edward").click()
        expect(page.get_by_role("status")).to_have_text("edward is no longer a member of Acme production.")
    finally:
        context.close()


def test_deleting_a_flow_confirms_in_the_dialog_with_what_goes_and_offers_archiving(
    e2e_log_in, e2e_environment, e2e_make_member, tmp_path
):
    from flows import services as flow_services

    owner = e2e_make_member("olga", {e2e_environment: "owner"})
    flow = flow_services.flow_create(
        environment=e2e_environment,
        name="Spring sale",
        variables=[],
        steps=[{"type": "send_card", "card": {"title": "Sale!", "body": "", "actions": []}}],
    )
    flow_services.flow_publish(flow=flow)
    page = e2e_log_in(owner)
    native = _fail_on_native_dialogs(page)
    page.goto(f"/e/{e2e_environment.slug}/flows/{flow.pk}/")

    page.locator(".head-actions").get_by_role("link", name="Delete…").click()

    dialog = page.locator("#confirm-dialog")
    expect(dialog.get_by_role("heading", name="Delete “Spring sale”?")).to_be_visible()
    expect(dialog.locator("#deletion-preview")).to_contain_text("1 published version and the draft")
    page.screenshot(path=tmp_path / "delete_dialog.png")
    # "archive it instead" swaps the dialog's content for the archive confirmation.
    dialog.get_by_role("link", name="archive it").click()
    expect(dialog.get_by_role("heading", name="Archive “Spring sale”?")).to_be_visible()
    dialog.get_by_role("button", name="Archive flow").click()

    expect(page.get_by_role("status")).to_contain_text("“Spring sale” is archived")
    assert native == []
