"""The Workbench's own 404 and 403 pages, in its shell, also with DEBUG on as under `make run`;
and a favicon (issue 11, item 13)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def debug_on(settings):
    """As `make run` serves (DJANGO_DEBUG=1); the live server runs in this process."""
    settings.DEBUG = True


def test_a_mistyped_url_shows_the_workbench_not_djangos_debug_page(
    e2e_log_in, e2e_environment, e2e_make_member, debug_on, tmp_path
):
    page = e2e_log_in(e2e_make_member("edith", {e2e_environment: "editor"}))

    response = page.goto(f"/e/{e2e_environment.slug}/flowz/")

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_text("Using the URLconf defined in")).to_have_count(0)
    main = page.locator("main")
    expect(main.get_by_role("link", name="Flows")).to_be_visible()
    expect(page.get_by_role("navigation", name="Sections").get_by_role("link", name="Customers")).to_be_visible()
    expect(page.get_by_text("Detail for developers")).to_be_visible()
    page.screenshot(path=tmp_path / "not_found_in_shell.png", full_page=True)

    main.get_by_role("link", name="Flows").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Flows")


def test_a_viewers_forbidden_page_keeps_the_shell_with_debug_on(
    e2e_log_in, e2e_environment, e2e_make_member, debug_on, tmp_path
):
    e2e_make_member("olivia", {e2e_environment: "owner"})
    page = e2e_log_in(e2e_make_member("vera", {e2e_environment: "viewer"}))

    response = page.goto(f"/e/{e2e_environment.slug}/flows/settings/")

    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You cannot open this page")
    expect(page.locator("main")).to_contain_text("Ask an owner if you need it: olivia")
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()
    page.screenshot(path=tmp_path / "forbidden_in_shell.png", full_page=True)


def test_a_page_outside_any_environment_is_a_friendly_not_found(e2e_page, debug_on):
    response = e2e_page.goto("/no-such-page/")

    assert response is not None
    assert response.status == 404
    expect(e2e_page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(e2e_page.get_by_role("link", name="Go to the Workbench")).to_be_visible()


def test_the_favicon_is_linked_and_served(e2e_page, live_server):
    e2e_page.goto("/login/")

    href = e2e_page.locator('link[rel="icon"]').get_attribute("href")
    assert href == "/static/favicon.svg"
    icon = e2e_page.request.get(f"{live_server.url}{href}")
    assert icon.status == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    legacy = e2e_page.request.get(f"{live_server.url}/favicon.ico")
    assert legacy.status == 200
    assert legacy.url.endswith("/static/favicon.svg")
