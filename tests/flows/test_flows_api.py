"""The flows configuration API (SPEC section 3, role workbench) and a flow's triggers."""

from __future__ import annotations

from typing import Any

import pytest

from flows.models import Flow, FlowStatus, FlowVersion
from tests.flows.conftest import GREETING
from triggers.models import Trigger, TriggerMode, TriggerType

pytestmark = pytest.mark.django_db

FLOWS_URL = "/api/v1/acme/flows"
WAIT = {"type": "wait", "seconds": 60}


def flow_url(flow_id: int, suffix: str = "", env: str = "acme") -> str:
    return f"/api/v1/{env}/flows/{flow_id}{suffix}"


def card_step(title: str) -> dict[str, Any]:
    return {"type": "send_card", "card": {"title": title, "body": "", "actions": []}}


def assert_invalid(response, *fields: str) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["detail"]
    for name in fields:
        assert name in body["errors"], body["errors"]
    return body["errors"]


def snapshot() -> list[dict[str, Any]]:
    """Every flow, version and trigger row, to show that a refused request changed nothing."""
    return [
        *Flow.objects.order_by("pk").values(),
        *FlowVersion.objects.order_by("pk").values(),
        *Trigger.objects.order_by("pk").values(),
    ]


# --- create, list, read, update, delete ------------------------------------------------


def test_creating_a_flow_answers_201_with_the_draft_and_no_published_version(workbench_a, env_a):
    response = workbench_a.post(FLOWS_URL, {"name": "Welcome", **GREETING}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Welcome",
        "status": "draft",
        "variables": GREETING["variables"],
        "steps": GREETING["steps"],
        "publishedVersion": None,
    }
    assert Flow.objects.get(pk=body["id"]).environment == env_a


def test_a_flow_created_with_a_name_only_has_an_empty_draft(workbench_a):
    response = workbench_a.post(FLOWS_URL, {"name": "Later"}, format="json")

    assert response.status_code == 201
    assert (response.json()["variables"], response.json()["steps"]) == ([], [])


def test_every_new_flow_has_its_api_trigger(workbench_a):
    flow_id = workbench_a.post(FLOWS_URL, {"name": "Welcome", **GREETING}, format="json").json()["id"]

    triggers = Trigger.objects.filter(flow_id=flow_id)

    assert [(trigger.type, trigger.mode) for trigger in triggers] == [(TriggerType.API, TriggerMode.LIVE)]


def test_the_list_shows_the_environments_flows_by_name_and_no_others(workbench_a, make_flow, env_b):
    make_flow(name="Zebra")
    make_flow(name="Alpha", publish=False)
    make_flow(name="Globex secret", environment=env_b)

    response = workbench_a.get(FLOWS_URL)

    assert response.status_code == 200
    assert [(flow["name"], flow["status"]) for flow in response.json()] == [("Alpha", "draft"), ("Zebra", "published")]


def test_reading_a_flow_shows_its_draft_and_published_version(workbench_a, flow):
    response = workbench_a.get(flow_url(flow.pk))

    assert response.status_code == 200
    assert response.json()["publishedVersion"] == 1
    assert response.json()["steps"] == GREETING["steps"]


def test_patch_changes_only_what_it_names(workbench_a, draft_flow):
    response = workbench_a.patch(flow_url(draft_flow.pk), {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["steps"] == GREETING["steps"]
    draft_flow.refresh_from_db()
    assert draft_flow.name == "Renamed"
    assert draft_flow.draft["steps"] == GREETING["steps"]


def test_patching_a_published_flow_changes_the_draft_but_not_the_published_version(workbench_a, flow):
    response = workbench_a.patch(flow_url(flow.pk), {"steps": [card_step("New text")]}, format="json")

    assert response.status_code == 200
    assert response.json()["steps"] == [card_step("New text")]
    assert (response.json()["status"], response.json()["publishedVersion"]) == ("published", 1)
    assert FlowVersion.objects.get(flow=flow, number=1).definition["steps"] == GREETING["steps"]


def test_deleting_a_flow_answers_204_and_it_is_gone_with_its_triggers(workbench_a, flow):
    response = workbench_a.delete(flow_url(flow.pk))

    assert response.status_code == 204
    assert workbench_a.get(flow_url(flow.pk)).status_code == 404
    assert not Flow.objects.filter(pk=flow.pk).exists()
    assert not Trigger.objects.filter(flow_id=flow.pk).exists()


def test_an_unknown_flow_id_answers_404_in_our_shape(workbench_a):
    response = workbench_a.get(flow_url(999_999))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- publish and archive ---------------------------------------------------------------


def test_publishing_makes_version_1_then_2(workbench_a, draft_flow):
    first = workbench_a.post(flow_url(draft_flow.pk, "/publish"), {}, format="json")
    workbench_a.patch(flow_url(draft_flow.pk), {"steps": [card_step("Second")]}, format="json")
    second = workbench_a.post(
        flow_url(draft_flow.pk, "/publish"), {"triggerExistingSegmentMembers": False}, format="json"
    )

    assert first.status_code == 200, first.content
    assert (first.json()["status"], first.json()["publishedVersion"]) == ("published", 1)
    assert second.json()["publishedVersion"] == 2
    versions = FlowVersion.objects.filter(flow=draft_flow).order_by("number")
    assert [version.definition["steps"] for version in versions] == [GREETING["steps"], [card_step("Second")]]


def test_publishing_a_flow_without_steps_is_refused_and_makes_no_version(workbench_a, make_flow):
    empty = make_flow(name="Empty", variables=[], steps=[], publish=False)

    response = workbench_a.post(flow_url(empty.pk, "/publish"), {}, format="json")

    assert_invalid(response, "steps")
    assert not FlowVersion.objects.filter(flow=empty).exists()


def test_publish_refuses_unknown_fields(workbench_a, draft_flow):
    response = workbench_a.post(flow_url(draft_flow.pk, "/publish"), {"force": True}, format="json")

    assert_invalid(response, "force")
    assert not FlowVersion.objects.filter(flow=draft_flow).exists()


def test_archiving_a_flow_shows_it_archived(workbench_a, flow):
    response = workbench_a.post(flow_url(flow.pk, "/archive"))

    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    flow.refresh_from_db()
    assert flow.status == FlowStatus.ARCHIVED


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("post", "/publish", {}), ("patch", "", {"name": "Renamed"})],
    ids=["publish", "patch"],
)
def test_an_archived_flow_can_be_neither_published_nor_edited(workbench_a, flow, method, suffix, body):
    workbench_a.post(flow_url(flow.pk, "/archive"))
    before = snapshot()

    response = getattr(workbench_a, method)(flow_url(flow.pk, suffix), body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "flow_archived"
    assert snapshot() == before


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Bad", "steps": [{"type": "teleport"}]}, "steps.0"),
        ({"name": "Bad", "steps": [{"type": "send_card", "card": {"title": ""}}]}, "steps.0.card.title"),
        ({"name": "Bad", "steps": [card_step("Hi {{nobody}}")]}, "steps.0.card.title"),
        ({"name": "Bad", "steps": [{"type": "wait", "seconds": 0}]}, "steps.0.seconds"),
        (
            {
                "name": "Bad",
                "steps": [
                    {
                        "type": "send_card",
                        "card": {"title": "Hi", "actions": [{"label": "Go", "url": "javascript:alert(1)"}]},
                    }
                ],
            },
            "steps.0.card.actions.0.url",
        ),
        ({"name": "Bad", "variables": [{"name": "1st"}]}, "variables.0.name"),
        ({"name": "Bad", "variables": [{"name": "a"}, {"name": "a"}]}, "variables.1.name"),
        ({"name": "Bad", "variables": {"firstName": "Lars"}}, "variables"),
        ({"name": "Bad", "steps": {"type": "wait", "seconds": 5}}, "steps"),
        ({"name": "Bad", "steps": ""}, "steps"),
        ({"name": "Bad", "variables": 0}, "variables"),
    ],
    ids=[
        "no name",
        "blank name",
        "long name",
        "unknown step type",
        "card without title",
        "undefined variable",
        "zero wait",
        "javascript url",
        "bad variable name",
        "variable twice",
        "variables not a list",
        "steps not a list",
        "steps an empty string",
        "variables zero",
    ],
)
def test_an_invalid_flow_is_refused_with_the_problem_at_its_location(workbench_a, body, location):
    response = workbench_a.post(FLOWS_URL, body, format="json")

    assert_invalid(response, location)
    assert not Flow.objects.exists()


def test_creating_a_flow_refuses_unknown_fields(workbench_a):
    response = workbench_a.post(FLOWS_URL, {"name": "Welcome", "colour": "red"}, format="json")

    assert_invalid(response, "colour")
    assert not Flow.objects.exists()


def test_an_invalid_patch_is_refused_and_keeps_the_draft(workbench_a, flow):
    before = snapshot()

    response = workbench_a.patch(flow_url(flow.pk), {"steps": [WAIT, {"type": "wait"}], "x": 1}, format="json")

    assert_invalid(response, "x")
    assert snapshot() == before


def test_an_invalid_definition_in_a_patch_is_refused_and_keeps_the_draft(workbench_a, flow):
    before = snapshot()

    response = workbench_a.patch(flow_url(flow.pk), {"steps": [WAIT, {"type": "wait"}]}, format="json")

    assert_invalid(response, "steps.1.seconds")
    assert snapshot() == before


# --- triggers ----------------------------------------------------------------------------


def test_a_flows_triggers_show_the_api_triggers_start_and_test_urls(workbench_a, flow):
    response = workbench_a.get(flow_url(flow.pk, "/triggers"))

    assert response.status_code == 200
    [trigger] = response.json()
    assert trigger == {
        "id": Trigger.objects.get(flow=flow).pk,
        "flowId": flow.pk,
        "type": "api",
        "name": "",
        "mode": "live",
        "pausedReason": None,
        "url": None,
        "startUrl": f"http://testserver/api/v1/acme/action-flow/{flow.pk}/start",
        "testUrl": f"http://testserver/api/v1/acme/action-flow/{flow.pk}/test",
    }


def test_a_trigger_can_be_read_by_its_id(workbench_a, flow):
    trigger = Trigger.objects.get(flow=flow)

    response = workbench_a.get(f"/api/v1/acme/triggers/{trigger.pk}")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["type"], response.json()["flowId"]) == (trigger.pk, "api", flow.pk)


def test_deleting_a_flows_api_trigger_is_refused_with_409(workbench_a, flow):
    trigger = Trigger.objects.get(flow=flow)

    response = workbench_a.delete(f"/api/v1/acme/triggers/{trigger.pk}")

    assert response.status_code == 409
    assert response.json()["code"] == "api_trigger_required"
    assert Trigger.objects.filter(pk=trigger.pk).exists()


def test_a_disabled_trigger_of_another_type_can_be_deleted(workbench_a, flow):
    webhook = Trigger.objects.create(
        environment=flow.environment, flow=flow, type=TriggerType.WEBHOOK, mode=TriggerMode.DISABLED
    )

    response = workbench_a.delete(f"/api/v1/acme/triggers/{webhook.pk}")

    assert response.status_code == 204
    assert not Trigger.objects.filter(pk=webhook.pk).exists()


# --- who may call -----------------------------------------------------------------------

# (method, path template, body); {flow} and {trigger} are ids of environment A.
ENDPOINTS: dict[str, tuple[str, str, Any]] = {
    "list": ("get", "flows", None),
    "create": ("post", "flows", {"name": "Mallory", **GREETING}),
    "read": ("get", "flows/{flow}", None),
    "patch": ("patch", "flows/{flow}", {"name": "Mallory"}),
    "delete": ("delete", "flows/{flow}", None),
    "publish": ("post", "flows/{flow}/publish", {}),
    "archive": ("post", "flows/{flow}/archive", None),
    "triggers": ("get", "flows/{flow}/triggers", None),
    "trigger": ("get", "triggers/{trigger}", None),
    "trigger delete": ("delete", "triggers/{trigger}", None),
}


@pytest.fixture
def webhook_trigger(flow) -> Trigger:
    """A disabled trigger that the right caller could delete, so a refusal means something."""
    return Trigger.objects.create(
        environment=flow.environment, flow=flow, type=TriggerType.WEBHOOK, mode=TriggerMode.DISABLED
    )


def call(client, endpoint: str, flow: Flow, trigger: Trigger, env: str = "acme"):
    method, template, body = ENDPOINTS[endpoint]
    path = f"/api/v1/{env}/" + template.format(flow=flow.pk, trigger=trigger.pk)
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_environments_credential_gets_404_and_changes_nothing(session_with, flow, webhook_trigger, endpoint):
    outsider = session_with("outsider", "workbench")
    before = snapshot()

    response = call(outsider, endpoint, flow, webhook_trigger)

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", [name for name, (_, path, _) in ENDPOINTS.items() if "{" in path])
def test_another_environments_ids_on_its_own_path_get_404_and_change_nothing(
    session_with, flow, webhook_trigger, endpoint
):
    outsider = session_with("outsider", "workbench")
    before = snapshot()

    response = call(outsider, endpoint, flow, webhook_trigger, env="globex")

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert "Welcome" not in response.content.decode()
    assert snapshot() == before


def test_another_environments_list_shows_none_of_ours(session_with, flow):
    response = session_with("outsider", "workbench").get("/api/v1/globex/flows")

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", ["events", "auth"])
def test_a_role_other_than_workbench_gets_403_and_changes_nothing(
    api_client, env_a, flow, webhook_trigger, endpoint, role
):
    before = snapshot()

    response = call(api_client(env_a, role), endpoint, flow, webhook_trigger)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401(
    session_with, env_a, flow, webhook_trigger, endpoint, kind
):
    client = session_with(kind, "workbench", env_a)
    before = snapshot()

    response = call(client, endpoint, flow, webhook_trigger)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert snapshot() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_flow_needs_a_name_of_1_to_200_characters(workbench_a, flow, name):
    created = workbench_a.post("/api/v1/acme/flows", {"name": name}, format="json")
    patched = workbench_a.patch(f"/api/v1/acme/flows/{flow.pk}", {"name": name}, format="json")

    assert (created.status_code, patched.status_code) == (400, 400)
    assert "name" in created.json()["errors"]
    assert "name" in patched.json()["errors"]
    flow.refresh_from_db()
    assert flow.name == "Welcome"
