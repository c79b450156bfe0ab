"""The flow's Triggers tab as a marketer meets it: every trigger with its name, mode and state at
a glance, "Add trigger", the header's line saying which triggers are live, and going live
safely (refused until the flow is published, then confirmed in the Workbench's dialog)."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from flows.services import flow_create, flow_publish
from triggers import services
from triggers.models import Trigger

pytestmark = pytest.mark.browser

CARD = {"type": "send_card", "card": {"title": "Thanks for your order", "body": "It is on its way."}}
MAPPING = {"type": "structured", "structured": {"targetUserIds": "$.customer.id"}}


def post_to(url: str, body: object) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_triggers_tab_shows_each_trigger_at_a_glance(
    e2e_log_in, e2e_environment, e2e_make_member, live_server, tmp_path
):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(environment=e2e_environment, name="Order shipped", steps=[CARD])
    flow_publish(flow=flow)
    orders = services.webhook_trigger_create(flow=flow, name="Shop orders", mapping=MAPPING, mode="live")
    invoices = services.webhook_trigger_create(
        flow=flow, name="Stripe invoices", mapping=MAPPING, sample={"customer": {"id": "c-1"}}, shape_check=True
    )
    services.trigger_mode_set(trigger=invoices, mode="live")
    services.trigger_pause(trigger=invoices, reason="A request had no customer.id, unlike the sample.")
    assert post_to(f"{live_server.url}/hooks/{orders.token}", {"customer": {"id": "c-9"}}) == 202
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/")
    header = page.locator("#flow-live-triggers")
    expect(header).to_contain_text("Live: Shop orders.")
    expect(header).to_contain_text("Paused: Stripe invoices.")
    page.get_by_role("navigation", name="Flow").get_by_role("link", name="Triggers").click()

    table = page.locator(".trigger-table")
    expect(table.locator("tbody tr")).to_have_count(3)
    api_row = page.locator(f"#trigger-{Trigger.objects.get(flow=flow, type='api').pk}")
    expect(api_row).to_contain_text("built into every flow")
    orders_row = page.locator(f"#trigger-{orders.pk}")
    expect(orders_row.get_by_role("link", name="Shop orders")).to_be_visible()
    expect(orders_row.locator(".badge.mode-live")).to_have_text("live")
    expect(orders_row.locator(".badge.outcome-accepted")).to_have_text("accepted")
    expect(orders_row).to_contain_text("202")
    expect(orders_row.locator("td.num")).to_have_text("1")
    paused_row = page.locator(f"#trigger-{invoices.pk}")
    expect(paused_row.locator(".badge.mode-paused")).to_have_text("paused")
    expect(paused_row).to_contain_text("A request had no customer.id, unlike the sample.")
    expect(page.locator("#api-start-url")).to_contain_text(f"/api/v1/acme/action-flow/{flow.pk}/start")
    page.screenshot(path=tmp_path / "triggers_tab.png", full_page=True)

    # Add trigger offers every kind: webhook to add, the API as built in.
    page.locator("#add-trigger summary").click()
    menu = page.locator("#add-trigger .menu-panel")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("link", name=re.compile("^Webhook"))).to_be_visible()
    expect(menu).to_contain_text("built in")
    page.screenshot(path=tmp_path / "add_trigger_menu.png")

    # A trigger's row leads to its setup page, named.
    page.keyboard.press("Escape")
    orders_row.get_by_role("link", name="Shop orders").click()
    expect(page.locator("#trigger-title")).to_contain_text("Shop orders")


def test_a_trigger_goes_live_only_once_the_flow_is_published(e2e_log_in, e2e_environment, e2e_make_member, tmp_path):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(environment=e2e_environment, name="Welcome", steps=[CARD])
    trigger = services.webhook_trigger_create(flow=flow, name="Signups", mapping=MAPPING)
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/")
    expect(page.locator("#go-live-blocked")).to_contain_text("Not published yet.")
    expect(page.locator("#flow-live-triggers")).to_contain_text("publish the flow, then switch a trigger to live")

    page.goto(f"/e/acme/triggers/{trigger.pk}/")
    live = page.locator("#mode").get_by_role("button", name="Live")
    expect(live).to_be_disabled()
    expect(page.locator("#live-blocked")).to_contain_text("Publish the flow first")
    page.screenshot(path=tmp_path / "live_blocked.png", full_page=True)

    flow_publish(flow=flow)
    page.reload()
    expect(page.locator("#live-blocked")).to_have_count(0)
    page.locator("#mode").get_by_role("button", name="Live").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Go live? Requests to the URL will start the published flow for real customers.")
    dialog.get_by_role("button", name="Go live").click()
    expect(page.get_by_role("status")).to_contain_text("The trigger is live")
    expect(page.locator("#flow-live-triggers")).to_contain_text("Live: Signups.")
    assert Trigger.objects.get(pk=trigger.pk).mode == "live"
