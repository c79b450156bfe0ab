"""Browser tests of manual starts (SPEC section 6): the customers dashboard's "Send to N
customers" (filter in the rule builder, tick some, preview in the dialog, progress), and a CSV
send (upload, dry run, confirm, progress with the error report)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from playwright.sync_api import Page, expect

from customers.services import customers_upsert
from flows import services as flow_services
from flows.models import Flow, Invocation
from triggers import csv_tasks, manual_sends
from triggers.models import CsvTask, ManualSend

pytestmark = pytest.mark.browser

GREETING = {
    "variables": [{"name": "firstName", "default": "there", "required": False}],
    "steps": [{"type": "send_card", "card": {"title": "Hello {{firstName}}", "body": "Spring sale."}}],
}


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
            {"user_id": "ada", "name": "Ada", "country": "DE"},
            {"user_id": "bert", "name": "Bert", "country": "DE"},
            {"user_id": "carl", "name": "Carl", "country": "DE"},
            {"user_id": "chloe", "name": "Chloé", "country": "FR"},
        ],
    )
    flow = flow_services.flow_create(environment=e2e_environment, name="Spring sale", **GREETING)
    flow_services.flow_publish(flow=flow)
    return e2e_environment


def test_a_marketer_sends_a_flow_to_filtered_customers_and_watches_it_run(e2e_log_in, e2e_make_member, shop, shot):
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))

    page.goto("/e/acme/customers/")
    page.get_by_role("link", name="Send to customers…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send to customers")
    expect(page.locator("#audience-count")).to_have_text("4")  # no condition: everyone
    expect(page.locator("#send-limit")).to_have_text("10,000")
    page.get_by_role("button", name="+ Profile field").click()
    page.locator('[data-path="rules.conditions[0]"]').get_by_label("Value", exact=True).fill("DE")
    expect(page.locator("#audience-count")).to_have_text("3")
    page.get_by_role("checkbox", name="carl").check()
    page.get_by_role("checkbox", name="ada").check()
    expect(page.get_by_label("Only the customers I tick")).to_be_checked()
    page.get_by_label("Flow").select_option(label="Spring sale")
    shot(page, "01-dashboard-filtered")

    page.get_by_role("button", name="Send…").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Send “Spring sale” to 2 customers?")
    expect(dialog.locator("#review-facts")).to_contain_text("10,000")
    expect(dialog.get_by_label("firstName")).to_have_attribute("placeholder", "Default: there")
    dialog.get_by_label("firstName").fill("friend")
    shot(page, "02-review-dialog")
    dialog.get_by_role("button", name="Send to 2 customers").click()

    expect(page).to_have_url(re.compile(r"/e/acme/triggers/sends/\d+/$"))
    send = ManualSend.objects.get()
    assert send.user_ids == ["ada", "carl"]
    shot(page, "03-progress")
    # Until triggers.tasks wraps the service, eager mode cannot run it: run it as the worker
    # would (a send already done is not claimed again); the page's polling picks it up.
    manual_sends.manual_send_run(send_id=send.pk)
    expect(page.locator("#send-status")).to_have_text("Completed")
    expect(page.locator("#send-handled")).to_have_text("2")
    shot(page, "04-progress-done")
    assert sorted(Invocation.objects.values_list("flow_invocation_id", flat=True)) == [
        f"dash-{send.pk}-ada",
        f"dash-{send.pk}-carl",
    ]
    assert {invocation.variables["firstName"] for invocation in Invocation.objects.all()} == {"friend"}
    expect(page.locator("#send-facts")).to_contain_text("firstName = friend")


def test_an_audience_over_the_limit_is_refused_in_the_dialog(e2e_log_in, e2e_make_member, shop, shot):
    shop.manual_send_limit = 2
    shop.save()
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))

    page.goto("/e/acme/triggers/send/")
    expect(page.locator("#over-limit")).to_be_visible()
    page.get_by_label("Flow").select_option(label="Spring sale")
    page.get_by_role("button", name="Send…").click()

    dialog = page.locator("#confirm-dialog")
    expect(dialog.locator("#send-refusal")).to_contain_text("This audience has 4 customers, more than the 2")
    shot(page, "05-over-limit")
    assert ManualSend.objects.count() == 0


def test_a_csv_send_goes_from_upload_to_dry_run_to_progress(e2e_log_in, e2e_make_member, shop, shot, tmp_path):
    csv_path = tmp_path / "spring.csv"
    csv_path.write_text("target.usersById,payload.variables.firstName\nada,Ada\n,Nobody\nbert|carl,Friends\n")
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))

    page.goto("/e/acme/flows/")
    page.get_by_role("link", name="Spring sale").click()
    page.get_by_role("link", name="Send with a CSV").click()
    shot(page, "06-csv-upload")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and check").click()

    expect(page.get_by_role("heading", name="Dry run: nothing has started")).to_be_visible()
    expect(page.locator("#dry-rows")).to_have_text("3")
    expect(page.locator("#dry-targets")).to_have_text("3")
    expect(page.locator("#dry-errors")).to_have_text("1")
    shot(page, "07-csv-dry-run")
    assert Invocation.objects.count() == 0
    page.get_by_role("button", name="Start 2 rows").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Start 2 rows").click()

    expect(page.locator("#csv-status")).to_have_text("Completed")
    expect(page.locator("#csv-done")).to_have_text("3")
    expect(page.locator("#csv-failed")).to_have_text("1")
    expect(page.get_by_role("link", name="Download the error report (CSV)")).to_be_visible()
    shot(page, "08-csv-progress")
    assert Invocation.objects.filter(source="csv").count() == 2

    page.goto("/e/acme/triggers/csv/")
    expect(page.locator(".csv-tasks tbody tr")).to_have_count(1)
    shot(page, "09-csv-list")


def test_a_big_files_dry_run_shows_its_progress_until_a_worker_has_checked_every_row(
    e2e_log_in, e2e_make_member, shop, shot
):
    flow = Flow.objects.get(name="Spring sale")
    rows = "".join(f"user-{n},Friend {n}\n" for n in range(5000))
    with mock.patch("triggers.csv_tasks.enqueue"):  # no worker has taken the dry run yet
        task = csv_tasks.csv_task_stage(
            flow=flow,
            mode="live",
            upload=io.BytesIO(f"target.usersById,payload.variables.firstName\n{rows}".encode()),
            file_name="big.csv",
            by=None,
            confirm=False,
        )
    CsvTask.objects.filter(pk=task.pk).update(dry_run_rows=2000)
    page = e2e_log_in(e2e_make_member("edward", {shop: "editor"}))

    page.goto(f"/e/acme/triggers/csv/{task.pk}/")
    expect(page.get_by_role("heading", name="Checking every row before anything starts…")).to_be_visible()
    expect(page.locator("#dry-checked")).to_contain_text("2,000 of 5,000 rows checked")
    shot(page, "09-csv-checking")
    csv_tasks.csv_task_check(task_id=task.pk)  # the worker

    expect(page.get_by_role("heading", name="Dry run: nothing has started")).to_be_visible()
    expect(page.locator("#dry-rows")).to_have_text("5,000")
    expect(page.get_by_role("button", name="Start 5,000 rows")).to_be_visible()
