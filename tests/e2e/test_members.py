"""An owner manages the environment's members in the Workbench (issue 11, item 9)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def team(e2e_environment, e2e_make_member):
    from django.contrib.auth import get_user_model

    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    e2e_make_member("edward", {e2e_environment: "editor"})
    get_user_model().objects.create_user(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace"
    )
    return owner


def test_an_owner_adds_a_member_changes_the_role_and_removes_them(e2e_log_in, e2e_environment, team, tmp_path):
    page = e2e_log_in(team)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")

    page.get_by_label("Username or email").fill("ada@example.com")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()

    expect(page.get_by_role("status")).to_have_text("ada is now a viewer of Acme production.")
    row = page.locator('#members tr[data-username="ada"]')
    expect(row).to_contain_text("Ada Lovelace")
    expect(row.get_by_label("Role of ada")).to_have_value("viewer")

    row.get_by_label("Role of ada").select_option("editor")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("ada is now an editor.")
    page.screenshot(path=tmp_path / "members.png", full_page=True)

    page.locator('#members tr[data-username="ada"]').get_by_role("link", name="Remove…").click()
    dialog = page.get_by_role("dialog", name="Remove ada?")
    expect(dialog).to_contain_text("The account itself stays")
    page.screenshot(path=tmp_path / "member_remove_dialog.png", full_page=True)
    dialog.get_by_role("button", name="Remove ada").click()

    expect(page.get_by_role("status")).to_have_text("ada is no longer a member of Acme production.")
    expect(page.locator('#members tr[data-username="ada"]')).to_have_count(0)


def test_adding_an_unknown_user_is_explained_at_the_field(e2e_log_in, e2e_environment, team):
    page = e2e_log_in(team)
    page.goto(f"/e/{e2e_environment.slug}/members/")

    page.get_by_label("Username or email").fill("nobody@example.com")
    page.get_by_role("button", name="Add member").click()

    expect(page.get_by_label("Username or email")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("No user is called “nobody@example.com”")


def test_the_last_owner_is_told_why_they_cannot_step_down(e2e_log_in, e2e_environment, team):
    page = e2e_log_in(team)
    page.goto(f"/e/{e2e_environment.slug}/members/")

    own_row = page.locator('#members tr[data-username="olivia"]')
    expect(own_row).to_contain_text("last owner")
    expect(own_row.get_by_role("link", name="Leave…")).to_have_count(0)
    expect(own_row).to_contain_text("Make another member an owner to remove")


def test_a_viewer_sees_the_members_and_a_forbidden_page_keeps_the_sidebar(
    e2e_log_in, e2e_environment, e2e_make_member, team, tmp_path
):
    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    page = e2e_log_in(viewer)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Members").click()
    expect(page.locator("#members tbody tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Add member")).to_have_count(0)

    page.goto(f"/e/{e2e_environment.slug}/credentials/")

    expect(page.get_by_role("heading", level=1)).to_have_text("You cannot open this page")
    expect(page.locator(".content")).to_contain_text("Your role in Acme production is viewer")
    expect(page.locator(".content")).to_contain_text("Ask an owner if you need it: olivia")
    sections = page.get_by_role("navigation", name="Sections")
    expect(sections.get_by_role("link", name="Flows")).to_be_visible()
    page.screenshot(path=tmp_path / "forbidden_in_shell.png", full_page=True)

    sections.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
