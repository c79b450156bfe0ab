"""A marketer sets up a webhook trigger: add it from the flow's Triggers tab with a name, paste a
sample, map it with the picker (each field's sample value beside its path) while the preview
follows, save, send test cards (each one a new test) and open one in the feed preview; then
sign it with the Stripe preset and keep the form and its JSON in step."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from customers.services import member_test_user_set
from flows.services import flow_create
from triggers.models import Trigger
from workbench.models import Membership

pytestmark = pytest.mark.browser

SAMPLE = {
    "event": {"id": "evt-1001", "type": "order.shipped"},
    "customer": {"id": "edward-phone", "first_name": "Ada", "email": "ada@example.com"},
    "order": {"number": 1042, "total": 59.9},
}


@pytest.fixture
def editor_and_flow(e2e_environment, e2e_make_member):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    membership = Membership.objects.get(user=editor.user, environment=e2e_environment)
    member_test_user_set(membership=membership, user_id="edward-phone")
    flow = flow_create(
        environment=e2e_environment,
        name="Order shipped",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[{"type": "send_card", "card": {"title": "Hej {{firstName}}!", "body": "Your order is on its way."}}],
    )
    return editor, flow


def test_a_marketer_sets_up_a_webhook_trigger_and_sees_its_test_card_in_the_feed(e2e_log_in, editor_and_flow, tmp_path):
    editor, flow = editor_and_flow
    page = e2e_log_in(editor)

    # From the flow's Triggers tab, Add trigger → Webhook, named.
    page.goto(f"/e/acme/flows/{flow.pk}/")
    page.get_by_role("navigation", name="Flow").get_by_role("link", name="Triggers").click()
    expect(page).to_have_url(re.compile(rf"/e/acme/flows/{flow.pk}/triggers/$"))
    page.locator("#add-trigger summary").click()
    page.locator("#add-trigger").get_by_role("link", name=re.compile("^Webhook")).click()
    page.get_by_label("Name").fill("Shop orders")
    page.get_by_role("button", name="Create webhook trigger").click()
    expect(page).to_have_url(re.compile(r"/e/acme/triggers/\d+/$"))
    expect(page.get_by_role("status")).to_contain_text("Shop orders added, in test mode.")
    expect(page.locator("#trigger-title")).to_contain_text("Shop orders")
    expect(page.locator("#webhook-url")).to_contain_text("/hooks/")

    # A new trigger greets with guidance, not a red box of problems.
    preview = page.locator("#mapping-preview")
    expect(preview.locator("#preview-guide")).to_contain_text("No sample yet.")
    expect(preview.get_by_role("alert")).to_have_count(0)
    expect(page.locator("#security .signature-fields")).to_be_hidden()
    page.screenshot(path=tmp_path / "new_trigger_setup.png", full_page=True)

    # Paste a sample: still guidance (map it next), not problems.
    page.get_by_label("Sample body (JSON)").fill(json.dumps(SAMPLE, indent=2))
    page.get_by_role("button", name="Save sample").click()
    expect(page.get_by_role("status")).to_contain_text("Sample saved.")
    expect(page.get_by_label("Current sample")).to_contain_text("ada@example.com")
    expect(preview.locator("#preview-guide")).to_contain_text("Next: map the sample.")
    expect(preview.get_by_role("alert")).to_have_count(0)

    # Structured mapping with the picker, which shows each field's value; the preview follows.
    mapping = page.locator("#mapping")
    mapping.get_by_label("Structured").check()
    target_picker = mapping.get_by_label("Pick targetUserIds from the sample")
    expect(target_picker.locator("option", has_text="$.customer.id")).to_have_text('$.customer.id  ·  "edward-phone"')
    target_picker.select_option("$.customer.id")
    expect(mapping.get_by_label("targetUserIds", exact=True)).to_have_value("$.customer.id")
    expect(preview).to_contain_text("A valid start request")
    expect(preview).to_contain_text('"edward-phone"')
    mapping.get_by_label("Pick flowInvocationId from the sample").select_option("$.event.id")
    mapping.get_by_label("Pick firstName from the sample").select_option("$.customer.first_name")
    expect(preview).to_contain_text('"firstName": "Ada"')
    expect(preview).to_contain_text('"flowInvocationId": "evt-1001"')

    # notificationDetail is mapped like metadata: a name and a value.
    mapping.get_by_label("Notification detail entry 1 name").fill("orderNumber")
    mapping.get_by_label("Pick Notification detail entry 1 from the sample").select_option("$.order.number")
    expect(preview).to_contain_text('"orderNumber": 1042')

    # A typo shows its problem as you type, and fixing it clears it.
    mapping.get_by_label("firstName", exact=True).fill("$.customer.nickname")
    expect(preview).not_to_contain_text('"firstName"')
    mapping.get_by_label("firstName", exact=True).fill("$.customer.first_name")
    expect(preview).to_contain_text('"firstName": "Ada"')

    mapping.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("status")).to_contain_text("Mapping saved.")
    expect(page.locator("#mapping").get_by_label("firstName", exact=True)).to_have_value("$.customer.first_name")
    trigger = Trigger.objects.get(flow=flow, type="webhook")
    assert trigger.config["mapping"]["structured"]["notificationDetail"] == {"orderNumber": "$.order.number"}

    # Each click of Send test card is a new test.
    page.get_by_role("button", name="Send test card").click()
    result = page.locator("#send-test-result")
    expect(result).to_contain_text("Test started.")
    first_key = result.locator("code").first.inner_text()
    assert first_key.startswith("evt-1001-test-")
    page.get_by_role("button", name="Send test card").click()
    expect(result.locator("code").first).not_to_have_text(first_key)
    expect(result).to_contain_text("Test started.")
    expect(result).not_to_contain_text("Already sent")
    second_key = result.locator("code").first.inner_text()

    result.get_by_role("link", name=re.compile(r"Open edward-phone.s feed")).click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/feed/\?user=edward-phone&test=true$"))
    feed = page.locator("#feed")
    expect(feed.locator(".app-card")).to_have_count(2)
    expect(feed).to_contain_text("Hej Ada!")

    # The invocation is linked from the setup page's test result too.
    page.go_back()
    page.get_by_role("button", name="Send test card").click()
    expect(page.locator("#send-test-result")).to_contain_text("Test started.")
    page.locator("#send-test-result").get_by_role("link", name="Open the invocation").click()
    expect(page).to_have_url(re.compile(r"/e/acme/flows/invocations/\d+/$"))
    expect(page.locator("#flow-invocation-id")).to_contain_text("evt-1001-test-")
    expect(page.locator("#flow-invocation-id")).not_to_have_text(second_key)


def test_the_stripe_preset_fills_the_signature_form_and_its_json_follows(e2e_log_in, editor_and_flow, tmp_path):
    editor, flow = editor_and_flow
    page = e2e_log_in(editor)
    page.goto(f"/e/acme/flows/{flow.pk}/triggers/new/webhook")
    page.get_by_label("Name").fill("Stripe invoices")
    page.get_by_role("button", name="Create webhook trigger").click()
    # The preset is an htmx request on the select's change: choose once the new page's scripts
    # have run (a change made before htmx has read the page goes nowhere).
    page.wait_for_url(re.compile(r"/e/acme/triggers/\d+/"))
    page.wait_for_load_state("load")

    security = page.locator("#security")
    security.get_by_label("Signed by").select_option("stripe")
    expect(security.locator("#preset-filled")).to_contain_text("Filled in for Stripe.")
    expect(security.get_by_label("Signature header")).to_have_value("Stripe-Signature")
    expect(security.get_by_label("Signature prefix")).to_have_value("v1=")
    expect(security.get_by_label("Timestamp prefix")).to_have_value("t=")
    expect(security.get_by_label("Signed text")).to_have_value("[timestamp].[payload]")
    expect(security.get_by_label("Tolerance (seconds)")).to_have_value("300")
    security.get_by_label("Signing secret").fill("whsec_e2e_secret")

    # The JSON of the Advanced view follows the form.
    security.get_by_label("Tolerance (seconds)").fill("120")
    security.locator("#signature-advanced summary").click()
    advanced = json.loads(security.get_by_label("Signature configuration (JSON)").input_value())
    assert advanced["toleranceSeconds"] == 120
    assert advanced["data"]["signature"] == {"header": "Stripe-Signature", "parsePrefix": "v1="}
    assert advanced["secret"] == "********"  # write-only, even while typed
    assert "whsec_e2e_secret" not in security.get_by_label("Signature configuration (JSON)").input_value()
    expect(security.get_by_label("the form above")).to_be_checked()
    page.screenshot(path=tmp_path / "signature_stripe.png", full_page=True)
    security.screenshot(path=tmp_path / "signature_form.png")

    security.get_by_role("button", name="Save security").click()
    expect(page.get_by_role("status")).to_contain_text("Security settings saved.")
    signature = Trigger.objects.get(flow=flow, type="webhook").config["security"]["signature"]
    assert signature["secret"] == "whsec_e2e_secret"
    assert signature["toleranceSeconds"] == 120
    assert signature["data"]["timestamp"] == {"header": "Stripe-Signature", "parsePrefix": "t="}

    # Saved: Stripe is chosen, the secret is not shown; editing the JSON updates the form and saves from it.
    expect(security.get_by_label("Signed by")).to_have_value("stripe")
    expect(security.get_by_label("Signing secret")).to_have_value("")
    assert "whsec_e2e_secret" not in page.content()
    security.locator("#signature-advanced summary").click()
    box = security.get_by_label("Signature configuration (JSON)")
    edited = json.loads(box.input_value())
    assert edited["secret"] == "********"
    edited["toleranceSeconds"] = 60
    box.fill(json.dumps(edited, indent=2))
    expect(security.get_by_label("this JSON")).to_be_checked()
    expect(security.get_by_label("Tolerance (seconds)")).to_have_value("60")
    security.get_by_role("button", name="Save security").click()
    expect(page.get_by_role("status")).to_contain_text("Security settings saved.")
    signature = Trigger.objects.get(flow=flow, type="webhook").config["security"]["signature"]
    assert (signature["secret"], signature["toleranceSeconds"]) == ("whsec_e2e_secret", 60)
