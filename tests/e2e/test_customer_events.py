"""Browser test: a customer's recent events on the profile page, and its empty state."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from customers.services import customers_upsert, events_record

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("E2E_SHOTS")  # a directory to save screenshots in, when given


def test_the_profile_shows_recent_events_and_says_how_they_arrive_when_there_are_none(
    e2e_log_in, e2e_environment, e2e_make_member
):
    events_record(
        environment=e2e_environment,
        events=[
            {"userId": "user-ada", "name": "signup", "timestamp": "2026-03-01T09:00:00Z"},
            {
                "userId": "user-ada",
                "name": "purchase",
                "timestamp": "2026-03-02T10:30:00Z",
                "properties": {"plan": "pro", "amount": 49.5, "note": "x" * 300},
            },
        ],
    )
    customers_upsert(environment=e2e_environment, profiles=[{"user_id": "user-grace", "name": "Grace Hopper"}])
    page = e2e_log_in(e2e_make_member("vera", {e2e_environment: "viewer"}))

    page.goto(page.url.split("/e/")[0] + f"/e/{e2e_environment.slug}/customers/user-ada")

    events = page.locator("#customer-events")
    expect(events.get_by_role("heading", name="Recent events")).to_be_visible()
    expect(events.locator("tbody tr")).to_have_count(2)
    expect(events.locator("tbody tr").first).to_contain_text("purchase")
    expect(events.locator("tbody tr").first).to_contain_text("2026-03-02 10:30:00")
    expect(events.locator("tbody tr").nth(1)).to_contain_text("signup")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/profile_events.png", full_page=True)

    page.goto(page.url.replace("user-ada", "user-grace"))

    expect(page.locator("#customer-events")).to_contain_text("No events yet.")
    expect(page.locator("#customer-events")).to_contain_text(f"POST /api/v1/{e2e_environment.slug}/events")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/profile_no_events.png", full_page=True)
