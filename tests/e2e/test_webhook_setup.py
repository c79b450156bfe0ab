"""A marketer sets up a webhook trigger on one screen: paste a sample, map it with the picker
while the preview follows, save, send a test card and open it in the feed preview."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from customers.services import member_test_user_set
from flows.services import flow_create
from workbench.models import Membership

pytestmark = pytest.mark.browser

SAMPLE = {
    "event": {"id": "evt-1001", "type": "order.shipped"},
    "customer": {"id": "edward-phone", "first_name": "Ada", "email": "ada@example.com"},
    "order": {"number": 1042, "total": 59.9},
}


def test_a_marketer_sets_up_a_webhook_trigger_and_sees_its_test_card_in_the_feed(
    e2e_log_in, e2e_environment, e2e_make_member
):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    membership = Membership.objects.get(user=editor.user, environment=e2e_environment)
    member_test_user_set(membership=membership, user_id="edward-phone")
    flow = flow_create(
        environment=e2e_environment,
        name="Order shipped",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[{"type": "send_card", "card": {"title": "Hej {{firstName}}!", "body": "Your order is on its way."}}],
    )
    page = e2e_log_in(editor)

    # The flow page loads its triggers panel; adding a trigger opens its setup page.
    page.goto(f"/e/acme/flows/{flow.pk}/")
    triggers = page.locator("#triggers")
    expect(triggers).to_contain_text("No webhook triggers yet")
    triggers.get_by_role("button", name="Add webhook trigger").click()
    expect(page).to_have_url(re.compile(r"/e/acme/triggers/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Webhook trigger")
    expect(page.locator("#webhook-url")).to_contain_text("/hooks/")
    expect(page.locator("#mapping-preview")).to_contain_text("There is no sample yet")

    # Paste a sample.
    page.get_by_label("Sample body (JSON)").fill(json.dumps(SAMPLE, indent=2))
    page.get_by_role("button", name="Save sample").click()
    expect(page.get_by_role("status")).to_contain_text("Sample saved.")
    expect(page.get_by_label("Current sample")).to_contain_text("ada@example.com")

    # Structured mapping with the picker; the preview follows every change.
    mapping = page.locator("#mapping")
    mapping.get_by_label("Structured").check()
    preview = page.locator("#mapping-preview")
    mapping.get_by_label("Pick targetUserIds from the sample").select_option("$.customer.id")
    expect(mapping.get_by_label("targetUserIds", exact=True)).to_have_value("$.customer.id")
    expect(preview).to_contain_text("A valid start request")
    expect(preview).to_contain_text('"edward-phone"')
    mapping.get_by_label("Pick flowInvocationId from the sample").select_option("$.event.id")
    mapping.get_by_label("Pick firstName from the sample").select_option("$.customer.first_name")
    expect(preview).to_contain_text('"firstName": "Ada"')
    expect(preview).to_contain_text('"flowInvocationId": "evt-1001"')

    # A typo shows its problem as you type, and fixing it clears it.
    mapping.get_by_label("firstName", exact=True).fill("$.customer.nickname")
    expect(preview).not_to_contain_text('"firstName"')
    mapping.get_by_label("firstName", exact=True).fill("$.customer.first_name")
    expect(preview).to_contain_text('"firstName": "Ada"')

    mapping.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("status")).to_contain_text("Mapping saved.")
    expect(page.locator("#mapping").get_by_label("firstName", exact=True)).to_have_value("$.customer.first_name")

    # Send a test card, then open it in the feed preview.
    page.get_by_role("button", name="Send test card").click()
    result = page.locator("#send-test-result")
    expect(result).to_contain_text("Test started.")
    expect(result).to_contain_text("evt-1001")
    result.get_by_role("link", name=re.compile(r"Open edward-phone.s feed")).click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/feed/\?user=edward-phone&test=true$"))
    feed = page.locator("#feed")
    expect(feed.locator(".app-card")).to_have_count(1)
    expect(feed).to_contain_text("Hej Ada!")

    # The invocation is linked from the setup page's test result too.
    page.go_back()
    page.get_by_role("button", name="Send test card").click()
    expect(page.locator("#send-test-result")).to_contain_text("Already sent")
    page.locator("#send-test-result").get_by_role("link", name="Open the invocation").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/invocations/\d+/$"))
    expect(page.locator("#flow-invocation-id")).to_have_text("evt-1001")
