"""The flow's triggers tab (/e/<env>/flows/<id>/triggers/), the header's live-triggers line,
adding and naming a trigger, going live from the Workbench, and the setup page's first
impression (guidance, not problems), as each persona sees them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows.services import flow_archive, flow_publish
from tests.triggers.conftest import STRUCTURED_MAPPING, delivery
from triggers import selectors, services
from triggers.kinds import TRIGGER_KINDS, addable_kinds
from triggers.mapping import PRESETS
from triggers.models import Trigger, WebhookRequest

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def tab_url(flow: Any, tail: str = "") -> str:
    return f"/e/acme/flows/{flow.pk}/triggers/{tail}"


def setup_url(trigger: Trigger, tail: str = "") -> str:
    return f"/e/acme/triggers/{trigger.pk}/{tail}"


def text(response: Any) -> str:
    return response.content.decode()


def row_of(page: str, trigger: Trigger) -> str:
    return re.search(rf'<tr id="trigger-{trigger.pk}".*?</tr>', page, re.S).group(0)


# --- The tab ------------------------------------------------------------------------------------


def test_the_tab_lists_the_api_trigger_with_its_urls_and_example(login, viewer, flow):
    response = login(viewer).get(tab_url(flow))

    assert response.status_code == 200
    page = text(response)
    assert 'aria-current="page">Triggers</a>' in page  # the flow page's tab bar, this tab current
    api = Trigger.objects.get(flow=flow, type="api")
    assert "built into every flow" in row_of(page, api)
    assert f"http://testserver/api/v1/acme/action-flow/{flow.pk}/start" in page
    assert f"http://testserver/api/v1/acme/action-flow/{flow.pk}/test" in page
    assert 'id="api-curl"' in page
    assert "Only the API starts this flow so far." in page


def test_each_webhook_shows_its_name_mode_and_state_at_a_glance(login, viewer, flow, webhook_trigger, post_hook):
    orders = webhook_trigger(mapping=STRUCTURED_MAPPING, mode="live")
    services.trigger_rename(trigger=orders, name="Orders from Shopify")
    invoices = webhook_trigger(mapping=STRUCTURED_MAPPING, sample=delivery("s"), shape_check=True)
    unnamed = webhook_trigger()
    post_hook(orders, delivery("d-1"))
    post_hook(orders, b"not json")
    post_hook(invoices, {"surprise": True})  # pauses it and is held
    old = post_hook(unnamed, b"{}")
    assert old.status_code == 422
    WebhookRequest.objects.filter(trigger=unnamed).update(received_at=timezone.now() - timedelta(days=2))

    page = text(login(viewer).get(tab_url(flow)))

    row = row_of(page, orders)
    assert "Orders from Shopify" in row
    assert 'class="badge mode-live">live' in row
    assert "refused</span>" in row
    assert ">400<" in row
    assert re.search(r'class="num">2<', row)  # requests today
    row = row_of(page, invoices)
    assert 'class="badge mode-paused">paused' in row
    assert "(was test)" in row
    assert "1 held" in row
    row = row_of(page, unnamed)
    assert f"Webhook {unnamed.pk}" in row
    assert "2\xa0days ago" in row or "2 days ago" in row
    assert '<span class="none">0</span>' in row  # nothing today


def test_the_tab_reads_its_triggers_in_a_fixed_number_of_queries(
    flow, webhook_trigger, post_hook, django_assert_num_queries
):
    for number in range(3):
        post_hook(webhook_trigger(), delivery(f"d-{number}"))

    with django_assert_num_queries(1):
        triggers = list(selectors.trigger_overview_list(flow=flow, since=timezone.now() - timedelta(days=1)))

    assert [trigger.requests_since for trigger in triggers] == [0, 1, 1, 1]


def test_add_trigger_offers_every_kind_of_the_registry(login, editor, flow):
    page = text(login(editor).get(tab_url(flow)))

    menu = page[page.index('id="add-trigger"') : page.index("</details>")]
    for kind in addable_kinds():
        assert f'href="/e/acme/flows/{flow.pk}/triggers/new/{kind.type}"' in menu
    assert "Webhook" in menu
    assert "API" in menu
    assert "built in" in menu
    assert "Segment" in menu
    assert "Event" in menu
    assert "Salesforce Marketing Cloud" in menu
    assert "Marketo" in menu
    assert len(TRIGGER_KINDS) == len({kind.type for kind in TRIGGER_KINDS}) >= 5


def test_viewers_and_archived_flows_get_no_add_trigger(login, viewer, editor, flow):
    assert "Add trigger" not in text(login(viewer).get(tab_url(flow)))
    flow_archive(flow=flow)
    page = text(login(editor).get(tab_url(flow)))
    assert "Add trigger" not in page
    assert "this flow starts nothing" in page


def test_an_editor_adds_a_named_webhook_and_lands_on_its_setup_page(login, editor, flow):
    client = login(editor)
    form = client.get(tab_url(flow, "new/webhook"))
    assert form.status_code == 200
    assert "New webhook trigger" in text(form)

    response = client.post(tab_url(flow, "new/webhook"), {"name": "Orders from Shopify"})

    trigger = Trigger.objects.get(flow=flow, type="webhook")
    assert (trigger.name, trigger.mode, trigger.created_by) == ("Orders from Shopify", "test", editor)
    assert response["Location"] == setup_url(trigger)
    page = text(client.get(response["Location"]))
    assert "Orders from Shopify added, in test mode." in page
    assert f"/hooks/{trigger.token}" in page
    assert "Orders from Shopify" in text(client.get(tab_url(flow)))


def test_a_webhook_added_without_a_name_shows_its_number(login, editor, flow):
    login(editor).post(tab_url(flow, "new/webhook"), {"name": "  "})

    trigger = Trigger.objects.get(flow=flow, type="webhook")
    assert trigger.name == ""
    assert f"Webhook {trigger.pk}" in text(login(editor).get(tab_url(flow)))


def test_an_archived_flow_gets_no_new_webhook_from_the_page(login, editor, flow):
    flow_archive(flow=flow)

    response = login(editor).post(tab_url(flow, "new/webhook"), {"name": "Late"}, follow=True)

    assert "Archived flows start nothing" in text(response)
    assert not Trigger.objects.filter(type="webhook").exists()


def test_the_old_triggers_panel_redirects_to_the_tab(login, viewer, flow):
    response = login(viewer).get(f"/e/acme/triggers/?flow={flow.pk}")

    assert (response.status_code, response["Location"]) == (302, tab_url(flow))


def test_the_setup_page_renames_the_trigger(login, editor, webhook_trigger):
    trigger = webhook_trigger()
    client = login(editor)

    response = client.post(setup_url(trigger, "name"), {"name": "Paid invoices"})

    assert response.status_code == 302
    trigger.refresh_from_db()
    assert trigger.name == "Paid invoices"
    page = text(client.get(setup_url(trigger)))
    assert re.search(r'id="trigger-title">Paid invoices <span class="badge mode-test">', page)
    too_long = client.post(setup_url(trigger, "name"), {"name": "x" * 201})
    assert too_long.status_code == 400
    assert "Ensure this value has at most 200 characters" in text(too_long)


# --- Which triggers are live --------------------------------------------------------------------


def test_the_flow_header_loads_which_triggers_are_live(login, viewer, flow):
    page = text(login(viewer).get(f"/e/acme/flows/{flow.pk}/"))

    assert f'hx-get="{tab_url(flow, "live-summary")}"' in page


def test_the_live_summary_names_the_live_triggers_and_the_paused_ones(login, viewer, flow, webhook_trigger):
    orders = webhook_trigger(mode="live")
    services.trigger_rename(trigger=orders, name="Orders")
    stripe = webhook_trigger(mode="live")
    webhook_trigger()  # in test: not named
    paused = webhook_trigger(mode="live")
    services.trigger_pause(trigger=paused, reason="checking")

    summary = text(login(viewer).get(tab_url(flow, "live-summary"), **HTMX))

    assert "<html" not in summary
    live = f'<a href="{setup_url(orders)}">Orders</a>, <a href="{setup_url(stripe)}">Webhook {stripe.pk}</a>.'
    assert f"Live:</strong> {live}" in summary
    assert f'Paused:</strong> <a href="{setup_url(paused)}">Webhook {paused.pk}</a>' in summary


def test_the_live_summary_says_when_nothing_is_live_and_why(login, viewer, flow, draft_flow):
    client = login(viewer)

    assert "No trigger is live yet." in text(client.get(tab_url(flow, "live-summary")))
    assert "publish the flow, then switch a trigger to live" in text(client.get(tab_url(draft_flow, "live-summary")))


# --- Going live from the Workbench --------------------------------------------------------------


def test_an_unpublished_flows_trigger_page_disables_live_and_says_why(login, editor, webhook_trigger, draft_flow):
    trigger = webhook_trigger(on_flow=draft_flow)
    client = login(editor)

    page = text(client.get(setup_url(trigger)))
    assert (
        '<button type="button" class="mode-option mode-live" disabled aria-describedby="live-blocked">Live</button>'
        in page
    )
    assert "Live is not available yet." in page
    assert "Publish the flow first" in page
    assert "Not published yet." in text(client.get(tab_url(draft_flow)))

    refused = client.post(setup_url(trigger, "mode"), {"mode": "live"}, follow=True)

    assert "This flow has no published version yet" in text(refused)
    assert Trigger.objects.get(pk=trigger.pk).mode == "test"

    flow_publish(flow=draft_flow)
    page = text(client.get(setup_url(trigger)))
    assert "Live is not available yet." not in page
    client.post(setup_url(trigger, "mode"), {"mode": "live"})
    assert Trigger.objects.get(pk=trigger.pk).mode == "live"


def test_going_live_asks_with_the_workbench_dialog(login, editor, webhook_trigger):
    page = text(login(editor).get(setup_url(webhook_trigger())))

    go_live = "Go live? Requests to the URL will start the published flow for real customers."
    assert f'data-confirm="{go_live}" data-confirm-label="Go live"' in page
    assert 'data-confirm-label="Disable" data-confirm-danger' in page


def test_a_paused_live_trigger_of_an_archived_flow_explains_instead_of_offering_reactivate(
    login, editor, webhook_trigger, flow
):
    trigger = webhook_trigger(mode="live")
    services.trigger_pause(trigger=trigger, reason="checking")
    flow_archive(flow=flow)

    page = text(login(editor).get(setup_url(trigger)))

    assert 'id="reactivate-blocked"' in page
    assert ">Reactivate</button>" not in page


# --- A new trigger's first impression -----------------------------------------------------------


def test_a_new_trigger_greets_with_guidance_not_problems(login, editor, webhook_trigger):
    fresh = webhook_trigger()
    with_sample = webhook_trigger(sample=delivery("s-1"))
    client = login(editor)

    page = text(client.get(setup_url(fresh)))
    assert 'role="alert"' not in page[page.index('id="mapping-preview"') :][:1500]
    assert "problem" not in page[page.index('id="mapping-preview"') :][:1500]
    assert "No sample yet." in page

    page = text(client.get(setup_url(with_sample)))
    preview = page[page.index('id="mapping-preview"') :][:2000]
    assert "Next: map the sample." in preview
    assert 'role="alert"' not in preview
    assert "targetUserIds" in preview  # what is missing, said as a next step

    # Once the member works on the mapping, problems are problems.
    acted = text(client.post(setup_url(with_sample, "preview"), {"mapping_type": "none"}, **HTMX))
    assert 'role="alert"' in acted
    assert "problem" in acted


def test_notification_detail_is_mapped_in_the_structured_editor(login, editor, webhook_trigger):
    trigger = webhook_trigger(sample=delivery("s-1"), mapping=STRUCTURED_MAPPING)
    client = login(editor)
    page = text(client.get(setup_url(trigger)))
    assert "Notification detail" in page
    assert 'aria-label="Notification detail entry 1 name"' in page

    posted = {
        "mapping_type": "structured",
        "target-kind": "path",
        "target-value": "$.customer.id",
        "fid-kind": "path",
        "fid-value": "$.delivery.id",
        "var-0-name": "firstName",
        "var-0-kind": "path",
        "var-0-value": "$.customer.first_name",
        "nd-0-name": "title",
        "nd-0-kind": "literal",
        "nd-0-value": "Your order",
        "nd-1-name": "deliveryId",
        "nd-1-kind": "path",
        "nd-1-value": "$.delivery.id",
        "meta-0-name": "",
        "meta-0-kind": "path",
        "meta-0-value": "",
        "script": "",
    }
    assert client.post(setup_url(trigger), posted).status_code == 302

    trigger.refresh_from_db()
    assert trigger.config["mapping"]["structured"]["notificationDetail"] == {
        "title": {"value": "Your order"},
        "deliveryId": "$.delivery.id",
    }
    page = text(client.get(setup_url(trigger)))
    assert 'name="nd-1-name" value="deliveryId"' in page
    assert '"notificationDetail": {' in page.replace("&quot;", '"')  # the preview maps it


def test_a_notification_detail_value_needs_a_name(login, editor, webhook_trigger):
    trigger = webhook_trigger(sample=delivery("s-1"))
    posted = {
        "mapping_type": "structured",
        "target-kind": "path",
        "target-value": "$.customer.id",
        "fid-kind": "path",
        "fid-value": "",
        "nd-0-name": "",
        "nd-0-kind": "path",
        "nd-0-value": "$.delivery.id",
        "script": "",
    }

    response = login(editor).post(setup_url(trigger), posted)

    assert response.status_code == 400
    assert "Give this notification detail entry a name." in text(response)


def test_the_default_script_preset_speaks_of_the_product():
    default = PRESETS["default"]

    assert "SPEC" not in default["script"]
    assert "section" not in default["script"]
    assert "returns the body unchanged: it must already be a start request" in default["script"].lower()
    assert "targetUserIds" in default["script"]


# --- Who may --------------------------------------------------------------------------------------


def test_a_viewer_may_look_but_not_add_or_rename(login, viewer, flow, webhook_trigger):
    trigger = webhook_trigger()
    client = login(viewer)

    assert client.get(tab_url(flow)).status_code == 200
    assert client.get(tab_url(flow, "live-summary")).status_code == 200
    assert client.get(tab_url(flow, "new/webhook")).status_code == 403
    assert client.post(tab_url(flow, "new/webhook"), {"name": "x"}).status_code == 403
    assert client.post(setup_url(trigger, "name"), {"name": "x"}).status_code == 403
    assert Trigger.objects.filter(type="webhook").count() == 1
    assert Trigger.objects.get(pk=trigger.pk).name == ""


def test_an_outsider_gets_404_on_the_tab_and_its_parts(login, outsider, flow, webhook_trigger):
    trigger = webhook_trigger()
    client = login(outsider)

    for url in (tab_url(flow), tab_url(flow, "live-summary"), tab_url(flow, "new/webhook")):
        assert client.get(url).status_code == 404, url
    assert client.post(tab_url(flow, "new/webhook"), {"name": "x"}).status_code == 404
    assert client.post(setup_url(trigger, "name"), {"name": "x"}).status_code == 404
    # Through their own environment's URL the flow does not exist either.
    assert client.get(f"/e/globex/flows/{flow.pk}/triggers/").status_code == 404
