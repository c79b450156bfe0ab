"""Event triggers (SPEC section 5): configured over the API, started by events sent through
POST events (or announced on customers' `events_recorded` as the Events API does), with `where`
filters, the webhook mapping engine, the newest event as the sample, and messageId dedup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from customers.hooks import RecordedEvent, events_recorded
from customers.models import Event
from flows.models import Card, Flow, Invocation
from tests.factories import TestUserFactory
from triggers import event_triggers, services
from triggers.event_filters import where_matches
from triggers.models import Trigger

pytestmark = pytest.mark.django_db

VARIABLE_TITLE = [{"type": "send_card", "card": {"title": "Plan {{plan}}", "body": "", "actions": []}}]


@pytest.fixture
def plan_flow(make_flow) -> Flow:
    return make_flow(
        name="Upgraded", variables=[{"name": "plan", "default": "free", "required": False}], steps=VARIABLE_TITLE
    )


def event_trigger(flow: Flow, event_name: str = "upgraded", mode: str = "live", **config: Any) -> Trigger:
    return event_triggers.event_trigger_create(flow=flow, event_name=event_name, mode=mode, **config)


_ids = iter(range(1, 10**6))


def recorded(
    env: Any, user_id: str = "u-1", name: str = "upgraded", message_id: str | None = None, **properties: Any
) -> RecordedEvent:
    return RecordedEvent(
        event_id=next(_ids),
        environment_id=env.pk,
        user_id=user_id,
        name=name,
        properties=properties,
        occurred_at=timezone.now(),
        message_id=message_id,
    )


@pytest.fixture
def announce(django_capture_on_commit_callbacks) -> Callable[..., None]:
    def send(*events: RecordedEvent) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            events_recorded.announce(events=list(events))

    return send


@pytest.fixture
def send_events(events_a, django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """POST events as the app does; the runs started have executed on return."""

    def send(*events: dict[str, Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            response = events_a.post("/api/v1/acme/events", list(events), format="json")
        assert response.status_code == 202, response.content
        return response

    return send


def titles(user_id: str, test: bool = False) -> list[str]:
    return list(Card.objects.filter(user_id=user_id, test=test).order_by("id").values_list("title", flat=True))


# --- Configuration API ----------------------------------------------------------------------


def triggers_url(flow: Flow, env: str = "acme") -> str:
    return f"/api/v1/{env}/flows/{flow.pk}/triggers"


def test_an_event_trigger_is_created_with_the_default_mapping(workbench_a, plan_flow):
    response = workbench_a.post(triggers_url(plan_flow), {"type": "event", "eventName": "upgraded"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["type"], body["mode"], body["eventName"], body["where"]) == ("event", "test", "upgraded", [])
    assert body["mapping"] == {
        "type": "structured",
        "structured": {"targetUserIds": "$.userId", "variables": "$.properties"},
    }


def test_an_event_trigger_is_edited_with_patch(workbench_a, plan_flow):
    trigger = event_trigger(plan_flow, mode="test")
    where = [{"property": "plan", "op": "in", "value": ["pro", "team"]}]

    response = workbench_a.patch(
        f"/api/v1/acme/triggers/{trigger.pk}", {"eventName": "plan_changed", "where": where}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["eventName"], response.json()["where"]) == ("plan_changed", where)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "event"}, "eventName"),
        ({"type": "event", "eventName": ""}, "eventName"),
        ({"type": "event", "eventName": 12}, "eventName"),
        ({"type": "event", "eventName": "x", "where": {"plan": "pro"}}, "where"),
        ({"type": "event", "eventName": "x", "where": [{"property": "plan", "op": "like", "value": 1}]}, "where[0].op"),
        (
            {"type": "event", "eventName": "x", "where": [{"property": "n", "op": "gt", "value": "many"}]},
            "where[0].value",
        ),
        (
            {"type": "event", "eventName": "x", "where": [{"property": "n", "op": "in", "value": "pro"}]},
            "where[0].value",
        ),
        ({"type": "event", "eventName": "x", "where": [{"op": "exists"}]}, "where[0].property"),
        (
            {"type": "event", "eventName": "x", "mapping": {"type": "structured", "structured": {}}},
            "mapping.structured.targetUserIds",
        ),
        ({"type": "event", "eventName": "x", "mapping": {"type": "psychic"}}, "mapping.type"),
        ({"type": "event", "eventName": "x", "segmentId": 3}, "segmentId"),
    ],
)
def test_an_invalid_event_trigger_is_refused_naming_the_field(workbench_a, plan_flow, body, field):
    response = workbench_a.post(triggers_url(plan_flow), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"], response.json()["errors"]
    assert not Trigger.objects.filter(type="event").exists()


def test_an_outsider_gets_nothing(api_client, env_b, plan_flow):
    outsider = api_client(env_b, "workbench")
    trigger = event_trigger(plan_flow)

    created = outsider.post(triggers_url(plan_flow, "globex"), {"type": "event", "eventName": "x"}, format="json")
    assert created.status_code == 404
    assert outsider.get(f"/api/v1/globex/triggers/{trigger.pk}").status_code == 404
    assert outsider.post(f"/api/v1/globex/triggers/{trigger.pk}/preview", {}, format="json").status_code == 404
    patched = outsider.patch(f"/api/v1/globex/triggers/{trigger.pk}", {"eventName": "y"}, format="json")
    assert patched.status_code == 404
    assert Trigger.objects.get(pk=trigger.pk).event_config["eventName"] == "upgraded"


# --- Starting -------------------------------------------------------------------------------


def test_an_event_sent_through_the_api_starts_the_flow_with_its_properties(send_events, plan_flow):
    event_trigger(plan_flow)

    send_events({"userId": "u-1", "name": "upgraded", "properties": {"plan": "pro"}, "messageId": "m-1"})

    invocation = Invocation.objects.get(flow=plan_flow)
    assert (invocation.source, invocation.flow_invocation_id, invocation.chain_depth) == ("event", "evt-m-1", 1)
    assert titles("u-1") == ["Plan pro"]


def test_a_repeated_message_id_starts_once(send_events, announce, plan_flow, env_a):
    event_trigger(plan_flow)

    send_events({"userId": "u-1", "name": "upgraded", "messageId": "m-1"})
    send_events({"userId": "u-1", "name": "upgraded", "messageId": "m-1"})
    # Even a repeat the Events API let through (say after its 24 hours) starts nothing new.
    announce(recorded(env_a, message_id="m-1"))

    assert Invocation.objects.filter(flow=plan_flow).count() == 1


def test_events_without_message_id_each_start(announce, plan_flow, env_a):
    event_trigger(plan_flow)

    announce(recorded(env_a), recorded(env_a))

    assert Invocation.objects.filter(flow=plan_flow).count() == 2


def test_only_events_of_the_name_that_pass_every_filter_start(announce, plan_flow, env_a):
    event_trigger(
        plan_flow,
        where=[
            {"property": "plan", "op": "in", "value": ["pro", "team"]},
            {"property": "seats", "op": "gte", "value": 5},
        ],
    )

    announce(
        recorded(env_a, "u-1", plan="pro", seats=10),
        recorded(env_a, "u-2", plan="pro", seats=2),
        recorded(env_a, "u-3", plan="free", seats=10),
        recorded(env_a, "u-4", name="downgraded", plan="pro", seats=10),
        recorded(env_a, "u-5", plan="team"),
    )

    assert [inv.target_user_ids for inv in Invocation.objects.filter(flow=plan_flow)] == [["u-1"]]


def test_a_structured_mapping_picks_targets_and_variables(announce, plan_flow, env_a):
    mapping = {
        "type": "structured",
        "structured": {"targetUserIds": "$.properties.referrer", "variables": {"plan": "$.properties.tier"}},
    }
    event_trigger(plan_flow, mapping=mapping)

    announce(recorded(env_a, "u-1", referrer="u-9", tier="gold"))

    assert titles("u-9") == ["Plan gold"]
    assert titles("u-1") == []


def test_a_failing_mapping_starts_nothing_and_records_the_event(send_events, plan_flow):
    event_trigger(plan_flow, mapping={"type": "structured", "structured": {"targetUserIds": "$.properties.missing"}})

    send_events({"userId": "u-1", "name": "upgraded"})

    assert Invocation.objects.filter(flow=plan_flow).count() == 0
    assert Event.objects.filter(name="upgraded").count() == 1


def test_test_mode_reaches_test_users_only(announce, plan_flow, env_a):
    TestUserFactory(environment=env_a, user_id="tester-1")
    event_trigger(plan_flow, mode="test")

    announce(recorded(env_a, "tester-1", plan="pro"), recorded(env_a, "customer-7", plan="pro"))

    assert [(inv.mode, inv.target_user_ids) for inv in Invocation.objects.filter(flow=plan_flow)] == [
        ("test", ["tester-1"])
    ]
    assert titles("tester-1", test=True) == ["Plan pro"]


def test_a_disabled_trigger_starts_nothing(announce, plan_flow, env_a):
    trigger = event_trigger(plan_flow)
    services.trigger_mode_set(trigger=trigger, mode="disabled")

    announce(recorded(env_a))

    assert Invocation.objects.filter(flow=plan_flow).count() == 0


def test_another_environments_events_start_nothing(announce, plan_flow, env_b):
    event_trigger(plan_flow)

    announce(recorded(env_b))

    assert Invocation.objects.count() == 0


# --- Sample, preview, send test -------------------------------------------------------------


def test_the_sample_is_the_newest_event_of_that_name(workbench_a, send_events, plan_flow):
    trigger = event_trigger(plan_flow, mode="disabled")
    url = f"/api/v1/acme/triggers/{trigger.pk}"

    empty = workbench_a.post(f"{url}/preview", {}, format="json").json()
    assert empty["output"] is None
    assert "POST events" in empty["errors"][0]

    send_events({"userId": "u-1", "name": "upgraded", "properties": {"plan": "pro"}, "messageId": "m-1"})
    send_events({"userId": "u-2", "name": "upgraded", "properties": {"plan": "team"}, "messageId": "m-2"})

    preview = workbench_a.post(f"{url}/preview", {}, format="json").json()
    assert preview["errors"] == []
    assert preview["output"]["targetUserIds"] == ["u-2"]
    assert preview["output"]["variables"] == {"plan": "team"}
    assert preview["output"]["flowInvocationId"] == "evt-m-2"
    properties = workbench_a.get(f"{url}/mappable-properties").json()["properties"]
    assert "$.properties.plan" in properties
    assert "$.userId" in properties


def test_send_test_runs_the_newest_event_as_a_test(
    workbench_a, send_events, plan_flow, test_user, django_capture_on_commit_callbacks
):
    trigger = event_trigger(plan_flow, mode="disabled")
    send_events({"userId": "tester-1", "name": "upgraded", "properties": {"plan": "pro"}, "messageId": "m-1"})

    with django_capture_on_commit_callbacks(execute=True):
        first = workbench_a.post(f"/api/v1/acme/triggers/{trigger.pk}/send-test")
        second = workbench_a.post(f"/api/v1/acme/triggers/{trigger.pk}/send-test")

    assert (first.status_code, second.status_code) == (202, 202)
    assert titles("tester-1", test=True) == ["Plan pro", "Plan pro"]


# --- Filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "properties", "expected"),
    [
        ("eq", "pro", {"p": "pro"}, True),
        ("eq", 1, {"p": True}, False),
        ("neq", "pro", {}, True),
        ("contains", "ro", {"p": "pro"}, True),
        ("notContains", "ro", {"p": 5}, True),
        ("startsWith", "pr", {"p": "pro"}, True),
        ("endsWith", "x", {"p": "pro"}, False),
        ("in", ["a", 2], {"p": 2}, True),
        ("notIn", ["a"], {"p": "b"}, True),
        ("exists", None, {"p": None}, False),
        ("notExists", None, {}, True),
        ("gt", 3, {"p": 4}, True),
        ("lte", 3, {"p": "3"}, False),
        ("before", "2026-01-01", {"p": "2025-12-31T23:00:00Z"}, True),
        ("after", "2026-01-01", {"p": "2025-12-31"}, False),
        ("withinLastDays", 7, {"p": "2026-11-28"}, True),
        ("notWithinLastDays", 7, {"p": "2026-11-28"}, False),
        ("withinNextDays", 7, {"p": "2026-12-03"}, True),
        ("betweenDaysAgo", [90, 30], {"p": "2026-10-01"}, True),
        ("betweenDaysAgo", [90, 30], {"p": "2026-11-15"}, False),
    ],
)
def test_where_filters_apply_the_field_test_ops_to_properties(op, value, properties, expected):
    from datetime import UTC, datetime

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    item = {"property": "p", "op": op} | ({} if value is None else {"value": value})

    assert where_matches([item], properties, now=now) is expected


def test_a_dotted_property_reaches_into_objects():
    from datetime import UTC, datetime

    where = [{"property": "order.total", "op": "gt", "value": 100}]
    assert where_matches(where, {"order": {"total": 120}}, now=datetime.now(UTC))


# --- Workbench pages --------------------------------------------------------------------------


def test_an_editor_adds_an_event_trigger_and_maps_the_newest_event(login, editor, plan_flow, send_events):
    client = login(editor)
    send_events({"userId": "tester-1", "name": "upgraded", "properties": {"plan": "pro"}, "messageId": "m-7"})
    form = client.get(f"/e/acme/flows/{plan_flow.pk}/triggers/new/event").content.decode()
    assert '<option value="upgraded">' in form

    response = client.post(
        f"/e/acme/flows/{plan_flow.pk}/triggers/new/event",
        {"event_name": "upgraded", "where": '[{"property": "plan", "op": "eq", "value": "pro"}]', "mode": "test"},
    )

    trigger = Trigger.objects.get(type="event")
    assert response.status_code == 302
    assert trigger.event_config["where"] == [{"property": "plan", "op": "eq", "value": "pro"}]
    page = client.get(response["Location"]).content.decode()
    assert "&quot;messageId&quot;: &quot;m-7&quot;" in page  # the sample
    assert "A valid start request." in page
    assert "evt-m-7" in page  # the preview shows the key the event starts under


def test_an_event_trigger_page_without_events_says_how_to_send_one(login, editor, plan_flow):
    trigger = event_trigger(plan_flow, mode="test")

    page = login(editor).get(f"/e/acme/triggers/{trigger.pk}/").content.decode()

    assert "No upgraded event has been received yet." in page
    assert "/api/v1/acme/events" in page


def test_bad_filters_are_shown_on_the_form(login, editor, plan_flow):
    response = login(editor).post(
        f"/e/acme/flows/{plan_flow.pk}/triggers/new/event",
        {"event_name": "upgraded", "where": '[{"property": "plan", "op": "like"}]', "mode": "test"},
    )

    assert response.status_code == 400
    assert "where[0].op" in response.content.decode()
    assert not Trigger.objects.filter(type="event").exists()


def test_the_mapping_is_saved_from_the_page_and_the_test_card_sent(
    login, editor, plan_flow, send_events, django_capture_on_commit_callbacks
):
    trigger = event_trigger(plan_flow, mode="test")
    send_events({"userId": "tester-1", "name": "upgraded", "properties": {"tier": "gold"}})
    TestUserFactory(environment=plan_flow.environment, user_id="tester-1")
    client = login(editor)

    saved = client.post(
        f"/e/acme/triggers/{trigger.pk}/",
        {
            "mapping_type": "structured",
            "target-kind": "path",
            "target-value": "$.userId",
            "var-0-name": "plan",
            "var-0-kind": "path",
            "var-0-value": "$.properties.tier",
        },
    )
    assert saved.status_code == 302
    trigger.refresh_from_db()
    assert trigger.event_config["mapping"]["structured"] == {
        "targetUserIds": "$.userId",
        "variables": {"plan": "$.properties.tier"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(f"/e/acme/triggers/{trigger.pk}/send-test")

    assert sent.status_code == 200
    assert titles("tester-1", test=True) == ["Plan gold"]


# Event triggers' `where` means what a segment's event test means (segments/compiler.py) ------


@pytest.mark.parametrize(
    ("test", "properties", "matches"),
    [
        ({"property": "coupon", "op": "exists"}, {"coupon": ""}, False),
        ({"property": "coupon", "op": "notExists"}, {"coupon": ""}, True),
        ({"property": "paidAt", "op": "notWithinLastDays", "value": 7}, {}, True),
        ({"property": "paidAt", "op": "notWithinLastDays", "value": 7}, {"paidAt": "2030-01-01"}, True),
        ({"property": "paidAt", "op": "notWithinLastDays", "value": 7}, {"paidAt": "2026-11-29T12:00:00Z"}, False),
        ({"property": "paidAt", "op": "after", "value": "2026-05-01"}, {"paidAt": "2026-05-01T18:00:00Z"}, False),
        ({"property": "paidAt", "op": "after", "value": "2026-05-01"}, {"paidAt": "2026-05-02T00:00:00Z"}, True),
        ({"property": "paidAt", "op": "before", "value": "2026-05-01"}, {"paidAt": "2026-04-30T23:59:59Z"}, True),
        ({"property": "paidAt", "op": "before", "value": "2026-05-01"}, {"paidAt": "2026-05-01T00:00:00Z"}, False),
    ],
)
def test_a_where_filter_means_what_the_same_test_means_in_a_segment(test, properties, matches):
    from triggers.event_filters import where_clean, where_matches

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    assert where_matches(where_clean([test]), properties, now=now) is matches
