"""Salesforce Marketing Cloud Journey Builder activity triggers (SPEC section 7), as Journey
Builder and members meet them.

Journey Builder is impersonated: execute calls are compact JWTs signed with PyJWT (HS256 with
the Installed Package's secret) carrying the claims it sends; config.json, the inspector page
and the lifecycle calls are requested as it requests them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from flows.models import FlowRun, Invocation
from tests.flows.conftest import draft_flow, flow, make_flow, test_user  # noqa: F401
from triggers import services, sfmc
from triggers.models import Trigger, TriggerMode, TriggerType, WebhookRequest

# As long as Marketing Cloud's (64 characters and more), so that HS512 tokens signed with it are no weak keys.
OTHER_SECRET = "another-secret-of-another-installed-package-0123456789abcdefghij"
SECRET = "sfmc-jwt-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMN"
ACTIVITY = "8c3f9f0e-5e44-4c7e-9d0b-1f7f0b6f2a11"
DEFINITION_INSTANCE = "2f6b8d3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def claims(key_value: str = "tester-1", **in_arguments: str) -> dict[str, Any]:
    """The claims of an execute call as Journey Builder sends them for one contact."""
    return {
        "inArguments": [{"userId": key_value}, *({name: value} for name, value in in_arguments.items())],
        "outArguments": [],
        "activityObjectID": "5b7c3c1e-aaaa-4bbb-8ccc-111111111111",
        "journeyId": "0d5f0f3e-bbbb-4ccc-8ddd-222222222222",
        "activityId": ACTIVITY,
        "definitionInstanceId": DEFINITION_INSTANCE,
        "activityInstanceId": "9e8d7c6b-cccc-4ddd-8eee-333333333333",
        "keyValue": key_value,
        "mode": 0,
    }


def signed(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> bytes:
    return jwt.encode(payload, secret, algorithm=algorithm).encode()


@pytest.fixture
def sfmc_trigger(flow: Any) -> Callable[..., Trigger]:  # noqa: F811
    def make(mode: str = "test", on_flow: Any = None, secret: str | None = SECRET, **config: Any) -> Trigger:
        trigger = sfmc.sfmc_trigger_create(flow=on_flow or flow, jwt_secret=secret, **config)
        if mode != "test":
            services.trigger_mode_set(trigger=trigger, mode=mode)
        trigger.refresh_from_db()
        return trigger

    return make


@pytest.fixture
def execute(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def post(trigger: Trigger | str, body: bytes, content_type: str = "application/jwt") -> Any:
        token = trigger.token if isinstance(trigger, Trigger) else trigger
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post(
                f"/integrations/sfmc/{token}/execute", data=body, content_type=content_type, REMOTE_ADDR="13.111.1.1"
            )

    return post


# --- execute --------------------------------------------------------------------------------


def test_a_signed_execute_call_starts_the_flow_for_the_contact(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()

    response = execute(trigger, signed(claims("tester-1", firstName="Lars")))

    assert response.status_code == 200
    assert response.json() == {}
    invocation = Invocation.objects.get()
    assert invocation.source == TriggerType.SFMC
    assert invocation.mode == "test"
    assert invocation.variables["firstName"] == "Lars"
    assert invocation.flow_invocation_id == sfmc.invocation_key(
        activity_id=ACTIVITY, definition_instance_id=DEFINITION_INSTANCE, key_value="tester-1"
    )
    assert FlowRun.objects.get().user_id == "tester-1"
    logged = WebhookRequest.objects.get()
    assert (logged.outcome, logged.status_code, logged.flow_invocation_id) == (
        "accepted",
        200,
        invocation.flow_invocation_id,
    )
    assert sfmc.logged_call(logged) == "execute"


def test_journey_builder_retries_start_once_and_are_answered_200(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()
    body = signed(claims("tester-1"))

    answers = [execute(trigger, body) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert Invocation.objects.count() == 1
    assert FlowRun.objects.count() == 1
    assert list(WebhookRequest.objects.order_by("id").values_list("outcome", flat=True)) == [
        "accepted",
        "duplicate",
        "duplicate",
    ]


def test_another_contact_or_another_journey_run_starts_again(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()
    execute(trigger, signed(claims("tester-1")))
    execute(trigger, signed({**claims("tester-1"), "definitionInstanceId": "another-run"}))
    execute(trigger, signed(claims("tester-2")))

    assert Invocation.objects.count() == 3


def test_the_contact_key_is_the_user_when_no_user_id_in_argument_is_sent(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger(in_arguments=[{"firstName": "{{Contact.Attribute.Profile.FirstName}}"}])
    call = {**claims("tester-1"), "inArguments": [{"firstName": "Lars"}]}

    assert execute(trigger, signed(call)).status_code == 200

    assert FlowRun.objects.get().user_id == "tester-1"


def test_test_mode_reaches_test_users_only(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()

    assert execute(trigger, signed(claims("real-customer-9"))).status_code == 200

    assert not FlowRun.objects.filter(user_id="real-customer-9").exists()


def test_live_mode_starts_the_published_flow_for_real_contacts(sfmc_trigger, execute) -> None:
    trigger = sfmc_trigger(mode="live")

    assert execute(trigger, signed(claims("real-customer-9"))).status_code == 200

    assert Invocation.objects.get().mode == "live"
    assert FlowRun.objects.get().user_id == "real-customer-9"


def _unsigned(payload: dict[str, Any]) -> bytes:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}.".encode()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            signed(claims(), secret=OTHER_SECRET),
            "application/jwt",
            id="wrong-secret",
        ),
        pytest.param(_unsigned(claims()), "application/jwt", id="alg-none"),
        pytest.param(signed(claims(), algorithm="HS512"), "application/jwt", id="hs512"),
        pytest.param(b"not.a.jwt", "application/jwt", id="garbage"),
        pytest.param(b"\xff\xfe\x00", "application/jwt", id="binary"),
        pytest.param(b"", "application/jwt", id="empty"),
        pytest.param(json.dumps(claims()).encode(), "application/json", id="plain-json"),
    ],
)
def test_execute_calls_that_are_not_signed_hs256_with_the_secret_are_refused(
    sfmc_trigger,
    execute,
    test_user,  # noqa: F811
    body: bytes,
    content_type: str,
) -> None:
    trigger = sfmc_trigger()

    response = execute(trigger, body, content_type=content_type)

    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert not Invocation.objects.exists()
    logged = WebhookRequest.objects.get()
    assert (logged.outcome, logged.status_code, logged.code) == ("refused", 401, "signature_invalid")


def test_an_rs256_token_is_refused(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    trigger = sfmc_trigger()

    response = execute(trigger, jwt.encode(claims(), key, algorithm="RS256").encode())

    assert response.status_code == 401
    assert not Invocation.objects.exists()


@pytest.mark.parametrize(
    ("claim", "seconds_from_now"),
    [("exp", -30), ("nbf", 30), ("iat", 30)],
    ids=["expired-30s-ago", "valid-from-30s-on", "issued-30s-ahead"],
)
def test_a_few_seconds_of_clock_skew_with_marketing_cloud_are_tolerated(
    sfmc_trigger,
    execute,
    test_user,  # noqa: F811
    claim: str,
    seconds_from_now: int,
) -> None:
    trigger = sfmc_trigger()
    moment = int(timezone.now().timestamp()) + seconds_from_now

    response = execute(trigger, signed({**claims(), claim: moment}))

    assert response.status_code == 200
    assert Invocation.objects.filter(trigger_id=trigger.pk).count() == 1


@pytest.mark.parametrize(
    ("claim", "seconds_from_now", "reason"),
    [("exp", -300, "expired"), ("nbf", 300, "not yet valid")],
    ids=["expired-5-minutes-ago", "valid-in-5-minutes"],
)
def test_a_token_expired_or_not_yet_valid_beyond_the_skew_is_refused(
    sfmc_trigger,
    execute,
    test_user,  # noqa: F811
    claim: str,
    seconds_from_now: int,
    reason: str,
) -> None:
    trigger = sfmc_trigger()
    moment = int(timezone.now().timestamp()) + seconds_from_now

    response = execute(trigger, signed({**claims(), claim: moment}))

    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert reason in response.json()["detail"].lower()
    assert not Invocation.objects.exists()


def test_a_trigger_without_a_secret_refuses_every_execute_call(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger(secret=None)

    response = execute(trigger, signed(claims()))

    assert response.status_code == 401
    assert "no JWT signing secret" in response.json()["detail"]


def test_a_disabled_trigger_refuses_execute_calls(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger(mode="disabled")

    response = execute(trigger, signed(claims()))

    assert response.status_code == 403
    assert response.json()["code"] == "trigger_disabled"
    assert not Invocation.objects.exists()
    assert WebhookRequest.objects.get().code == "trigger_disabled"


def test_a_mapping_that_fails_answers_422(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger(mapping={"type": "structured", "structured": {"targetUserIds": "$.inArguments.customerId"}})

    response = execute(trigger, signed(claims()))

    assert response.status_code == 422
    assert response.json()["code"] == "mapping_failed"
    assert not Invocation.objects.exists()


def test_claims_without_the_ids_that_key_the_start_are_refused(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()
    call = claims()
    del call["definitionInstanceId"]

    response = execute(trigger, signed(call))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"
    assert not Invocation.objects.exists()


def test_live_mode_on_a_flow_archived_since_answers_409(sfmc_trigger, execute, flow) -> None:  # noqa: F811
    from flows import services as flow_services

    trigger = sfmc_trigger(mode="live")
    flow_services.flow_archive(flow=flow)

    response = execute(trigger, signed(claims("c-1")))

    assert response.status_code == 409
    assert not Invocation.objects.exists()


def test_an_unknown_token_is_a_json_404(execute, db) -> None:
    response = execute("no-such-token", signed(claims()))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_last_execute_call_becomes_the_sample(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()

    execute(trigger, signed(claims("tester-1", firstName="Lars")))

    trigger.refresh_from_db()
    assert trigger.sample == {
        "userId": "tester-1",
        "inArguments": {"userId": "tester-1", "firstName": "Lars"},
        "keyValue": "tester-1",
        "journeyId": "0d5f0f3e-bbbb-4ccc-8ddd-222222222222",
        "activityId": ACTIVITY,
        "definitionInstanceId": DEFINITION_INSTANCE,
        "activityInstanceId": "9e8d7c6b-cccc-4ddd-8eee-333333333333",
        "activityObjectID": "5b7c3c1e-aaaa-4bbb-8ccc-111111111111",
    }


def test_the_sample_follows_the_calls_at_most_once_a_second(sfmc_trigger, execute, test_user) -> None:  # noqa: F811
    trigger = sfmc_trigger()

    execute(trigger, signed(claims("tester-1", firstName="Lars")))
    execute(trigger, signed(claims("tester-2", firstName="Maja")))  # a burst: the row is not written again
    kept = Trigger.objects.get(pk=trigger.pk).sample
    Trigger.objects.filter(pk=trigger.pk).update(updated_at=timezone.now() - timedelta(seconds=2))
    execute(trigger, signed(claims("tester-3", firstName="Noor")))

    assert kept["inArguments"]["firstName"] == "Lars"
    assert Trigger.objects.get(pk=trigger.pk).sample["inArguments"]["firstName"] == "Noor"


# --- config.json, the inspector and the lifecycle calls --------------------------------------


def test_config_json_is_a_custom_activity_configuration(sfmc_trigger, client: Client) -> None:
    trigger = sfmc_trigger(in_arguments=[{"userId": "{{Contact.Key}}"}, {"firstName": "{{Contact.Attribute.P.F}}"}])
    base = f"http://testserver/integrations/sfmc/{trigger.token}/"

    config = client.get(f"/integrations/sfmc/{trigger.token}/config.json").json()

    assert config["workflowApiVersion"] == "1.1"
    assert config["type"] == "REST"
    assert config["metaData"]["category"] == "message"
    assert config["metaData"]["icon"].startswith("http://testserver/static/")
    assert client.get(config["metaData"]["icon"].removeprefix("http://testserver")).status_code == 200
    assert set(config["lang"]["en-US"]) == {"name", "description"}
    execute = config["arguments"]["execute"]
    assert execute["inArguments"] == [{"userId": "{{Contact.Key}}"}, {"firstName": "{{Contact.Attribute.P.F}}"}]
    assert execute["outArguments"] == []
    assert execute["url"] == base + "execute"
    assert (execute["verb"], execute["body"], execute["header"], execute["format"], execute["useJwt"]) == (
        "POST",
        "",
        "",
        "json",
        True,
    )
    assert {"timeout", "retryCount", "retryDelay", "concurrentRequests"} <= set(execute)
    for call in ("save", "publish", "validate", "stop"):
        assert config["configurationArguments"][call] == {"url": base + call, "verb": "POST", "useJwt": True}
    assert config["userInterfaces"]["configInspector"]["size"] == "scm-lg"
    assert "firstName" in config["schema"]["arguments"]["execute"]["inArguments"][1]


def test_only_the_inspector_may_be_framed_and_only_by_marketing_cloud(
    sfmc_trigger, client: Client, login, editor
) -> None:
    trigger = sfmc_trigger()

    inspector = client.get(f"/integrations/sfmc/{trigger.token}/")

    assert inspector.status_code == 200
    assert "X-Frame-Options" not in inspector
    policy = inspector["Content-Security-Policy"]
    assert "frame-ancestors https://*.exacttarget.com https://*.marketingcloudapps.com" in policy
    assert "'none'" not in policy.split("frame-ancestors", 1)[1].split(";")[0]
    for other in (
        f"/integrations/sfmc/{trigger.token}/config.json",
        "/login/",
        f"/e/acme/triggers/{trigger.pk}/",
    ):
        response = login(editor).get(other)
        assert response["X-Frame-Options"] == "DENY", other
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"], other


def test_the_inspector_of_an_unknown_token_is_a_json_404(client: Client, db) -> None:
    response = client.get("/integrations/sfmc/nope/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("call", ["save", "validate", "publish", "stop"])
def test_lifecycle_calls_with_json_or_a_signed_jwt_are_answered_200(sfmc_trigger, client: Client, call: str) -> None:
    trigger = sfmc_trigger()
    url = f"/integrations/sfmc/{trigger.token}/{call}"

    as_json = client.post(url, data=json.dumps({"activityObjectID": "x"}), content_type="application/json")
    as_jwt = client.post(url, data=signed({"activityObjectID": "x"}), content_type="application/jwt")
    forged = client.post(url, data=signed({"a": 1}, secret="x" * 40), content_type="application/jwt")

    assert (as_json.status_code, as_json.json()) == (200, {})
    assert (as_jwt.status_code, as_jwt.json()) == (200, {})
    assert forged.status_code == 401
    assert [sfmc.logged_call(entry) for entry in WebhookRequest.objects.all()] == [call] * 3


@pytest.mark.parametrize("call", ["validate", "publish"])
def test_validate_and_publish_say_why_the_activity_cannot_run(
    sfmc_trigger,
    client: Client,
    draft_flow,  # noqa: F811
    call: str,
) -> None:
    disabled = sfmc_trigger(mode="disabled")
    live_unpublished = sfmc_trigger(on_flow=draft_flow)
    Trigger.objects.filter(pk=live_unpublished.pk).update(mode="live")  # as if the flow was unpublished since

    refused = client.post(f"/integrations/sfmc/{disabled.token}/{call}", data="{}", content_type="application/json")
    unpublished = client.post(
        f"/integrations/sfmc/{live_unpublished.token}/{call}", data="{}", content_type="application/json"
    )
    saved = client.post(f"/integrations/sfmc/{disabled.token}/save", data="{}", content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["code"] == "trigger_disabled"
    assert refused.json()["detail"]
    assert unpublished.status_code == 400
    assert unpublished.json()["code"] == "flow_not_published"
    assert saved.status_code == 200


# --- The configuration API --------------------------------------------------------------------


def test_the_api_creates_an_sfmc_trigger_and_never_shows_its_secret(workbench_a, flow) -> None:  # noqa: F811
    response = workbench_a.post(
        f"/api/v1/acme/flows/{flow.pk}/triggers",
        {"type": "sfmc", "name": "Welcome", "jwtSecret": SECRET, "inArguments": [{"userId": "{{Contact.Key}}"}]},
        format="json",
    )

    assert response.status_code == 201, response.content
    created = response.json()
    trigger = Trigger.objects.get(pk=created["id"])
    assert created["type"] == "sfmc"
    assert created["mode"] == "test"
    assert created["url"] == f"http://testserver/integrations/sfmc/{trigger.token}/"
    assert created["configJsonUrl"] == created["url"] + "config.json"
    assert created["jwtSecret"] == services.SECRET_MASK
    assert created["mapping"] == sfmc.DEFAULT_SFMC_MAPPING
    assert SECRET not in json.dumps(workbench_a.get(f"/api/v1/acme/triggers/{trigger.pk}").json())
    assert trigger.config["jwtSecret"] == SECRET


def test_patching_with_the_mask_keeps_the_secret_and_a_new_one_replaces_it(workbench_a, sfmc_trigger) -> None:
    trigger = sfmc_trigger()
    url = f"/api/v1/acme/triggers/{trigger.pk}"

    kept = workbench_a.patch(url, {"jwtSecret": services.SECRET_MASK, "inArguments": [{"userId": "x"}]}, format="json")
    assert kept.status_code == 200, kept.content
    assert Trigger.objects.get(pk=trigger.pk).config["jwtSecret"] == SECRET
    assert kept.json()["inArguments"] == [{"userId": "x"}]

    replaced = workbench_a.patch(url, {"jwtSecret": OTHER_SECRET}, format="json")
    assert replaced.status_code == 200
    assert Trigger.objects.get(pk=trigger.pk).config["jwtSecret"] == OTHER_SECRET


@pytest.mark.parametrize(
    "body",
    [
        {"jwtSecret": "short"},
        {"jwtSecret": "   " * 20},
        {"inArguments": []},
        {"inArguments": [{}]},
        {"inArguments": [{"userId": 12}]},
        {"inArguments": {"userId": "x"}},
        {"mapping": {"type": "structured", "structured": {"targetUserIds": "$[?"}}},
        {"eventName": "x"},
    ],
)
def test_invalid_configuration_is_refused_and_nothing_changes(workbench_a, sfmc_trigger, body: dict[str, Any]) -> None:
    trigger = sfmc_trigger()

    response = workbench_a.patch(f"/api/v1/acme/triggers/{trigger.pk}", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert Trigger.objects.get(pk=trigger.pk).config == trigger.config


def test_the_mask_never_becomes_the_secret(workbench_a, flow) -> None:  # noqa: F811
    response = workbench_a.post(
        f"/api/v1/acme/flows/{flow.pk}/triggers", {"type": "sfmc", "jwtSecret": services.SECRET_MASK}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["jwtSecret"] is None
    assert Trigger.objects.get(type="sfmc").config["jwtSecret"] == ""


def test_the_request_log_preview_and_test_send_work_for_sfmc_triggers(
    workbench_a,
    sfmc_trigger,
    execute,
    test_user,  # noqa: F811
    django_capture_on_commit_callbacks,
) -> None:
    trigger = sfmc_trigger()
    url = f"/api/v1/acme/triggers/{trigger.pk}"
    execute(trigger, signed(claims("tester-1", firstName="Lars")))
    execute(trigger, b"garbage")

    log = workbench_a.get(f"{url}/requests").json()
    preview = workbench_a.post(f"{url}/preview", {}, format="json").json()
    tried = workbench_a.post(
        f"{url}/preview",
        {"mapping": {"type": "structured", "structured": {"targetUserIds": "$.inArguments.firstName"}}},
        format="json",
    ).json()
    properties = workbench_a.get(f"{url}/mappable-properties").json()["properties"]
    started_key = Invocation.objects.get().flow_invocation_id
    with django_capture_on_commit_callbacks(execute=True):
        sent = workbench_a.post(f"{url}/send-test")

    assert [entry["statusCode"] for entry in log] == [401, 200]
    assert preview["errors"] == []
    assert preview["output"]["targetUserIds"] in ("tester-1", ["tester-1"])
    assert preview["output"]["flowInvocationId"] == started_key
    assert tried["output"]["targetUserIds"] in ("Lars", ["Lars"])
    assert "$.inArguments.firstName" in properties
    assert sent.status_code == 202, sent.content
    assert Invocation.objects.count() == 2


def test_an_outsider_gets_nothing(api_client, env_b, sfmc_trigger, flow) -> None:  # noqa: F811
    outsider = api_client(env_b, "workbench")
    trigger = sfmc_trigger()

    created = outsider.post(f"/api/v1/globex/flows/{flow.pk}/triggers", {"type": "sfmc"}, format="json")
    assert created.status_code == 404
    assert outsider.get(f"/api/v1/globex/triggers/{trigger.pk}").status_code == 404
    assert outsider.get(f"/api/v1/globex/triggers/{trigger.pk}/requests").status_code == 404
    patched = outsider.patch(f"/api/v1/globex/triggers/{trigger.pk}", {"jwtSecret": OTHER_SECRET}, format="json")
    assert patched.status_code == 404
    assert Trigger.objects.get(pk=trigger.pk).config["jwtSecret"] == SECRET


def test_an_events_credential_may_not_configure_triggers(api_client, env_a, sfmc_trigger) -> None:
    events = api_client(env_a, "events")
    trigger = sfmc_trigger()

    assert events.get(f"/api/v1/acme/triggers/{trigger.pk}").status_code == 403
    assert events.patch(f"/api/v1/acme/triggers/{trigger.pk}", {"mode": "disabled"}, format="json").status_code == 403


# --- The Workbench ------------------------------------------------------------------------------


def test_an_editor_adds_an_sfmc_trigger_from_the_triggers_tab(login, editor, flow) -> None:  # noqa: F811
    client = login(editor)
    tab = client.get(f"/e/acme/flows/{flow.pk}/triggers/").content.decode()
    assert f"/e/acme/flows/{flow.pk}/triggers/new/sfmc" in tab

    response = client.post(f"/e/acme/flows/{flow.pk}/triggers/new/sfmc", {"name": "Welcome journey"})

    trigger = Trigger.objects.get(type="sfmc")
    assert response.status_code == 302
    assert response["Location"] == f"/e/acme/triggers/{trigger.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert f"http://testserver/integrations/sfmc/{trigger.token}/" in page
    assert "No secret yet" in page
    assert "Journey Builder has not called yet" in page


def test_a_viewer_cannot_add_or_change_an_sfmc_trigger(login, viewer, flow, sfmc_trigger) -> None:  # noqa: F811
    client = login(viewer)
    trigger = sfmc_trigger()

    assert client.post(f"/e/acme/flows/{flow.pk}/triggers/new/sfmc", {"name": "x"}).status_code == 403
    secret = client.post(f"/e/acme/triggers/{trigger.pk}/", {"op": "secret", "jwt_secret": OTHER_SECRET})
    assert secret.status_code == 403
    page = client.get(f"/e/acme/triggers/{trigger.pk}/").content.decode()
    assert "Save secret" not in page
    assert Trigger.objects.get(pk=trigger.pk).config["jwtSecret"] == SECRET


def test_an_outsider_member_gets_a_404_page(login, outsider, sfmc_trigger) -> None:
    trigger = sfmc_trigger()

    assert login(outsider).get(f"/e/acme/triggers/{trigger.pk}/").status_code == 404


def test_the_setup_page_saves_the_secret_write_only(login, editor, sfmc_trigger) -> None:
    trigger = sfmc_trigger(secret=None)
    client = login(editor)

    blank = client.post(f"/e/acme/triggers/{trigger.pk}/", {"op": "secret", "jwt_secret": ""})
    short = client.post(f"/e/acme/triggers/{trigger.pk}/", {"op": "secret", "jwt_secret": "short"})
    saved = client.post(f"/e/acme/triggers/{trigger.pk}/", {"op": "secret", "jwt_secret": SECRET})

    assert blank.status_code == 400
    assert short.status_code == 400
    assert "at least 32" in short.content.decode() or "Ensure this field has at least" in short.content.decode()
    assert saved.status_code == 302
    assert Trigger.objects.get(pk=trigger.pk).config["jwtSecret"] == SECRET
    page = client.get(f"/e/acme/triggers/{trigger.pk}/").content.decode()
    assert SECRET not in page
    assert "A secret is saved" in page


def test_the_setup_page_saves_in_arguments_as_lines(login, editor, sfmc_trigger, client: Client) -> None:
    trigger = sfmc_trigger()
    editor_client = login(editor)

    wrong = editor_client.post(f"/e/acme/triggers/{trigger.pk}/", {"op": "in_arguments", "in_arguments": "no colon"})
    saved = editor_client.post(
        f"/e/acme/triggers/{trigger.pk}/",
        {"op": "in_arguments", "in_arguments": "userId: {{Contact.Key}}\nfirstName: {{Contact.Attribute.P.First}}"},
    )

    assert wrong.status_code == 400
    assert "Line 1" in wrong.content.decode()
    assert saved.status_code == 302
    config = client.get(f"/integrations/sfmc/{trigger.token}/config.json").json()
    assert config["arguments"]["execute"]["inArguments"] == [
        {"userId": "{{Contact.Key}}"},
        {"firstName": "{{Contact.Attribute.P.First}}"},
    ]


def test_the_request_log_pages_show_journey_builders_calls_without_replay(
    login,
    editor,
    sfmc_trigger,
    execute,
    test_user,  # noqa: F811
) -> None:
    trigger = sfmc_trigger()
    execute(trigger, signed(claims("tester-1")))
    client = login(editor)

    listing = client.get(f"/e/acme/triggers/{trigger.pk}/requests/").content.decode()
    entry = WebhookRequest.objects.get()
    detail = client.get(f"/e/acme/triggers/{trigger.pk}/requests/{entry.pk}/").content.decode()
    replay = client.post(f"/e/acme/triggers/{trigger.pk}/requests/{entry.pk}/")
    setup = client.get(f"/e/acme/triggers/{trigger.pk}/").content.decode()

    assert "<code>execute</code>" in listing
    assert "Replay through the current mapping" not in detail
    assert "The JWT as sent" in detail
    assert "&quot;alg&quot;: &quot;HS256&quot;" in detail
    assert replay.status_code == 404
    assert "<code>execute</code>" in setup
    assert "Sample: the last execute call" in setup
    assert Invocation.objects.count() == 1


def test_the_mapping_is_saved_from_the_setup_page(login, editor, sfmc_trigger) -> None:
    trigger = sfmc_trigger()

    response = login(editor).post(
        f"/e/acme/triggers/{trigger.pk}/", {"mapping_type": "structured", "target-value": "$.keyValue"}
    )

    assert response.status_code == 302, response.content.decode()[:500]
    saved = Trigger.objects.get(pk=trigger.pk).config["mapping"]
    assert saved["structured"]["targetUserIds"] == "$.keyValue"


# --- a recent read (triggers.start_reads.recent_sfmc_targets) -----------------------------------

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row versions are PostgreSQL's")


@postgresql_only
def test_a_flow_archived_after_an_accepted_call_refuses_the_next(sfmc_trigger, execute, flow) -> None:  # noqa: F811
    from flows import services as flow_services

    trigger = sfmc_trigger(mode="live")
    assert execute(trigger, signed(claims("c-1"))).status_code == 200
    flow_services.flow_archive(flow=flow)

    response = execute(trigger, signed(claims("c-2")))

    assert response.status_code == 409
    assert list(Invocation.objects.values_list("target_user_ids", flat=True)) == [["c-1"]]


@postgresql_only
def test_a_trigger_disabled_by_a_queryset_update_refuses_the_next_call(sfmc_trigger, execute, flow) -> None:  # noqa: F811
    trigger = sfmc_trigger(mode="live")
    assert execute(trigger, signed(claims("c-1"))).status_code == 200
    Trigger.objects.filter(pk=trigger.pk).update(mode=TriggerMode.DISABLED)

    response = execute(trigger, signed(claims("c-2")))

    assert response.status_code == 403
    assert Invocation.objects.count() == 1
