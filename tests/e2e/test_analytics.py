"""Browser tests of analytics over time: the environment's overview with its recent activity,
the Analytics page across flows, a flow's Analytics tab with its period, mode and CSV, and
their empty states. Charts are drawn by Chart.js from a JSON data block, under the CSP."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from customers.services import testuser_create
from flows.analytics import utc_today
from flows.models import Flow
from flows.services import environment_analytics_setting_set, flow_create, flow_publish
from tests.factories import flow_started_at

pytestmark = pytest.mark.browser

CARD = {"variables": [], "steps": [{"type": "send_card", "card": {"title": "Welcome!", "body": "Glad you are here."}}]}
# (days ago, live users, failing among them, test sends) of the Welcome journey's last month.
WELCOME_HISTORY = [
    (0, 4, 0, 1),
    (1, 6, 1, 0),
    (2, 3, 0, 2),
    (4, 8, 0, 0),
    (5, 5, 2, 1),
    (8, 7, 0, 0),
    (11, 2, 0, 0),
    (13, 9, 1, 0),
    (17, 4, 0, 1),
    (22, 6, 0, 0),
    (26, 3, 0, 0),
]


def at(days_ago: int, hour: int) -> datetime:
    day = utc_today() - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def published(environment: Any, name: str) -> Flow:
    return flow_publish(flow=flow_create(environment=environment, name=name, **CARD)).flow


@pytest.fixture
def busy_environment(e2e_environment: Any) -> dict[str, Flow]:
    """A month of the Welcome journey (live starts, a few failing, and tests) and some Winback."""
    environment_analytics_setting_set(environment=e2e_environment, include_test_data=True)
    testuser_create(environment=e2e_environment, user_id="tess-phone", name="Tess")
    welcome = published(e2e_environment, "Welcome journey")
    winback = published(e2e_environment, "Winback")
    published(e2e_environment, "Birthday card")  # never started
    for days_ago, users, failing, tests in WELCOME_HISTORY:
        for start in range(2):
            ids = [f"c{days_ago}-{start}-{n}" for n in range(users // 2 + start * (users % 2))]
            flow_started_at(at(days_ago, 9 + start), flow=welcome, user_ids=ids, failing=ids[:failing] if start else [])
        for _ in range(tests):
            flow_started_at(at(days_ago, 14), flow=welcome, user_ids=["tess-phone"], mode="test", source="workbench")
        if days_ago % 2:
            flow_started_at(at(days_ago, 16), flow=winback, user_ids=[f"w{days_ago}"], source="webhook")
    return {"welcome": welcome, "winback": winback}


def charts_drawn(page: Page, root: str) -> None:
    """Every chart under `root` became a Chart.js chart with a visible canvas."""
    canvases = page.locator(f"{root} canvas[data-chart]")
    expect(canvases.first).to_have_attribute("data-drawn", "true")
    count = canvases.count()
    assert count > 0
    for index in range(count):
        expect(canvases.nth(index)).to_have_attribute("data-drawn", "true")
        box = canvases.nth(index).bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 50
    drawn = page.evaluate(
        f"Array.from(document.querySelectorAll('{root} canvas[data-chart]')).every(c => Chart.getChart(c))"
    )
    assert drawn


def test_a_marketer_follows_activity_from_the_overview_to_a_flows_analytics(
    e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any, busy_environment: dict[str, Flow], tmp_path: Path
) -> None:
    welcome = busy_environment["welcome"]
    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    page = e2e_log_in(viewer)

    # The overview: the counters, then the latest invocations, the week and the failures.
    recent = page.locator("#recent-invocations")
    expect(recent.locator("tbody tr")).to_have_count(10)
    expect(recent.locator("tbody tr").first).to_contain_text("Welcome journey")
    expect(page.locator("#recent-failures")).to_contain_text("The card's image could not be loaded")
    expect(page.locator("#activity-week")).to_contain_text("live")
    charts_drawn(page, "#activity-week")
    page.screenshot(path=tmp_path / "overview.png", full_page=True)

    # The environment's Analytics page: every flow, busiest first, each linking to its tab.
    sections = page.get_by_role("navigation", name="Sections")
    sections.get_by_role("link", name="Analytics").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/analytics/$"))
    expect(sections.get_by_role("link", name="Analytics")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("group", name="Period").get_by_role("link", name="30 days")).to_have_attribute(
        "aria-current", "true"
    )
    charts_drawn(page, "#environment-analytics")
    flows = page.locator("#by-flow tbody tr")
    expect(flows).to_have_count(3)
    expect(flows.nth(0)).to_contain_text("Welcome journey")
    expect(flows.nth(2)).to_contain_text("Birthday card")
    page.screenshot(path=tmp_path / "environment_analytics.png", full_page=True)

    # A flow's tab keeps the period; 7 days, then two chosen dates.
    flows.nth(0).get_by_role("link", name="Welcome journey").click()
    expect(page).to_have_url(re.compile(rf"/e/acme/flows/{welcome.pk}/analytics/\?days=30$"))
    tab_bar = page.get_by_role("navigation", name="Flow", exact=True)
    expect(tab_bar.get_by_role("link", name="Analytics")).to_have_attribute("aria-current", "page")
    charts_drawn(page, "#flow-analytics")
    expect(page.locator(".analytics-total.measure-invocations .figure")).to_have_text(str(2 * len(WELCOME_HISTORY)))
    page.screenshot(path=tmp_path / "flow_analytics.png", full_page=True)

    page.get_by_role("group", name="Period").get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"\?days=7$"))
    expect(page.locator(".analytics-total.measure-invocations .figure")).to_have_text("10")  # days 0, 1, 2, 4 and 5
    charts_drawn(page, "#flow-analytics")
    page.get_by_text("Numbers by day", exact=True).click()
    by_day = page.locator("details.by-day tbody tr")
    expect(by_day).to_have_count(7)
    expect(by_day.first.locator("td").first).to_have_text("2")  # today first, live invocations
    page.screenshot(path=tmp_path / "flow_analytics_7_days.png", full_page=True)

    first, last = utc_today() - timedelta(days=5), utc_today() - timedelta(days=4)
    page.get_by_label("From").fill(first.isoformat())
    page.get_by_label("to", exact=True).fill(last.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"from={first.isoformat()}&to={last.isoformat()}"))
    expect(page.locator(".analytics-total.measure-failed .figure")).to_have_text("2")

    # Only the test sends.
    page.get_by_role("group", name="Live or test").get_by_role("link", name="Test", exact=True).click()
    expect(page).to_have_url(re.compile(r"mode=test$"))
    expect(page.locator(".analytics-total.measure-invocations .figure")).to_have_text("1")
    charts_drawn(page, "#flow-analytics")

    # The numbers behind the charts, one row per day.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"acme-flow-{welcome.pk}-{first}-to-{last}.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert rows[0][:3] == ["date", "invocations_live", "invocations_test"]
    assert rows[1][:3] == [first.isoformat(), "2", "1"]
    assert rows[2][:3] == [last.isoformat(), "2", "0"]


def test_a_new_environment_shows_helpful_empty_states(
    e2e_log_in: Any, e2e_environment: Any, e2e_make_member: Any, tmp_path: Path
) -> None:
    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    quiet = flow_create(environment=e2e_environment, name="Spring sale", **CARD)
    page = e2e_log_in(owner)

    empty = page.locator("#activity-empty")
    expect(empty).to_contain_text("No activity yet")
    expect(empty.get_by_role("link", name="Create a flow")).to_be_visible()
    page.screenshot(path=tmp_path / "overview_empty.png", full_page=True)

    page.goto(f"/e/acme/flows/{quiet.pk}/analytics/")
    expect(page.get_by_role("heading", name="Nothing happened in this period")).to_be_visible()
    expect(page.get_by_role("link", name="Send yourself a test")).to_be_visible()
    expect(page.locator("canvas")).to_have_count(0)
    page.screenshot(path=tmp_path / "flow_analytics_empty.png", full_page=True)

    # Dates the wrong way round are refused at the picker, with what was typed kept.
    today = utc_today()
    page.get_by_label("From").fill(today.isoformat())
    page.get_by_label("to", exact=True).fill((today - timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("The end date is before the start date.")
    expect(page.get_by_label("to", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("From")).to_have_value(today.isoformat())
    page.screenshot(path=tmp_path / "flow_analytics_error.png", full_page=True)
