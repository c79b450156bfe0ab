"""The pages that do not belong to the Workbench itself still work under the Content-Security-Policy.

The e2e conftest fails any browser test whose page breaks the policy; these visit the login
page, the API docs (Swagger UI) and the admin, and keep screenshots of the first two in the
test's temporary directory.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_login_page_renders_under_the_policy(e2e_page, tmp_path):
    e2e_page.goto("/login/")

    expect(e2e_page.get_by_role("heading", name="Log in to the Workbench")).to_be_visible()
    e2e_page.screenshot(path=tmp_path / "login.png", full_page=True)


def test_the_api_docs_show_every_endpoint_under_the_policy(e2e_page, tmp_path):
    e2e_page.goto("/api/docs/")

    expect(e2e_page.get_by_text("Action Flow Workbench API").first).to_be_visible()
    expect(e2e_page.locator(".opblock").first).to_be_visible()
    e2e_page.screenshot(path=tmp_path / "api_docs.png", full_page=False)


def test_a_staff_member_logs_in_and_uses_the_admin_under_the_policy(e2e_page, e2e_make_member, e2e_environment):
    member = e2e_make_member("ada", {e2e_environment: "owner"})
    member.user.is_staff = member.user.is_superuser = True
    member.user.save()

    e2e_page.goto("/admin/")
    e2e_page.get_by_label("Username").fill(member.username)
    e2e_page.get_by_label("Password").fill(member.password)
    e2e_page.get_by_role("button", name="Log in").click()

    expect(e2e_page.get_by_role("heading", name="Site administration")).to_be_visible()
    e2e_page.goto("/admin/auth/user/")
    expect(e2e_page.get_by_role("link", name="ada")).to_be_visible()
    e2e_page.goto(f"/admin/auth/user/{member.user.pk}/change/")
    expect(e2e_page.get_by_label("Username")).to_have_value("ada")
