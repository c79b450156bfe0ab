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
