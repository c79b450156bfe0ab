"""The Workbench pages of a webhook trigger: the setup page (name, sample, capture, mapping
builder with its live preview, test card, security, mode, pause, held requests, delete) and
the request log, as each persona sees them. The flow's triggers tab: test_flow_triggers_tab.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows.models import Invocation
from tests.triggers.conftest import STRIPE_SIGNATURE, STRUCTURED_MAPPING, delivery
from triggers import services
from triggers.models import HeldState, Trigger, TriggerModeChange, WebhookRequest

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def setup_url(trigger: Trigger, tail: str = "") -> str:
    return f"/e/acme/triggers/{trigger.pk}/{tail}"


def text(response: Any) -> str:
    return response.content.decode()


def builder_post(**fields: Any) -> dict[str, Any]:
    """The mapping builder's fields for the flow's one variable (firstName) and one blank
    metadata row, mapped like STRUCTURED_MAPPING; `fields` replace some."""
    data = {
        "mapping_type": "structured",
        "target-kind": "path",
        "target-value": "$.customer.id",
        "fid-kind": "path",
        "fid-value": "$.delivery.id",
        "var-0-name": "firstName",
        "var-0-kind": "path",
        "var-0-value": "$.customer.first_name",
        "meta-0-name": "",
        "meta-0-kind": "path",
        "meta-0-value": "",
        "script": "",
    }
    data.update(fields)
    return data


@pytest.fixture
def pages_trigger(webhook_trigger) -> Trigger:
    """A test-mode webhook trigger of the published "Welcome" flow, with a delivery as its sample."""
    return webhook_trigger(sample=delivery("sample-1"))


@pytest.fixture
def pages_mapped_trigger(webhook_trigger, test_user) -> Trigger:
    """The same, mapped like STRUCTURED_MAPPING, with tester-1 a test user."""
    return webhook_trigger(sample=delivery("sample-1"), mapping=STRUCTURED_MAPPING)


# --- Sample ---------------------------------------------------------------------------------


def test_a_pasted_sample_is_saved_and_its_fields_are_offered_in_the_picker(login, editor, webhook_trigger):
    trigger = webhook_trigger()
    client = login(editor)
    assert "No sample yet" in text(client.get(setup_url(trigger)))

    response = client.post(setup_url(trigger, "sample"), {"sample": '{"customer": {"id": "c-1", "tier": "gold"}}'})

    assert response.status_code == 302
    trigger.refresh_from_db()
    assert trigger.sample == {"customer": {"id": "c-1", "tier": "gold"}}
    page = text(client.get(setup_url(trigger)))
    # The picker and the datalist show each path with its value in the sample.
    assert '<option value="$.customer.tier">$.customer.tier  ·  &quot;gold&quot;</option>' in page
    assert '<option value="$.customer.id" label="&quot;c-1&quot;"></option>' in page
    assert '<option value="$.customer">$.customer  ·  {…} 2 keys</option>' in page


def test_a_pasted_sample_that_is_not_json_is_refused_with_where_it_breaks(login, editor, pages_trigger):
    response = login(editor).post(setup_url(pages_trigger, "sample"), {"sample": '{"customer": {"id": "c-1",}}'})

    assert response.status_code == 400
    assert "This is not valid JSON" in text(response)
    assert "line 1, column" in text(response)
    pages_trigger.refresh_from_db()
    assert pages_trigger.sample == delivery("sample-1")


def test_capture_polling_shows_waiting_then_the_captured_sample(login, editor, pages_trigger, post_hook):
    client = login(editor)

    armed = client.post(setup_url(pages_trigger, "capture"), **HTMX)

    assert armed.status_code == 200
    assert "Waiting for a request" in text(armed)
    assert 'hx-trigger="every 2s"' in text(armed)
    poll_url = re.search(r'hx-get="([^"]+)"', text(armed)).group(1).replace("&amp;", "&")
    waiting = client.get(poll_url, **HTMX)
    assert "Waiting for a request" in text(waiting)
    assert "every 2s" in text(waiting)

    assert post_hook(pages_trigger, {"order": {"id": 7, "email": "ada@example.com"}}).status_code == 202

    captured = client.get(poll_url, **HTMX)
    body = text(captured)
    assert "Captured a POST request from 203.0.113.7" in body
    assert "every 2s" not in body  # polling stops
    assert 'id="sample-current" hx-swap-oob="true"' in body
    assert "ada@example.com" in body
    assert '<option value="$.order.email" label="&quot;ada@example.com&quot;"></option>' in body
    assert captured["HX-Trigger"] == "sample-changed"
    # The paste box now holds the captured sample to edit, not the one before it.
    paste = body[body.index('id="sample-paste" hx-swap-oob="true"') :]
    assert "Edit or paste another sample" in paste
    assert "ada@example.com" in paste[paste.index("<textarea") :]


def test_capture_polling_stops_when_the_window_expired(login, editor, pages_trigger):
    client = login(editor)
    client.post(setup_url(pages_trigger, "capture"), **HTMX)
    since = (timezone.now() - timedelta(minutes=1)).timestamp()
    Trigger.objects.filter(pk=pages_trigger.pk).update(capture_until=timezone.now() - timedelta(seconds=1))

    response = client.get(setup_url(pages_trigger, f"capture/status?since={since}"), **HTMX)

    assert "No request arrived within 15 minutes" in text(response)
    assert "every 2s" not in text(response)


# --- Mapping and preview --------------------------------------------------------------------


def test_a_structured_mapping_is_saved_from_the_builder(login, editor, pages_trigger):
    client = login(editor)

    metadata = {"meta-0-name": "source", "meta-0-kind": "literal", "meta-0-value": "shop"}
    response = client.post(setup_url(pages_trigger), builder_post(**metadata))

    assert response.status_code == 302
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"] == {
        "type": "structured",
        "structured": {
            "targetUserIds": "$.customer.id",
            "flowInvocationId": "$.delivery.id",
            "variables": {"firstName": "$.customer.first_name"},
            "metadata": {"source": {"value": "shop"}},
        },
    }
    page = text(client.get(setup_url(pages_trigger)))
    assert 'value="$.customer.first_name"' in page
    assert "Mapping saved." in page


@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("shop", "shop"),
        ("42", 42),
        ("true", True),
        ('["a", "b"]', ["a", "b"]),
        ('"42"', "42"),
        ("5 apples", "5 apples"),
    ],
)
def test_a_literal_reads_as_json_when_it_is_json_else_as_text(login, editor, pages_trigger, typed, saved):
    metadata = {"meta-0-name": "source", "meta-0-kind": "literal", "meta-0-value": typed}

    login(editor).post(setup_url(pages_trigger), builder_post(**metadata))

    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"]["structured"]["metadata"] == {"source": {"value": saved}}


def test_saving_the_page_keeps_the_types_of_literals_set_through_the_api(login, editor, pages_trigger):
    structured = {
        "targetUserIds": "$.customer.id",
        "flowInvocationId": "$.delivery.id",
        "variables": {"firstName": "$.customer.first_name"},
        "metadata": {"priority": {"value": 3}, "code": {"value": "007"}, "count": {"value": "3"}},
    }
    services.webhook_trigger_update(trigger=pages_trigger, mapping={"type": "structured", "structured": structured})
    client = login(editor)
    page = text(client.get(setup_url(pages_trigger)))
    fields = dict(re.findall(r'name="(meta-\d+-(?:name|kind|value))" value="([^"]*)"', page))
    post = {key: value.replace("&quot;", '"') for key, value in fields.items()}
    post.update({key: "literal" for key in [f"meta-{i}-kind" for i in range(3)]})

    client.post(setup_url(pages_trigger), builder_post(**post))

    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"]["structured"]["metadata"] == structured["metadata"]


def test_a_mapping_error_is_shown_next_to_its_field_and_nothing_is_saved(login, editor, pages_trigger):
    response = login(editor).post(setup_url(pages_trigger), builder_post(**{"target-value": "customer.id"}))

    assert response.status_code == 400
    page = text(response)
    assert "Not saved." in page
    row = page[page.index('id="target-value"') :]
    row = row[: row.index("</tr>")]
    assert "is not a JSONPath: paths start with $" in row
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"] == {"type": "none"}


def test_a_structured_mapping_needs_its_target(login, editor, pages_trigger):
    response = login(editor).post(setup_url(pages_trigger), builder_post(**{"target-value": ""}))

    assert response.status_code == 400
    assert "Map the target userIds" in text(response)


def test_the_preview_partial_shows_the_mapped_output_of_the_unsaved_mapping(login, editor, pages_trigger):
    response = login(editor).post(setup_url(pages_trigger, "preview"), builder_post(), **HTMX)

    assert response.status_code == 200
    page = text(response)
    assert page.lstrip().startswith('<div id="mapping-preview"')
    assert "A valid start request" in page
    assert "&quot;firstName&quot;: &quot;Lars&quot;" in page
    assert "&quot;flowInvocationId&quot;: &quot;sample-1&quot;" in page
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"] == {"type": "none"}  # nothing saved


def test_the_preview_partial_shows_the_errors(login, editor, pages_trigger):
    client = login(editor)

    unmatched = text(client.post(setup_url(pages_trigger, "preview"), builder_post(**{"target-value": "$.nobody"})))
    invalid = text(client.post(setup_url(pages_trigger, "preview"), builder_post(**{"target-value": "$.["})))

    assert "$.nobody matched nothing in the body" in unmatched
    assert "not a valid JSONPath" in invalid
    assert "A valid start request" not in unmatched + invalid


def test_a_script_preset_fills_the_editor_without_saving(login, editor, pages_trigger):
    posted = builder_post(op="preset", script_preset="stripe_event", mapping_type="structured")
    response = login(editor).post(setup_url(pages_trigger), posted, **HTMX)

    assert response.status_code == 200
    page = text(response)
    assert page.lstrip().startswith('<section class="card" id="mapping">')
    assert "A Stripe event" in page  # the preset's script, in the editor
    assert 'id="mapping-type-script" checked' in page
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"] == {"type": "none"}


def test_a_script_mapping_is_saved_and_its_errors_shown(login, editor, pages_trigger):
    client = login(editor)
    broken = client.post(setup_url(pages_trigger), builder_post(mapping_type="script", script="function nope( {"))
    assert broken.status_code == 400
    assert 'id="mapping-script"' in text(broken)
    assert 'aria-invalid="true">function nope( {' in text(broken)

    script = "function transform(request) {\n  return {targetUserIds: [request.body.customer.id]};\n}\n"
    saved = client.post(setup_url(pages_trigger), builder_post(mapping_type="script", script=script))

    assert saved.status_code == 302
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["mapping"]["type"] == "script"
    assert pages_trigger.config["mapping"]["script"] == script


def test_the_shape_check_is_saved_with_the_mapping(login, editor, pages_trigger):
    login(editor).post(setup_url(pages_trigger), builder_post(shape_check="on"))

    pages_trigger.refresh_from_db()
    assert pages_trigger.config["shapeCheck"] is True


# --- Send a test card -----------------------------------------------------------------------


def test_send_test_card_creates_a_test_invocation_and_links_to_it_and_the_feed(
    login, editor, pages_mapped_trigger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(setup_url(pages_mapped_trigger, "send-test"), **HTMX)

    assert response.status_code == 200
    invocation = Invocation.objects.get(flow=pages_mapped_trigger.flow)
    assert invocation.mode == "test"
    assert invocation.flow_invocation_id.startswith("sample-1-test-")
    page = text(response)
    assert "Test started." in page
    assert f'href="/e/acme/flows/invocations/{invocation.pk}/"' in page
    assert 'href="/e/acme/flows/feed/?user=tester-1&amp;test=true"' in page


def test_send_test_card_says_why_it_started_nothing(login, editor, pages_trigger):
    response = login(editor).post(setup_url(pages_trigger, "send-test"), **HTMX)

    page = text(response)
    assert "Not started (422)." in page
    assert not Invocation.objects.exists()


def test_send_test_card_warns_when_the_target_is_not_a_test_user(login, editor, webhook_trigger):
    trigger = webhook_trigger(sample=delivery("s-2", user_id="customer-9"), mapping=STRUCTURED_MAPPING)

    page = text(login(editor).post(setup_url(trigger, "send-test"), **HTMX))

    assert "Not sent to <code>customer-9</code>: tests reach only test users." in page


# --- Security -------------------------------------------------------------------------------


def security_form(**fields: Any) -> dict[str, Any]:
    """The security form as a browser posts it: no allowlist, no signature, saved from the form."""
    data = {
        "allowed_ips": "",
        "signature_preset": "none",
        "signature_source": "form",
        "signature": "",
        "signature_secret": "",
        "signature_header": "",
        "signature_prefix": "",
        "timestamp_header": "",
        "timestamp_prefix": "",
        "id_header": "",
        "id_prefix": "",
        "template": "",
        "algorithm": "sha256",
        "digest": "hex",
        "tolerance_seconds": "",
        "secret_encoding": "utf8",
        "secret_prefix": "",
    }
    data.update(fields)
    return data


STRIPE_FORM = {
    "signature_preset": "stripe",
    "signature_secret": STRIPE_SIGNATURE["secret"],
    "signature_header": "stripe-signature",
    "signature_prefix": "v1=",
    "timestamp_header": "stripe-signature",
    "timestamp_prefix": "t=",
    "template": "[timestamp].[payload]",
    "tolerance_seconds": "300",
}


def test_the_signature_form_saves_the_same_configuration_as_its_json(login, editor, webhook_trigger):
    from_form, from_json = webhook_trigger(), webhook_trigger()
    client = login(editor)

    assert client.post(setup_url(from_form, "security"), security_form(**STRIPE_FORM)).status_code == 302
    json_post = security_form(signature_source="json", signature=json.dumps(STRIPE_SIGNATURE))
    assert client.post(setup_url(from_json, "security"), json_post).status_code == 302

    from_form.refresh_from_db()
    from_json.refresh_from_db()
    assert from_form.config["security"]["signature"] == from_json.config["security"]["signature"]
    assert from_form.config["security"]["signature"]["data"]["timestamp"] == {
        "header": "stripe-signature",
        "parsePrefix": "t=",
    }


def test_security_with_a_bad_cidr_and_a_bad_signature_json_shows_both_errors(login, editor, pages_trigger):
    client = login(editor)

    bad_json = client.post(
        setup_url(pages_trigger, "security"),
        security_form(allowed_ips="10.0.0.0/8", signature_source="json", signature="{secret:"),
    )
    assert bad_json.status_code == 400
    assert "This is not valid JSON" in text(bad_json)

    bad_both = client.post(
        setup_url(pages_trigger, "security"),
        security_form(
            allowed_ips="203.0.113.7\n10.0.0.0/33",
            signature_source="json",
            signature=json.dumps({"secret": "s", "algorithm": "md5"}),
        ),
    )

    assert bad_both.status_code == 400
    page = text(bad_both)
    assert "10.0.0.0/33" in page
    assert "algorithm: Expected one of sha1, sha256." in page
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["security"] == {"allowedIps": [], "signature": None}


def test_the_signature_forms_errors_are_shown_at_their_fields(login, editor, pages_trigger):
    posted = security_form(**{**STRIPE_FORM, "signature_secret": "", "timestamp_header": "", "signature_header": "a b"})

    response = login(editor).post(setup_url(pages_trigger, "security"), posted)

    assert response.status_code == 400
    page = text(response)
    secret = page[page.index('id="id_signature_secret"') :]
    assert secret.index("Required: the signing secret the sender gave you.") < secret.index("id_signature_header")
    header = page[page.index('id="id_signature_header"') :]
    assert header.index("Expected a header name") < header.index("id_signature_prefix")
    template = page[page.index('id="id_template"') :]
    assert "[timestamp] is used but the timestamp header says nowhere to read it from." in template[:600]
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["security"]["signature"] is None


def test_security_is_saved_and_the_secret_is_masked_and_kept(login, editor, pages_trigger):
    client = login(editor)
    saved = client.post(
        setup_url(pages_trigger, "security"), security_form(allowed_ips="203.0.113.7\n198.51.100.0/24\n", **STRIPE_FORM)
    )
    assert saved.status_code == 302

    page = text(client.get(setup_url(pages_trigger)))
    assert STRIPE_SIGNATURE["secret"] not in page
    assert "&quot;secret&quot;: &quot;********&quot;" in page
    assert '<option value="stripe" selected>Stripe</option>' in page  # the saved settings are Stripe's
    assert "Saved and hidden: leave empty to keep it" in page
    # The form again with the secret left empty keeps it; so does the JSON with its mask.
    client.post(
        setup_url(pages_trigger, "security"),
        security_form(allowed_ips="203.0.113.7", **{**STRIPE_FORM, "signature_secret": "", "tolerance_seconds": "60"}),
    )
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["security"]["signature"]["secret"] == STRIPE_SIGNATURE["secret"]
    assert pages_trigger.config["security"]["signature"]["toleranceSeconds"] == 60

    masked = re.search(r'<textarea name="signature"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    resubmitted = json.loads(masked.replace("&quot;", '"'))
    resubmitted["toleranceSeconds"] = 120
    client.post(
        setup_url(pages_trigger, "security"),
        security_form(allowed_ips="203.0.113.7", signature_source="json", signature=json.dumps(resubmitted)),
    )

    pages_trigger.refresh_from_db()
    security = pages_trigger.config["security"]
    assert security["allowedIps"] == ["203.0.113.7"]
    assert security["signature"]["secret"] == STRIPE_SIGNATURE["secret"]
    assert security["signature"]["toleranceSeconds"] == 120


def test_the_json_masks_a_secret_typed_into_the_form_and_saving_it_keeps_the_typed_one(login, editor, pages_trigger):
    """The JSON view never shows a secret: the one typed into the form stands behind its mask."""
    config = {**STRIPE_SIGNATURE, "secret": "********", "toleranceSeconds": 90}
    posted = security_form(
        signature_source="json", signature=json.dumps(config), signature_secret=STRIPE_SIGNATURE["secret"]
    )

    assert login(editor).post(setup_url(pages_trigger, "security"), posted).status_code == 302

    pages_trigger.refresh_from_db()
    signature = pages_trigger.config["security"]["signature"]
    assert (signature["secret"], signature["toleranceSeconds"]) == (STRIPE_SIGNATURE["secret"], 90)


def test_choosing_nothing_removes_the_signature(login, editor, webhook_trigger):
    trigger = webhook_trigger(security={"signature": STRIPE_SIGNATURE})

    login(editor).post(setup_url(trigger, "security"), security_form(signature_preset="none"))

    trigger.refresh_from_db()
    assert trigger.config["security"]["signature"] is None


@pytest.mark.parametrize(
    ("preset", "header", "template"),
    [
        ("stripe", "Stripe-Signature", "[timestamp].[payload]"),
        ("github", "X-Hub-Signature-256", "[payload]"),
        ("standard-webhooks", "webhook-signature", "[id].[timestamp].[payload]"),
    ],
)
def test_a_signature_preset_fills_the_form_without_saving(login, editor, pages_trigger, preset, header, template):
    posted = security_form(op="preset", allowed_ips="203.0.113.7", signature_preset=preset)
    response = login(editor).post(setup_url(pages_trigger, "security"), posted, **HTMX)

    assert response.status_code == 200
    page = text(response)
    assert "<html" not in page  # the section, for htmx to swap in
    assert f'name="signature_header" value="{header}"' in page
    assert f'name="template" value="{template}"' in page
    assert f"&quot;header&quot;: &quot;{header}&quot;" in page  # the JSON view says the same
    assert "Paste the signing secret" in page
    assert "203.0.113.7" in page  # what was typed stays
    pages_trigger.refresh_from_db()
    assert pages_trigger.config["security"]["signature"] is None


def test_the_standard_webhooks_preset_saved_verifies_a_standard_webhooks_request(
    login, editor, webhook_trigger, post_hook
):
    """SPEC section 4: the Standard Webhooks preset — base64 digest of id.timestamp.body, whsec_ base64 secret."""
    import base64
    import hashlib
    import hmac
    import time

    trigger = webhook_trigger(mapping=STRUCTURED_MAPPING)
    key = b"standard-webhooks-key"
    fields = {
        "signature_preset": "standard-webhooks",
        "signature_secret": "whsec_" + base64.b64encode(key).decode(),
        "signature_header": "webhook-signature",
        "signature_prefix": "v1,",
        "timestamp_header": "webhook-timestamp",
        "id_header": "webhook-id",
        "template": "[id].[timestamp].[payload]",
        "digest": "base64",
        "secret_encoding": "base64",
        "secret_prefix": "whsec_",
        "tolerance_seconds": "300",
    }
    assert login(editor).post(setup_url(trigger, "security"), security_form(**fields)).status_code == 302

    body = json.dumps(delivery("std-1")).encode()
    timestamp = str(int(time.time()))
    signed = hmac.new(key, b"msg_1." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    headers = {
        "HTTP_WEBHOOK_ID": "msg_1",
        "HTTP_WEBHOOK_TIMESTAMP": timestamp,
        "HTTP_WEBHOOK_SIGNATURE": "v1," + base64.b64encode(signed).decode(),
    }
    assert post_hook(trigger, body, **headers).status_code == 202
    assert post_hook(trigger, body, **{**headers, "HTTP_WEBHOOK_SIGNATURE": "v1,AAAA"}).status_code == 401


# --- Modes, pause, held requests, delete ----------------------------------------------------


def test_a_mode_change_is_recorded_in_the_history(login, editor, pages_trigger):
    client = login(editor)

    response = client.post(setup_url(pages_trigger, "mode"), {"mode": "live"})

    assert response.status_code == 302
    pages_trigger.refresh_from_db()
    assert pages_trigger.mode == "live"
    change = TriggerModeChange.objects.get(trigger=pages_trigger)
    assert (change.from_mode, change.to_mode, change.changed_by) == ("test", "live", editor)
    history = text(client.get(setup_url(pages_trigger)))
    history = history[history.index('id="history"') :]
    assert "edward" in history
    assert 'badge mode-test">test' in history
    assert 'badge mode-live">live' in history


def test_a_live_trigger_proposes_switching_to_test_before_its_configuration_is_edited(login, editor, webhook_trigger):
    trigger = webhook_trigger(sample=delivery(), mode="live")
    client = login(editor)

    page = text(client.get(setup_url(trigger)))
    assert "This trigger is live." in page
    assert "Switch to test" in page
    mapping = page[page.index('id="mapping-form"') :]
    assert '<fieldset class="plain" disabled>' in mapping
    refused = client.post(setup_url(trigger), builder_post())
    assert refused.status_code == 302
    trigger.refresh_from_db()
    assert trigger.config["mapping"] == {"type": "none"}

    editing = text(client.get(setup_url(trigger) + "?edit=live"))
    assert "Editing a live trigger." in editing
    assert 'name="edit_live"' in editing
    client.post(setup_url(trigger), builder_post(edit_live="1"))
    trigger.refresh_from_db()
    assert trigger.config["mapping"]["type"] == "structured"

    client.post(setup_url(trigger, "mode"), {"mode": "test"})
    trigger.refresh_from_db()
    assert trigger.mode == "test"


def test_a_paused_trigger_shows_its_reason_is_reactivated_and_its_held_requests_replayed(
    login, editor, webhook_trigger, test_user, post_hook, django_capture_on_commit_callbacks
):
    trigger = webhook_trigger(sample=delivery("sample"), mapping=STRUCTURED_MAPPING, shape_check=True)
    assert post_hook(trigger, {"customer": "not an object"}).json() == {"status": "held"}
    assert post_hook(trigger, delivery("d-2")).json() == {"status": "held"}
    client = login(editor)

    page = text(client.get(setup_url(trigger)))
    assert 'id="paused-banner"' in page
    assert "A request was not shaped like the sample" in page
    assert "2 held requests." in page
    assert "Reactivate the trigger first" in page

    client.post(setup_url(trigger, "reactivate"))
    trigger.refresh_from_db()
    assert trigger.mode == "test"
    page = text(client.get(setup_url(trigger)))
    assert 'id="paused-banner"' not in page
    assert "Replay 2 held requests" in page
    assert "data-confirm=" in page[page.index('id="held-banner"') :]

    with django_capture_on_commit_callbacks(execute=True):
        replayed = client.post(setup_url(trigger, "held/replay"), follow=True)

    assert "Replayed 2 held requests: 1 accepted, 1 refused" in text(replayed)
    assert Invocation.objects.filter(flow=trigger.flow, flow_invocation_id="d-2", mode="test").exists()
    assert not WebhookRequest.objects.filter(trigger=trigger, held_state=HeldState.HELD).exists()
    history = [(c.from_mode, c.to_mode, c.changed_by) for c in TriggerModeChange.objects.filter(trigger=trigger)]
    assert ("paused", "test", editor) in history
    assert ("test", "paused", None) in history


def test_held_requests_can_be_discarded(login, editor, pages_trigger, post_hook):
    services.trigger_pause(trigger=pages_trigger, reason="checking")
    post_hook(pages_trigger, delivery("d-1"))

    response = login(editor).post(setup_url(pages_trigger, "held/discard"), follow=True)

    assert "Discarded 1 held request;" in text(response)
    assert WebhookRequest.objects.get(trigger=pages_trigger).held_state == HeldState.DISCARDED


def test_a_trigger_is_deleted_only_when_disabled(login, editor, pages_trigger):
    client = login(editor)
    page = text(client.get(setup_url(pages_trigger)))
    assert "Only a disabled trigger can be deleted" in page

    refused = client.post(setup_url(pages_trigger, "delete"), follow=True)
    assert "Disable the trigger before deleting it." in text(refused)
    assert Trigger.objects.filter(pk=pages_trigger.pk).exists()

    client.post(setup_url(pages_trigger, "mode"), {"mode": "disabled"})
    page = text(client.get(setup_url(pages_trigger)))
    assert f"Delete Webhook {pages_trigger.pk}?" in page
    assert 'data-confirm-label="Delete trigger" data-confirm-danger' in page
    deleted = client.post(setup_url(pages_trigger, "delete"))

    assert deleted["Location"] == f"/e/acme/flows/{pages_trigger.flow_id}/triggers/"
    assert not Trigger.objects.filter(pk=pages_trigger.pk).exists()


# --- The request log ------------------------------------------------------------------------


def test_the_request_log_lists_requests_newest_first_with_links(login, viewer, pages_mapped_trigger, post_hook):
    post_hook(pages_mapped_trigger, delivery("d-1"))
    post_hook(pages_mapped_trigger, b"not json", remote_addr="198.51.100.9")

    page = text(login(viewer).get(setup_url(pages_mapped_trigger, "requests/")))

    assert page.index("198.51.100.9") < page.index("d-1")
    assert "<code>invalid_payload</code>" in page
    assert 'badge outcome-refused">refused' in page
    assert 'badge outcome-accepted">accepted' in page
    invocation = Invocation.objects.get(flow_invocation_id="d-1")
    assert f'<a href="/e/acme/flows/invocations/{invocation.pk}/">d-1</a>' in page


def test_the_request_log_is_paginated(login, viewer, pages_trigger, post_hook):
    for _ in range(51):
        post_hook(pages_trigger, b"nope")

    first = text(login(viewer).get(setup_url(pages_trigger, "requests/")))

    assert "Page 1 of 2 · 51 requests" in first
    assert first.count("<code>invalid_payload</code>") == 50


def test_a_refused_request_shows_why_and_is_replayed_through_the_current_mapping(
    login, editor, pages_trigger, test_user, post_hook, django_capture_on_commit_callbacks
):
    post_hook(pages_trigger, delivery("d-7"), query="source=shop", HTTP_X_SENDER="shop")
    logged = WebhookRequest.objects.get(trigger=pages_trigger)
    client = login(editor)

    page = text(client.get(setup_url(pages_trigger, f"requests/{logged.pk}/")))
    assert "Why it was refused" in page
    assert "<code>mapping_failed</code>" in page
    assert "x-sender" in page
    assert "source" in page
    assert "&quot;first_name&quot;: &quot;Lars&quot;" in page  # pretty JSON
    assert "Replay through the current mapping" in page

    services.webhook_trigger_update(trigger=pages_trigger, mapping=STRUCTURED_MAPPING)
    with django_capture_on_commit_callbacks(execute=True):
        replayed = client.post(setup_url(pages_trigger, f"requests/{logged.pk}/"))

    assert replayed.status_code == 200
    invocation = Invocation.objects.get(flow_invocation_id="d-7")
    assert f'href="/e/acme/flows/invocations/{invocation.pk}/"' in text(replayed)
    assert invocation.mode == "test"
    assert WebhookRequest.objects.get(replay_of=logged).outcome == "accepted"
    assert "Replayed: 202." in text(replayed)


# --- Who may do what ------------------------------------------------------------------------

EDITOR_BUTTONS = (
    "Add trigger",
    "Save name",
    "Save sample",
    "Get new sample",
    "Save mapping",
    "Send test card",
    "Save security",
    "Reactivate",
    "Replay through the current mapping",
    "Delete trigger",
    "Use preset",
    "Switch to test",
)


def post_urls(trigger: Trigger, logged: WebhookRequest) -> list[str]:
    return [
        f"/e/acme/flows/{trigger.flow_id}/triggers/new/webhook",
        setup_url(trigger),
        *(
            setup_url(trigger, tail)
            for tail in (
                "preview",
                "mode",
                "reactivate",
                "held/replay",
                "held/discard",
                "delete",
                "sample",
                "capture",
                "send-test",
                "security",
                "name",
            )
        ),
        setup_url(trigger, f"requests/{logged.pk}/"),
    ]


def test_a_viewer_sees_no_buttons_and_gets_403_on_every_post(login, viewer, pages_trigger, post_hook):
    services.trigger_pause(trigger=pages_trigger, reason="checking")
    post_hook(pages_trigger, delivery("d-1"))
    logged = WebhookRequest.objects.get(trigger=pages_trigger)
    client = login(viewer)

    pages = [
        client.get(f"/e/acme/flows/{pages_trigger.flow_id}/triggers/"),
        client.get(setup_url(pages_trigger)),
        client.get(setup_url(pages_trigger, "requests/")),
        client.get(setup_url(pages_trigger, f"requests/{logged.pk}/")),
    ]
    for page in pages:
        assert page.status_code == 200
        buttons = re.findall(r"<button[^>]*>\s*([^<]*)", text(page))
        # The shell's own: the account, the environment switcher and the (closed) confirmation dialog.
        shell = {"Log out", "Switch", "Cancel", "Confirm", "\N{MULTIPLICATION SIGN}"}
        assert set(buttons) <= {*shell, "Copy URL", "Copy example"}, buttons
        for button in EDITOR_BUTTONS:
            assert f">{button}" not in text(page)
    assert "only editors and owners change triggers" in text(pages[1])

    for url in post_urls(pages_trigger, logged):
        assert client.post(url, {"flow": pages_trigger.flow_id, "mode": "live"}).status_code == 403, url
    pages_trigger.refresh_from_db()
    assert pages_trigger.mode == "paused"


def test_an_outsider_gets_404_everywhere(login, outsider, pages_trigger, post_hook):
    post_hook(pages_trigger, b"nope")
    logged = WebhookRequest.objects.get(trigger=pages_trigger)
    client = login(outsider)

    gets = [
        f"/e/acme/triggers/?flow={pages_trigger.flow_id}",
        f"/e/acme/flows/{pages_trigger.flow_id}/triggers/",
        f"/e/acme/flows/{pages_trigger.flow_id}/triggers/live-summary",
        f"/e/acme/flows/{pages_trigger.flow_id}/triggers/new/webhook",
        setup_url(pages_trigger),
        setup_url(pages_trigger, "capture/status"),
        setup_url(pages_trigger, "requests/"),
        setup_url(pages_trigger, f"requests/{logged.pk}/"),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in post_urls(pages_trigger, logged):
        assert client.post(url, {"flow": pages_trigger.flow_id}).status_code == 404, url
    # Their own environment does not reach environment A's trigger either.
    assert client.get(f"/e/globex/triggers/{pages_trigger.pk}/").status_code == 404


def test_deleting_a_flow_names_its_live_webhooks_whose_senders_get_404(login, owner, pages_trigger):
    services.trigger_mode_set(trigger=pages_trigger, mode="live")

    page = text(login(owner).get(f"/e/acme/flows/{pages_trigger.flow_id}/delete"))

    assert "2 triggers with their request logs" in page  # the API trigger and the webhook
    assert "the senders of <strong>1 live webhook</strong>" in page
