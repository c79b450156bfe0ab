from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from customers.services import customers_upsert

pytestmark = pytest.mark.browser


def test_a_member_finds_a_customer_by_search_and_opens_the_profile(e2e_log_in, e2e_environment, e2e_make_member):
    customers_upsert(
        environment=e2e_environment,
        profiles=[
            {
                "user_id": "user-ada",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "country": "GB",
                "tags": ["vip"],
                "custom_fields": {"plan": "gold", "seats": 12},
            },
            {"user_id": "user-grace", "name": "Grace Hopper", "email": "grace@example.com"},
            {"user_id": "user-linus", "name": "Linus Torvalds", "email": "linus@example.com"},
        ],
    )
    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    page = e2e_log_in(viewer)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Customers").click()
    table = page.locator("#customer-table")
    expect(table.locator("tbody tr")).to_have_count(3)

    page.get_by_role("searchbox", name="Search customers").fill("lovelace")

    # htmx swaps the table in place and records the search in the address bar.
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/customers/\?q=lovelace$"))
    expect(table).not_to_contain_text("Grace Hopper")

    table.get_by_role("link", name="user-ada").click()

    expect(page).to_have_url(re.compile(r"/e/acme/customers/user-ada$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    profile = page.locator("section", has=page.get_by_role("heading", name="Profile"))
    expect(profile).to_contain_text("ada@example.com")
    custom = page.locator("section", has=page.get_by_role("heading", name="Custom fields"))
    expect(custom.locator("dt")).to_have_text(["plan", "seats"])
    expect(custom.locator("dd")).to_have_text(["gold", "12"])


def test_a_search_without_matches_says_so(e2e_log_in, e2e_environment, e2e_make_member):
    customers_upsert(environment=e2e_environment, profiles=[{"user_id": "user-ada", "name": "Ada Lovelace"}])
    page = e2e_log_in(e2e_make_member("vera", {e2e_environment: "viewer"}))
    page.goto(f"/e/{e2e_environment.slug}/customers/")

    page.get_by_role("searchbox", name="Search customers").fill("nobody")

    expect(page.locator("#customer-table")).to_contain_text("No customer matches “nobody”")
