"""Marketo Self-Service Flow Step triggers as Marketo and members meet them (SPEC section 7).

Marketo is impersonated: its calls go to /integrations/marketo/<token>/ with the API key in
x-api-key, and its callback endpoint is a local HTTP server (`marketo_receiver`). Tasks run
eagerly, so a batch is processed and called back when the request's on-commit callbacks run;
retries are driven by calling the sweep's work with a later `now`, never by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from flows.models import Flow, Invocation
from tests.triggers.marketo_receiver import Receiver, marketo_receiver
from triggers import marketo
from triggers.marketo import marketo_callback_deliver, marketo_sweep, marketo_trigger_create
from triggers.models import MarketoBatch, MarketoCallback, MarketoCallbackStatus, Trigger, WebhookRequest
from triggers.services import trigger_mode_set

FIELDS = [{"name": "firstName", "label": "First name", "type": "string"}]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with marketo_receiver() as running:
        yield running


@pytest.fixture
def created(flow: Flow) -> marketo.CreatedTrigger:
    return marketo_trigger_create(flow=flow, name="From Marketo", flow_fields=FIELDS)


def base(trigger: Trigger) -> str:
    return marketo.base_path(trigger)


def lead(lead_id: int, user_id: str | None = "tester-1", first_name: str = "Lars") -> dict[str, Any]:
    context: dict[str, Any] = {"id": lead_id, "email": f"lead{lead_id}@example.com"}
    if user_id is not None:
        context["userId"] = user_id
    return {
        "objectContext": context,
        "flowStepContext": {"actionFlow": "1", "firstName": first_name},
        "programMemberContext": {"status": "Registered"},
    }


def batch(callback_url: str, leads: list[dict[str, Any]], token: str = "tok-1") -> dict[str, Any]:  # noqa: S107
    return {
        "token": token,
        "callbackUrl": callback_url,
        "apiCallBackKey": "cb-key-123",
        "campaignId": 4567,
        "context": {"subscription": {"munchkinId": "123-ABC-456"}},
        "objectData": leads,
    }


@pytest.fixture
def submit(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """`submit(trigger, key, body)`: Marketo's submitAsyncAction; the batch and its callbacks
    have been processed (eagerly) when it returns."""

    def post(trigger: Trigger, key: str | None, body: Any) -> Any:
        headers = {"HTTP_X_API_KEY": key} if key is not None else {}
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post(
                base(trigger) + "submitAsyncAction", data=raw, content_type="application/json", **headers
            )

    return post


def log_rows(trigger: Trigger, method: str | None = None) -> list[WebhookRequest]:
    rows = WebhookRequest.objects.filter(trigger=trigger).order_by("received_at", "id")
    return [row for row in rows if method is None or row.method == method]


# --- The service Marketo installs ----------------------------------------------------------


def test_the_openapi_document_is_public_and_names_the_service(created: marketo.CreatedTrigger) -> None:
    trigger = created.trigger
    response = Client().get(base(trigger) + "openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["x-schemaVersion"] == "1.0.0"
    assert document["info"]["x-providerName"]
    assert document["info"]["x-supportContact"].startswith("http")
    assert document["servers"][0]["url"] == f"http://testserver{base(trigger)}"
    assert set(document["paths"]) == {
        "/getServiceDefinition",
        "/status",
        "/submitAsyncAction",
        "/getPicklist",
        "/serviceIcon",
    }
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert document["security"] == [{"apiKey": []}]


@pytest.mark.parametrize("path", ["getServiceDefinition", "status", "serviceIcon"])
def test_every_other_path_needs_the_api_key(created: marketo.CreatedTrigger, path: str) -> None:
    trigger = created.trigger
    missing = Client().get(base(trigger) + path)
    wrong = Client().get(base(trigger) + path, HTTP_X_API_KEY="mkto_wrong")
    right = Client().get(base(trigger) + path, HTTP_X_API_KEY=created.api_key)

    assert (missing.status_code, missing.json()["code"]) == (401, "api_key_invalid")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "api_key_invalid")
    assert right.status_code == 200


def test_an_unknown_token_is_not_found(db: Any) -> None:
    response = Client().get("/integrations/marketo/nope/getServiceDefinition", HTTP_X_API_KEY="x")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_the_service_definition_offers_the_flow_fields_and_the_lead_field(created: marketo.CreatedTrigger) -> None:
    trigger = created.trigger
    definition = Client().get(base(trigger) + "getServiceDefinition", HTTP_X_API_KEY=created.api_key).json()

    assert definition["apiName"] == f"actionFlow{trigger.pk}"
    assert set(definition["i18n"]["en_US"]) >= {"name", "filterName", "triggerName", "description"}
    attributes = definition["invocationPayloadDef"]["flowAttributes"]
    assert [a["apiName"] for a in attributes] == ["actionFlow", "firstName"]
    assert definition["primaryAttribute"] == "actionFlow"
    assert attributes[1]["i18n"]["en_US"]["name"] == "First name"
    assert definition["invocationPayloadDef"]["fields"][0]["serviceAttribute"] == "userId"
    callback_names = [a["apiName"] for a in definition["callbackPayloadDef"]["attributes"]]
    assert "flowInvocationId" in callback_names
    # The picklist of the primary attribute names the flow.
    choices = (
        Client()
        .post(
            base(trigger) + "getPicklist",
            data=json.dumps({"name": "actionFlow", "type": "flow"}),
            content_type="application/json",
            HTTP_X_API_KEY=created.api_key,
        )
        .json()
    )
    assert choices["choices"][0]["displayValue"]["en_US"] == trigger.flow.name


def test_the_status_reports_a_disabled_trigger_and_an_unpublished_live_flow(
    created: marketo.CreatedTrigger, draft_flow: Flow
) -> None:
    trigger = created.trigger
    ok = Client().get(base(trigger) + "status", HTTP_X_API_KEY=created.api_key).json()
    assert set(ok) == {"info", "warnings", "errors"}
    assert ok["errors"] == []
    assert any("test mode" in warning for warning in ok["warnings"])

    trigger_mode_set(trigger=trigger, mode="disabled")
    disabled = Client().get(base(trigger) + "status", HTTP_X_API_KEY=created.api_key).json()
    assert any("disabled" in error for error in disabled["errors"])

    on_draft = marketo_trigger_create(flow=draft_flow)
    Trigger.objects.filter(pk=on_draft.trigger.pk).update(mode="live")  # as if the flow were unpublished later
    live = Client().get(base(on_draft.trigger) + "status", HTTP_X_API_KEY=on_draft.api_key).json()
    assert any("not published" in error for error in live["errors"])


# --- Batches and callbacks ---------------------------------------------------------------------


def test_a_batch_is_answered_201_with_one_insert_and_nothing_else(
    created: marketo.CreatedTrigger, receiver: Receiver, django_assert_num_queries: Any
) -> None:
    body = json.dumps(batch(receiver.url, [lead(1)]))
    with django_assert_num_queries(2):  # the trigger of the token, the batch
        response = Client().post(
            base(created.trigger) + "submitAsyncAction",
            data=body,
            content_type="application/json",
            HTTP_X_API_KEY=created.api_key,
        )
    assert response.status_code == 201
    assert MarketoBatch.objects.get().processed_at is None  # the worker's, after the commit
    assert receiver.count() == 0


def test_each_lead_starts_the_flow_and_its_result_is_called_back(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    trigger = created.trigger
    response = submit(trigger, created.api_key, batch(receiver.url, [lead(1, first_name="Lars")]))

    assert response.status_code == 201
    invocation = Invocation.objects.get()
    assert (invocation.mode, invocation.source, invocation.trigger_id) == ("test", "marketo", trigger.pk)
    assert invocation.variables["firstName"] == "Lars"
    assert invocation.flow_invocation_id == marketo.lead_key("tok-1", 1)
    [callback] = receiver.requests
    assert callback.headers["x-api-key"] == "cb-key-123"
    assert callback.headers["x-callback-token"] == "tok-1"
    assert callback.body["munchkinId"] == "123-ABC-456"
    assert callback.body["token"] == "tok-1"
    assert callback.body["time"]
    assert callback.body["objectData"] == [
        {"leadData": {"id": 1}, "activityData": {"success": True, "flowInvocationId": invocation.flow_invocation_id}}
    ]
    # The request log has the batch (without Marketo's callback key) and the callback attempt.
    submitted, attempt = log_rows(trigger)
    assert (submitted.method, submitted.status_code, submitted.outcome) == ("POST", 201, "accepted")
    assert "cb-key-123" not in submitted.body
    assert '"tok-1"' not in submitted.body
    assert '"tok-1"' not in attempt.body  # Marketo's callback token is a credential too
    assert "x-api-key" not in submitted.headers
    assert "1 started" in submitted.detail
    assert (attempt.method, attempt.status_code, attempt.code) == ("CALLBACK", 200, "callback_delivered")
    # The last lead is the mapping's sample.
    trigger.refresh_from_db()
    assert trigger.sample["userId"] == "tester-1"
    assert trigger.sample["fields"] == {"firstName": "Lars"}


def test_a_lead_without_a_user_id_fails_alone_with_its_error_in_the_callback(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    submit(created.trigger, created.api_key, batch(receiver.url, [lead(1), lead(2, user_id=None), lead(3)]))

    results = receiver.results()
    assert results[1]["success"]
    assert results[3]["success"]
    assert results[2] == {"success": False, "errorCode": "missing_user_id", "reason": results[2]["reason"]}
    assert "userId" in results[2]["reason"]
    started = set(Invocation.objects.values_list("flow_invocation_id", flat=True))
    assert started == {marketo.lead_key("tok-1", 1), marketo.lead_key("tok-1", 3)}


def test_a_test_trigger_ignores_leads_that_are_not_test_users(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    submit(created.trigger, created.api_key, batch(receiver.url, [lead(1), lead(2, user_id="customer-9")]))

    results = receiver.results()
    assert results[1]["success"]
    assert results[2]["errorCode"] == "not_a_test_user"
    assert set(Invocation.objects.values_list("flow_invocation_id", flat=True)) == {marketo.lead_key("tok-1", 1)}


def test_a_resubmitted_batch_starts_nothing_new(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    body = batch(receiver.url, [lead(1), lead(2, user_id="tester-1")])
    submit(created.trigger, created.api_key, body)
    first = receiver.results()
    submit(created.trigger, created.api_key, body)

    assert Invocation.objects.count() == 2
    assert receiver.count() == 2  # Marketo gets the results again
    assert receiver.results() == first


def test_a_live_trigger_starts_any_lead(
    created: marketo.CreatedTrigger, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    trigger_mode_set(trigger=created.trigger, mode="live")
    submit(created.trigger, created.api_key, batch(receiver.url, [lead(7, user_id="customer-9")]))

    assert receiver.results()[7]["success"]
    assert Invocation.objects.get().mode == "live"


def test_a_callback_is_retried_with_backoff_until_marketo_is_back(
    created: marketo.CreatedTrigger, test_user: Any, submit: Callable[..., Any]
) -> None:
    with marketo_receiver(statuses=[503, 503, 503]) as down:
        submit(created.trigger, created.api_key, batch(down.url, [lead(1), lead(2)]))
        callback = MarketoCallback.objects.get()
        assert callback.status == MarketoCallbackStatus.PENDING
        assert callback.attempts == 1
        now = timezone.now()
        delays = []
        for _ in range(3):
            callback.refresh_from_db()
            delays.append(callback.next_attempt_at - now)
            now = callback.next_attempt_at
            assert marketo_callback_deliver(callback_id=callback.pk, now=now - timedelta(seconds=1)) == "not due"
            assert marketo_sweep(now=now).callbacks == [callback.pk]
            marketo_callback_deliver(callback_id=callback.pk, now=now)

        callback.refresh_from_db()
        assert callback.status == MarketoCallbackStatus.DELIVERED
        assert callback.attempts == 4
        assert delays[1] > delays[0] * 1.5  # exponential
        assert set(down.results()) == {1, 2}
        assert [r.status for r in down.requests] == [503, 503, 503, 200]
    attempts = log_rows(created.trigger, "CALLBACK")
    assert [(row.status_code, row.code) for row in attempts] == [
        (503, "callback_failed"),
        (503, "callback_failed"),
        (503, "callback_failed"),
        (200, "callback_delivered"),
    ]


def test_callbacks_are_retried_for_at_least_an_hour_then_given_up(
    created: marketo.CreatedTrigger, test_user: Any, submit: Callable[..., Any]
) -> None:
    with marketo_receiver(statuses=[503] * 100) as down:
        submit(created.trigger, created.api_key, batch(down.url, [lead(1)]))
        callback = MarketoCallback.objects.get()
        while callback.status == MarketoCallbackStatus.PENDING:
            marketo_callback_deliver(callback_id=callback.pk, now=callback.next_attempt_at)
            callback.refresh_from_db()
    assert callback.status == MarketoCallbackStatus.GAVE_UP
    assert callback.next_attempt_at - callback.created_at >= timedelta(hours=1)
    assert log_rows(created.trigger, "CALLBACK")[-1].code == "callback_gave_up"


def test_a_worker_that_died_holding_a_callback_leaves_it_to_the_sweep(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    receiver.statuses = [503]
    submit(created.trigger, created.api_key, batch(receiver.url, [lead(1)]))
    callback = MarketoCallback.objects.get()
    due = callback.next_attempt_at
    # A worker claims it, then dies before recording anything.
    MarketoCallback.objects.filter(pk=callback.pk).update(lease_until=due + marketo.CALLBACK_LEASE)

    assert marketo_sweep(now=due).callbacks == []
    assert marketo_sweep(now=due + marketo.CALLBACK_LEASE + timedelta(seconds=1)).callbacks == [callback.pk]
    marketo_callback_deliver(callback_id=callback.pk, now=due + marketo.CALLBACK_LEASE + timedelta(seconds=1))
    assert receiver.results()[1]["success"]


def test_a_batch_nobody_processed_is_found_by_the_sweep(created: marketo.CreatedTrigger, receiver: Receiver) -> None:
    response = Client().post(  # on-commit callbacks never run: the message is "lost"
        base(created.trigger) + "submitAsyncAction",
        data=json.dumps(batch(receiver.url, [lead(1)])),
        content_type="application/json",
        HTTP_X_API_KEY=created.api_key,
    )
    assert response.status_code == 201
    stored = MarketoBatch.objects.get()
    later = stored.received_at + timedelta(minutes=1)

    assert marketo_sweep(now=later).batches == [stored.pk]
    marketo.marketo_batch_process(batch_id=stored.pk, now=later)
    assert marketo_sweep(now=later).batches == []
    assert marketo.marketo_batch_process(batch_id=stored.pk, now=later) == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [("http://callback.example.com/cb", False), ("https://127.0.0.1/cb", False), ("https://10.1.2.3/cb", False)],
)
def test_a_callback_url_that_is_http_or_private_is_refused_and_logged_without_retry(
    created: marketo.CreatedTrigger, test_user: Any, submit: Callable[..., Any], settings: Any, url: str, allowed: bool
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    submit(created.trigger, created.api_key, batch(url, [lead(1)]))

    callback = MarketoCallback.objects.get()
    assert callback.status == MarketoCallbackStatus.REFUSED
    [attempt] = log_rows(created.trigger, "CALLBACK")
    assert (attempt.code, attempt.status_code, attempt.outcome) == ("callback_refused", 0, "refused")
    assert marketo_sweep(now=timezone.now() + timedelta(hours=1)).callbacks == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (
            b'{"token": "t", "callbackUrl": "https://x.test/", "objectData": [{"objectContext": {"id": "a\\u0000"}}]}',
            "invalid_json",
        ),
        (b'{"token": "t", "callbackUrl": "https://x.test/", "objectData": [], "campaignId": NaN}', "invalid_json"),
        (b'{"token": "t", "callbackUrl": "https://x.test/", "objectData": [], "campaignId": 1e999}', "invalid_json"),
        (b"[" * 200 + b"]" * 200, "invalid_json"),
        (json.dumps({"token": "t"}), "invalid_request"),
        (json.dumps([1, 2]), "invalid_request"),
        (json.dumps({"token": "t", "callbackUrl": "https://x.test/", "objectData": "nope"}), "invalid_request"),
    ],
)
def test_a_bad_batch_is_refused_logged_and_stores_nothing(
    created: marketo.CreatedTrigger, submit: Callable[..., Any], body: Any, code: str
) -> None:
    response = submit(created.trigger, created.api_key, body)

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert MarketoBatch.objects.count() == 0
    assert log_rows(created.trigger)[-1].code == code


def test_a_batch_without_or_with_a_wrong_key_is_refused(
    created: marketo.CreatedTrigger, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    for key in (None, "mkto_wrong"):
        response = submit(created.trigger, key, batch(receiver.url, [lead(1)]))
        assert (response.status_code, response.json()["code"]) == (401, "api_key_invalid")
    assert MarketoBatch.objects.count() == 0
    assert Invocation.objects.count() == 0
    assert [row.status_code for row in log_rows(created.trigger)] == [401, 401]
    assert all("cb-key-123" not in row.body for row in log_rows(created.trigger))


def test_a_disabled_trigger_refuses_batches(
    created: marketo.CreatedTrigger, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    trigger_mode_set(trigger=created.trigger, mode="disabled")
    response = submit(created.trigger, created.api_key, batch(receiver.url, [lead(1)]))
    assert (response.status_code, response.json()["code"]) == (403, "trigger_disabled")
    assert MarketoBatch.objects.count() == 0


def test_a_batch_of_more_than_1000_leads_is_called_back_in_parts(
    created: marketo.CreatedTrigger, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    trigger_mode_set(trigger=created.trigger, mode="live")
    leads = [lead(index, user_id=f"u{index}") for index in range(1, 1202)]
    submit(created.trigger, created.api_key, batch(receiver.url, leads))

    assert [len(r.body["objectData"]) for r in receiver.requests] == [1000, 201]
    assert len(receiver.results()) == 1201
    assert Invocation.objects.count() == 1201


# --- Configuration API -------------------------------------------------------------------------


def triggers_url(flow: Flow) -> str:
    return f"/api/v1/acme/flows/{flow.pk}/triggers"


def test_the_api_creates_a_marketo_trigger_and_shows_its_key_once(workbench_a: Any, flow: Flow) -> None:
    response = workbench_a.client.post(
        triggers_url(flow), {"type": "marketo", "flowFields": FIELDS, "leadUserIdField": "externalId"}, format="json"
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["apiKey"].startswith("mkto_")
    assert data["url"].startswith("http://testserver/integrations/marketo/")
    assert data["url"].endswith("/")
    assert data["openapiUrl"] == data["url"] + "openapi.json"
    assert data["leadUserIdField"] == "externalId"
    assert data["flowFields"][0]["name"] == "firstName"
    assert data["mode"] == "test"
    assert data["mapping"] == marketo.DEFAULT_MARKETO_MAPPING
    trigger = Trigger.objects.get(pk=data["id"])
    assert data["apiKey"] not in json.dumps(trigger.config)  # only its hash is kept

    read = workbench_a.client.get(f"/api/v1/acme/triggers/{data['id']}").json()
    assert "apiKey" not in read
    assert read["apiKeyHint"] == data["apiKey"][-4:]


def test_the_api_rotates_the_key_and_the_old_one_stops_working(
    workbench_a: Any, created: marketo.CreatedTrigger
) -> None:
    trigger = created.trigger
    response = workbench_a.client.post(f"/api/v1/acme/triggers/{trigger.pk}/rotate-key")

    assert response.status_code == 200
    new_key = response.json()["apiKey"]
    assert new_key != created.api_key
    old = Client().get(base(trigger) + "status", HTTP_X_API_KEY=created.api_key)
    new = Client().get(base(trigger) + "status", HTTP_X_API_KEY=new_key)
    assert (old.status_code, new.status_code) == (401, 200)


def test_rotating_is_refused_to_other_roles_environments_and_kinds(
    api_client: Any, env_a: Any, session_with: Any, created: marketo.CreatedTrigger, flow: Flow
) -> None:
    path = f"/api/v1/acme/triggers/{created.trigger.pk}/rotate-key"
    events = api_client(env_a, "events").client.post(path)
    outsider = session_with("outsider", "workbench").post(path.replace("/acme/", "/globex/"))
    outsider_here = session_with("outsider", "workbench").post(path)
    api_trigger = flow.triggers.get(type="api")
    not_marketo = api_client(env_a, "workbench").client.post(f"/api/v1/acme/triggers/{api_trigger.pk}/rotate-key")

    assert events.status_code == 403
    assert outsider.status_code == 404
    assert outsider_here.status_code == 404
    assert (not_marketo.status_code, not_marketo.json()["code"]) == (409, "not_marketo")
    assert Client().get(base(created.trigger) + "status", HTTP_X_API_KEY=created.api_key).status_code == 200


def test_the_api_patches_the_settings_and_refuses_bad_ones(workbench_a: Any, created: marketo.CreatedTrigger) -> None:
    path = f"/api/v1/acme/triggers/{created.trigger.pk}"
    ok = workbench_a.client.patch(path, {"leadUserIdField": "crmId", "flowFields": []}, format="json")
    assert ok.status_code == 200, ok.content
    assert (ok.json()["leadUserIdField"], ok.json()["flowFields"]) == ("crmId", [])
    assert "apiKey" not in ok.json()

    for body in (
        {"leadUserIdField": "id"},
        {"flowFields": [{"name": "a"}, {"name": "a"}]},
        {"flowFields": [{"name": "actionFlow"}]},
        {"flowFields": [{"name": "x", "type": "blob"}]},
        {"flowFields": "x"},
        {"eventName": "purchase"},
    ):
        refused = workbench_a.client.patch(path, body, format="json")
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_request"), body
    created.trigger.refresh_from_db()
    assert created.trigger.config["leadUserIdField"] == "crmId"


def test_the_request_log_and_preview_work_for_marketo_triggers(
    workbench_a: Any, created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    trigger = created.trigger
    preview = workbench_a.client.post(f"/api/v1/acme/triggers/{trigger.pk}/preview", {}, format="json").json()
    assert preview["errors"] == []
    assert preview["output"]["targetUserIds"] == ["tester-1"]  # the example lead

    submit(trigger, created.api_key, batch(receiver.url, [lead(5, first_name="Ada")]))
    log = workbench_a.client.get(f"/api/v1/acme/triggers/{trigger.pk}/requests").json()
    assert [entry["method"] for entry in log] == ["CALLBACK", "POST"]
    preview = workbench_a.client.post(f"/api/v1/acme/triggers/{trigger.pk}/preview", {}, format="json").json()
    assert preview["output"]["variables"] == {"firstName": "Ada"}
    assert preview["output"]["flowInvocationId"].endswith("-5")
    properties = workbench_a.client.get(f"/api/v1/acme/triggers/{trigger.pk}/mappable-properties").json()
    assert "$.lead.email" in properties["properties"]


def test_a_custom_mapping_is_applied_to_each_lead(
    created: marketo.CreatedTrigger, test_user: Any, receiver: Receiver, submit: Callable[..., Any]
) -> None:
    mapping = {
        "type": "structured",
        "structured": {"targetUserIds": "$.lead.userId", "variables": {"firstName": "$.lead.email"}},
    }
    marketo.marketo_trigger_update(trigger=created.trigger, mapping=mapping)
    submit(created.trigger, created.api_key, batch(receiver.url, [lead(1)]))

    assert Invocation.objects.get().variables["firstName"] == "lead1@example.com"


# --- Workbench pages ---------------------------------------------------------------------------


def page_url(trigger: Trigger) -> str:
    return f"/e/acme/triggers/{trigger.pk}/"


def test_an_editor_adds_a_marketo_trigger_and_sees_its_key_once(login: Any, editor: Any, flow: Flow) -> None:
    client = login(editor)
    new = client.get(f"/e/acme/flows/{flow.pk}/triggers/new/marketo")
    assert new.status_code == 200
    assert 'value="firstName"' in new.content.decode()  # the flow's variables are offered

    created = client.post(
        f"/e/acme/flows/{flow.pk}/triggers/new/marketo",
        {
            "name": "Webinar",
            "lead_user_id_field": "appUserId",
            "field_name": ["firstName", ""],
            "field_label": ["First name", ""],
            "field_type": ["string", "string"],
        },
    )
    trigger = Trigger.objects.get(type="marketo")
    assert created.status_code == 302
    assert trigger.config["leadUserIdField"] == "appUserId"
    assert trigger.config["flowFields"] == [
        {"name": "firstName", "label": "First name", "type": "string", "required": False}
    ]
    first = client.get(page_url(trigger)).content.decode()
    again = client.get(page_url(trigger)).content.decode()
    assert 'id="marketo-api-key"' in first
    assert 'id="marketo-api-key"' not in again
    assert trigger.config["apiKeyHint"] in again


def test_the_new_page_shows_what_is_wrong(login: Any, editor: Any, flow: Flow) -> None:
    response = login(editor).post(
        f"/e/acme/flows/{flow.pk}/triggers/new/marketo",
        {"lead_user_id_field": "id", "field_name": ["first name"], "field_label": [""], "field_type": ["string"]},
    )
    assert response.status_code == 400
    assert "not id" in response.content.decode()
    assert Trigger.objects.filter(type="marketo").count() == 0


def test_the_page_saves_fields_and_rotates_the_key(login: Any, editor: Any, created: marketo.CreatedTrigger) -> None:
    client = login(editor)
    trigger = created.trigger
    saved = client.post(
        page_url(trigger),
        {
            "op": "config",
            "lead_user_id_field": "crmId",
            "field_name": ["plan"],
            "field_label": ["Plan"],
            "field_type": ["text"],
        },
    )
    assert saved.status_code == 302
    trigger.refresh_from_db()
    assert trigger.config["leadUserIdField"] == "crmId"
    assert trigger.config["flowFields"][0]["name"] == "plan"

    bad = client.post(page_url(trigger), {"op": "config", "lead_user_id_field": "x y", "field_name": ["ok"]})
    assert bad.status_code == 400

    client.post(page_url(trigger), {"op": "rotate"})
    shown = client.get(page_url(trigger)).content.decode()
    trigger.refresh_from_db()
    new_key = shown.split('id="marketo-api-key">', 1)[1].split("<", 1)[0]
    assert marketo.api_key_matches(trigger.config, new_key)
    assert not marketo.api_key_matches(trigger.config, created.api_key)


def test_viewers_look_and_outsiders_get_nothing(
    login: Any, viewer: Any, outsider: Any, created: marketo.CreatedTrigger
) -> None:
    trigger = created.trigger
    as_viewer = login(viewer)
    assert as_viewer.get(page_url(trigger)).status_code == 200
    assert as_viewer.post(page_url(trigger), {"op": "rotate"}).status_code == 403
    assert as_viewer.get(f"/e/acme/flows/{trigger.flow_id}/triggers/new/marketo").status_code == 403
    assert api_key_unchanged(trigger, created.api_key)
    as_outsider = login(outsider)
    assert as_outsider.get(page_url(trigger)).status_code == 404
    assert as_outsider.get(f"/e/acme/triggers/{trigger.pk}/requests/").status_code == 404


def api_key_unchanged(trigger: Trigger, key: str) -> bool:
    trigger.refresh_from_db()
    return marketo.api_key_matches(trigger.config, key)
