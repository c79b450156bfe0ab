"""Browser tests of the Segments pages: build a segment in the rule builder while the live count
follows, save it, see it ready with its members; errors at their condition; the dry run of an
edit; delete in the dialog."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from customers.services import customers_upsert

pytestmark = pytest.mark.browser


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Page, str], None]:
    """Screenshots to look at: in E2E_SHOTS when set, else in the test's temporary folder."""
    folder = Path(os.environ.get("E2E_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def shop(e2e_environment):
    customers_upsert(
        environment=e2e_environment,
        profiles=[
            {"user_id": "ada", "name": "Ada", "country": "DE", "tags": ["vip"], "custom_fields": {"plan": "pro"}},
            {"user_id": "bert", "name": "Bert", "country": "DE", "custom_fields": {"plan": "free"}},
            {"user_id": "chloe", "name": "Chloé", "country": "FR", "custom_fields": {"plan": "pro"}},
            {"user_id": "dan", "name": "Dan", "country": "US"},
        ],
    )
    return e2e_environment


def _condition(page: Page, index: int, within: str = "rules"):
    return page.locator(f'[data-path="{within}.conditions[{index}]"]')


def _count(page: Page):
    return page.locator("#preview-count")


def test_a_marketer_builds_a_segment_sees_the_count_follow_and_saves_it(e2e_log_in, e2e_make_member, shop, shot):
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="No segments yet")).to_be_visible()
    shot(page, "01-empty-list")
    page.get_by_role("link", name="New segment").click()

    page.get_by_label("Segment name").fill("Pro customers in Germany")
    # No condition yet: everyone matches.
    expect(_count(page)).to_have_text("4")
    page.get_by_role("button", name="+ Profile field").click()
    first = _condition(page, 0)
    first.get_by_label("Value", exact=True).fill("DE")
    expect(_count(page)).to_have_text("2")

    page.get_by_role("button", name="+ Profile field").click()
    second = _condition(page, 1)
    second.get_by_label("Field", exact=True).select_option("customFields.")
    second.get_by_label("Custom field name", exact=True).fill("plan")
    second.get_by_label("Value", exact=True).fill("pro")
    expect(_count(page)).to_have_text("1")
    expect(page.locator("#preview-sample")).to_have_text("ada")
    expect(page.locator(".seg-joiner")).to_have_text("and")
    shot(page, "02-builder-two-conditions")

    page.get_by_role("button", name="Create segment").click()

    expect(page).to_have_url(re.compile(r"/e/acme/segments/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Pro customers in Germany")
    expect(page.locator("#segment-status .seg-status")).to_have_text("ready")
    expect(page.locator("#member-count")).to_have_text("1")
    expect(page.locator("#members tbody tr")).to_have_count(1)
    expect(page.locator("#members")).to_contain_text("ada")
    expect(page.locator("#segment-status")).to_contain_text("country is DE")
    shot(page, "03-segment-page")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Segments").click()
    row = page.locator("#segments tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Pro customers in Germany")
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("just now")
    shot(page, "04-list")

    # The customer's page lists the segment, loaded from segments.
    page.goto("/e/acme/customers/ada")
    segments = page.locator("#customer-segments")
    expect(segments).to_contain_text("Pro customers in Germany")
    expect(segments).to_contain_text("entered just now")
    shot(page, "09-customer-segments")


def test_each_kind_of_condition_has_inputs_that_fit_and_errors_show_at_their_condition(
    e2e_log_in, e2e_make_member, shop, shot
):
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))
    page.goto("/e/acme/segments/new")
    page.get_by_label("Segment name").fill("Everything")

    # A date field: the operators of dates, a number of days, two numbers for "between".
    page.get_by_role("button", name="+ Profile field").click()
    dates = _condition(page, 0)
    dates.get_by_label("Field", exact=True).select_option("createdAt")
    expect(dates.get_by_label("Operator", exact=True).locator("option")).to_contain_text(
        ["is after", "is before", "is in the last"]
    )
    dates.get_by_label("Operator", exact=True).select_option("betweenDaysAgo")
    expect(dates.get_by_label("From this many days ago", exact=True)).to_have_value("90")
    dates.get_by_label("Operator", exact=True).select_option("withinLastDays")
    expect(dates.get_by_label("Number of days", exact=True)).to_have_value("30")
    dates.get_by_label("Operator", exact=True).select_option("before")
    expect(dates.get_by_label("Date", exact=True)).to_have_attribute("type", "date")
    dates.get_by_label("Date", exact=True).fill("2030-01-01")

    # A list of values as chips.
    page.get_by_role("button", name="+ Profile field").click()
    countries = _condition(page, 1)
    countries.get_by_label("Operator", exact=True).select_option("in")
    countries.get_by_label("Values", exact=True).fill("DE")
    countries.get_by_label("Values", exact=True).press("Enter")
    countries.get_by_label("Values", exact=True).fill("FR")
    countries.get_by_label("Values", exact=True).press("Enter")
    expect(countries.locator(".seg-chip")).to_have_count(2)
    expect(_count(page)).to_have_text("3")

    # A tag test left empty: its error shows at the condition.
    page.get_by_role("button", name="+ Tag").click()
    tag = _condition(page, 2)
    expect(tag.locator(".seg-errors")).to_contain_text("non-empty")
    expect(tag.get_by_label("Tag", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(_count(page)).to_have_text("—")
    shot(page, "05a-error-at-condition")
    tag.get_by_label("Tag", exact=True).fill("vip")
    expect(tag.locator(".seg-errors")).to_be_empty()
    expect(_count(page)).to_have_text("1")

    # An event test with a count, a window and a property filter; a nested group.
    page.get_by_role("button", name="+ Group of conditions").last.click()
    group = _condition(page, 3)
    group.get_by_label("All or any", exact=True).select_option("any")
    group.get_by_role("button", name="+ Event").click()
    event = _condition(page, 1, within="rules.conditions[3]")
    event.get_by_label("Event name", exact=True).fill("purchase")
    event.get_by_label("How often", exact=True).select_option("countGte")
    event.get_by_label("Number of times", exact=True).fill("2")
    event.get_by_label("When", exact=True).select_option("last")
    expect(event.get_by_label("Days", exact=True)).to_have_value("30")
    event.get_by_role("button", name="+ Property filter").click()
    event.get_by_label("Event property", exact=True).fill("plan")
    event.locator(".seg-where").get_by_label("Value", exact=True).fill("pro")
    expect(group.locator(".seg-joiner").first).to_have_text("or")
    expect(_count(page)).to_have_text(re.compile(r"^\d+$"))
    shot(page, "05-builder-every-kind")

    page.get_by_role("button", name="Create segment").click()
    expect(page.locator("#segment-status")).to_contain_text("purchase at least 2 times")


def test_an_edit_shows_the_dry_run_before_saving(e2e_log_in, e2e_make_member, shop, shot):
    from segments.services import segment_create

    segment = segment_create(
        environment=shop,
        name="Germany",
        rules={"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]},
    )
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))
    page.goto(f"/e/acme/segments/{segment.pk}/")
    expect(page.locator("#member-count")).to_have_text("2")

    page.get_by_role("link", name="Edit rules").click()
    _condition(page, 0).get_by_label("Value", exact=True).fill("FR")
    expect(_count(page)).to_have_text("1")
    page.get_by_role("button", name="Review changes").click()

    expect(page.locator("#dry-enter")).to_have_text("1")
    expect(page.locator("#dry-exit")).to_have_text("2")
    expect(page.locator("#dry-stay")).to_have_text("0")
    expect(page.locator("#sample-enter")).to_have_text("chloe")
    shot(page, "06-dry-run")
    page.get_by_role("button", name="Save and update members").click()

    expect(page.locator("#member-count")).to_have_text("1")
    expect(page.locator("#members")).to_contain_text("chloe")
    # Measured at creation and again after the edit: the size chart is drawn.
    expect(page.locator("#segment-size-chart")).to_be_visible()
    page.wait_for_function("document.getElementById('segment-size-chart').dataset.drawn === 'true'")
    shot(page, "08-after-edit-chart")


def test_a_segment_is_deleted_from_the_dialog(e2e_log_in, e2e_make_member, shop, shot):
    from segments.services import segment_create

    segment = segment_create(environment=shop, name="Germany", rules={"match": "all", "conditions": []})
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))
    page.goto(f"/e/acme/segments/{segment.pk}/")

    page.get_by_role("link", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog.get_by_role("heading", name="Delete “Germany”?")).to_be_visible()
    shot(page, "07-delete-dialog")
    dialog.get_by_role("button", name="Delete segment").click()

    expect(page).to_have_url(re.compile(r"/e/acme/segments/$"))
    expect(page.get_by_role("heading", name="No segments yet")).to_be_visible()
