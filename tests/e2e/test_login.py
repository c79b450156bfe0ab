from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_a_wrong_password_shows_an_error_and_the_right_one_opens_the_environment(
    e2e_page, e2e_environment, e2e_make_member
):
    member = e2e_make_member("olivia", {e2e_environment: "owner"})
    page = e2e_page

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_label("Username").fill(member.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page.get_by_label("Username")).to_have_value(member.username)

    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/e/acme/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme production")
    expect(page.locator(".account")).to_contain_text("olivia")
    expect(page.get_by_role("navigation", name="Sections")).to_contain_text("API credentials")
