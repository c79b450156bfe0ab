"""Segment triggers (SPEC section 5): configured over the API, started by membership changes,
and publishing with the members a segment already has.

Membership changes are announced on customers' `segment_transitions` hook as the segments
ledger announces them (inside its transaction); these tests announce them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from customers.hooks import SegmentTransition, segment_transitions
from flows import services as flow_services
from flows.models import Card, Flow, Invocation
from segments.models import Segment, SegmentMembership
from tests.factories import TestUserFactory
from triggers import segment_triggers
from triggers.models import Trigger, TriggerOnceStart

pytestmark = pytest.mark.django_db


def make_segment(environment: Any, name: str = "VIP customers") -> Segment:
    return Segment.objects.create(
        environment=environment, name=name, rules={"match": "all", "conditions": []}, status="ready"
    )


@pytest.fixture
def vip(env_a) -> Segment:
    return make_segment(env_a)


@pytest.fixture
def other_env_segment(env_b) -> Segment:
    return make_segment(env_b, "Globex VIPs")


def transition(segment: Segment, user_id: str, *, entered: bool = True, sequence: int = 1) -> SegmentTransition:
    return SegmentTransition(
        environment_id=segment.environment_id,
        segment_id=segment.pk,
        segment_name=segment.name,
        user_id=user_id,
        entered=entered,
        sequence=sequence,
        at=timezone.now(),
    )


@pytest.fixture
def announce(django_capture_on_commit_callbacks) -> Callable[..., None]:
    """`announce(*transitions)`: as the ledger does; the runs started have executed on return."""

    def send(*transitions: SegmentTransition) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            segment_transitions.announce(transitions=list(transitions))

    return send


def segment_trigger(flow: Flow, segment: Segment, mode: str = "live", **config: Any) -> Trigger:
    return segment_triggers.segment_trigger_create(flow=flow, segment_id=segment.pk, mode=mode, **config)


def invocations(flow: Flow, mode: str = "live") -> list[Invocation]:
    return list(Invocation.objects.filter(flow=flow, mode=mode).order_by("id"))


def cards_of(user_id: str, *, test: bool = False) -> list[str]:
    return list(Card.objects.filter(user_id=user_id, test=test).values_list("title", flat=True))


# --- Configuration API ----------------------------------------------------------------------


def triggers_url(flow: Flow, env: str = "acme") -> str:
    return f"/api/v1/{env}/flows/{flow.pk}/triggers"


def test_a_segment_trigger_is_created_in_test_mode_with_its_defaults(workbench_a, flow, vip):
    response = workbench_a.post(triggers_url(flow), {"type": "segment", "segmentId": vip.pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "segment"
    assert body["mode"] == "test"
    assert (body["segmentId"], body["on"], body["reentry"]) == (vip.pk, "entered", "always")
    assert body["url"] is None
    assert workbench_a.get(f"/api/v1/acme/triggers/{body['id']}").json()["segmentId"] == vip.pk


def test_a_segment_trigger_can_start_live_exited_and_once(workbench_a, flow, vip):
    body = {"type": "segment", "segmentId": vip.pk, "on": "exited", "reentry": "once", "mode": "live"}
    response = workbench_a.post(triggers_url(flow), body, format="json")

    assert response.status_code == 201, response.content
    assert {key: response.json()[key] for key in ("on", "reentry", "mode")} == {
        "on": "exited",
        "reentry": "once",
        "mode": "live",
    }


def test_a_segment_trigger_is_edited_with_patch(workbench_a, flow, vip, env_a):
    other = make_segment(env_a, "Churn risk")
    trigger = segment_trigger(flow, vip, mode="test")

    response = workbench_a.patch(
        f"/api/v1/acme/triggers/{trigger.pk}",
        {"segmentId": other.pk, "reentry": "once", "mode": "disabled", "name": "Churners"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["segmentId"], body["on"], body["reentry"], body["mode"], body["name"]) == (
        other.pk,
        "entered",
        "once",
        "disabled",
        "Churners",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "segment"}, "segmentId"),
        ({"type": "segment", "segmentId": 999999}, "segmentId"),
        ({"type": "segment", "segmentId": "abc"}, "segmentId"),
        ({"type": "segment", "segmentId": None}, "segmentId"),
        ({"type": "segment", "segmentId": "VIP", "on": "joined"}, "on"),
        ({"type": "segment", "segmentId": "VIP", "reentry": "twice"}, "reentry"),
        ({"type": "segment", "segmentId": "VIP", "mode": "paused"}, "mode"),
        ({"type": "segment", "segmentId": "VIP", "color": "red"}, "color"),
        ({"type": "sms"}, "type"),
    ],
)
def test_an_invalid_segment_trigger_is_refused_naming_the_field(workbench_a, flow, vip, body, field):
    body = {key: (vip.pk if value == "VIP" else value) for key, value in body.items()}
    response = workbench_a.post(triggers_url(flow), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]
    assert not Trigger.objects.filter(type="segment").exists()


def test_another_environments_segment_is_unknown(workbench_a, flow, other_env_segment):
    response = workbench_a.post(
        triggers_url(flow), {"type": "segment", "segmentId": other_env_segment.pk}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"]["segmentId"] == ["No such segment in this environment."]


def test_going_live_needs_a_published_flow(workbench_a, draft_flow, vip):
    response = workbench_a.post(
        triggers_url(draft_flow), {"type": "segment", "segmentId": vip.pk, "mode": "live"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "flow_not_published"


def test_an_outsider_gets_nothing(api_client, env_b, flow, vip):
    outsider = api_client(env_b, "workbench")
    trigger = segment_trigger(flow, vip)

    created = outsider.post(triggers_url(flow, "globex"), {"type": "segment", "segmentId": vip.pk}, format="json")
    assert created.status_code == 404
    assert outsider.get(f"/api/v1/globex/triggers/{trigger.pk}").status_code == 404
    patched = outsider.patch(f"/api/v1/globex/triggers/{trigger.pk}", {"mode": "disabled"}, format="json")
    assert patched.status_code == 404
    assert Trigger.objects.get(pk=trigger.pk).mode == "live"


# --- Starting ---------------------------------------------------------------------------------


def test_entering_the_segment_starts_the_flow_once_per_transition(flow, vip, announce):
    segment_trigger(flow, vip)

    announce(transition(vip, "u-1"))
    announce(transition(vip, "u-1"))  # the same change, delivered again

    started = invocations(flow)
    assert len(started) == 1
    assert started[0].source == "segment"
    assert started[0].flow_invocation_id == transition(vip, "u-1").key
    assert started[0].target_user_ids == ["u-1"]
    assert cards_of("u-1") == ["Hello there"]


def test_a_batch_of_transitions_starts_one_invocation_per_customer(flow, vip, announce):
    segment_trigger(flow, vip)
    others = make_segment(vip.environment, "Unrelated")

    announce(*[transition(vip, f"u-{i}") for i in range(20)], transition(others, "u-99"))

    assert sorted(inv.target_user_ids[0] for inv in invocations(flow)) == sorted(f"u-{i}" for i in range(20))


def test_a_batch_of_transitions_costs_a_few_queries_not_one_per_customer(flow, vip, django_assert_max_num_queries):
    segment_trigger(flow, vip)
    # PostgreSQL writes a chunk of starts in one statement; SQLite's path saves each invocation.
    per_start = 0 if connection.vendor == "postgresql" else 1

    with django_assert_max_num_queries(12 + 50 * per_start):
        segment_transitions.announce(transitions=[transition(vip, f"u-{i}") for i in range(50)])

    assert len(invocations(flow)) == 50


def test_always_starts_again_on_each_new_entry(flow, vip, announce):
    segment_trigger(flow, vip, reentry="always")

    announce(transition(vip, "u-1", sequence=1))
    announce(transition(vip, "u-1", entered=False, sequence=2))
    announce(transition(vip, "u-1", sequence=3))

    assert len(invocations(flow)) == 2


def test_once_starts_a_customer_at_most_once_ever(flow, vip, announce):
    trigger = segment_trigger(flow, vip, reentry="once")

    announce(transition(vip, "u-1", sequence=1), transition(vip, "u-2", sequence=1))
    announce(transition(vip, "u-1", entered=False, sequence=2))
    announce(transition(vip, "u-1", sequence=3))

    assert sorted(inv.target_user_ids[0] for inv in invocations(flow)) == ["u-1", "u-2"]
    assert TriggerOnceStart.objects.filter(trigger=trigger).count() == 2


def test_exited_starts_on_exit_only(flow, vip, announce):
    segment_trigger(flow, vip, on="exited")

    announce(transition(vip, "u-1", sequence=1))
    assert invocations(flow) == []

    announce(transition(vip, "u-1", entered=False, sequence=2))
    assert [inv.flow_invocation_id for inv in invocations(flow)] == [
        transition(vip, "u-1", entered=False, sequence=2).key
    ]


def test_test_mode_reaches_test_users_only(flow, vip, announce, env_a):
    TestUserFactory(environment=env_a, user_id="tester-1")
    segment_trigger(flow, vip, mode="test")

    announce(transition(vip, "tester-1"), transition(vip, "customer-7"))

    assert invocations(flow, "live") == []
    assert [inv.target_user_ids for inv in invocations(flow, "test")] == [["tester-1"]]
    assert cards_of("tester-1", test=True) == ["Hello there"]
    assert cards_of("customer-7") == []
    assert cards_of("customer-7", test=True) == []


def test_a_disabled_trigger_starts_nothing(flow, vip, announce):
    trigger = segment_trigger(flow, vip)
    from triggers import services

    services.trigger_mode_set(trigger=trigger, mode="disabled")

    announce(transition(vip, "u-1"))

    assert Invocation.objects.filter(flow=flow).count() == 0


def test_a_live_trigger_of_an_archived_flow_starts_nothing(flow, vip, announce):
    segment_trigger(flow, vip)
    flow_services.flow_archive(flow=flow)

    announce(transition(vip, "u-1"))

    assert Invocation.objects.filter(flow=flow).count() == 0


def test_a_refused_start_does_not_break_the_membership_change(make_flow, vip, announce):
    needs_plan = make_flow(
        name="Needs a plan",
        variables=[{"name": "plan", "default": None, "required": True}],
        steps=[{"type": "send_card", "card": {"title": "{{plan}}", "body": "", "actions": []}}],
    )
    segment_trigger(needs_plan, vip)

    announce(transition(vip, "u-1"))  # missing_variables: logged, nothing raised

    assert Invocation.objects.filter(flow=needs_plan).count() == 0


# --- Publishing with existing members -------------------------------------------------------


def members(segment: Segment, *user_ids: str, sequence: int = 1) -> None:
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(environment_id=segment.environment_id, segment=segment, user_id=u, sequence=sequence)
            for u in user_ids
        ]
    )


def publish(workbench: Any, flow: Flow, trigger_existing: bool | None = None) -> Any:
    body = {} if trigger_existing is None else {"triggerExistingSegmentMembers": trigger_existing}
    return workbench.post(f"/api/v1/acme/flows/{flow.pk}/publish", body, format="json")


def edit_draft(flow: Flow, title: str) -> None:
    flow_services.flow_update(
        flow=flow, steps=[{"type": "send_card", "card": {"title": title, "body": "", "actions": []}}]
    )


def test_publish_reports_the_members_already_in_the_segment(workbench_a, flow, vip, django_capture_on_commit_callbacks):
    members(vip, "u-1", "u-2", "u-3")
    SegmentMembership.objects.create(environment_id=vip.environment_id, segment=vip, user_id="gone", is_member=False)
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")

    with django_capture_on_commit_callbacks(execute=True):
        response = publish(workbench_a, flow)

    assert response.status_code == 200, response.content
    assert response.json()["existingSegmentMembers"] == 3
    assert invocations(flow) == []


def test_a_flow_without_entered_triggers_reports_no_members(workbench_a, flow, vip):
    members(vip, "u-1")
    segment_trigger(flow, vip, on="exited")
    edit_draft(flow, "v2")

    assert "existingSegmentMembers" not in publish(workbench_a, flow).json()


def test_publish_starts_existing_members_once(workbench_a, flow, vip, announce, django_capture_on_commit_callbacks):
    members(vip, "u-1", "u-2", sequence=3)
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")

    with django_capture_on_commit_callbacks(execute=True):
        response = publish(workbench_a, flow, trigger_existing=True)
    assert response.json()["existingSegmentMembers"] == 2
    assert sorted(inv.target_user_ids[0] for inv in invocations(flow)) == ["u-1", "u-2"]
    assert cards_of("u-1") == ["v2"]

    # Publishing again, or the entry that made them members delivered late, starts nobody again.
    edit_draft(flow, "v3")
    with django_capture_on_commit_callbacks(execute=True):
        publish(workbench_a, flow, trigger_existing=True)
    announce(transition(vip, "u-1", sequence=3))
    assert len(invocations(flow)) == 2


def test_publish_result_counts_the_members_started(flow, vip):
    members(vip, "u-1", "u-2")
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")

    result = flow_services.flow_publish(flow=flow, trigger_existing_segment_members=True)

    assert (result.existing_segment_members, result.existing_segment_members_started) == (2, 2)


def test_a_large_segment_is_started_after_the_publish_commits(
    flow, vip, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(segment_triggers, "INLINE_MEMBER_LIMIT", 2)
    monkeypatch.setattr(segment_triggers, "MEMBER_PAGE", 2)
    members(vip, "u-1", "u-2", "u-3", "u-4", "u-5")
    segment_trigger(flow, vip, reentry="once")
    edit_draft(flow, "v2")

    with django_capture_on_commit_callbacks(execute=True):
        result = flow_services.flow_publish(flow=flow, trigger_existing_segment_members=True)

    assert (result.existing_segment_members_started, result.existing_segment_members_queued) == (0, 5)
    assert len(invocations(flow)) == 5


def test_a_large_segment_whose_message_is_lost_is_started_by_the_sweep(flow, vip, monkeypatch):
    from triggers import tasks
    from triggers.models import MemberBackfill

    monkeypatch.setattr(segment_triggers, "INLINE_MEMBER_LIMIT", 2)
    members(vip, "u-1", "u-2", "u-3")
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")
    # The publish commits its backfill, but its message never arrives (no on-commit callbacks run).
    flow_services.flow_publish(flow=flow, trigger_existing_segment_members=True)
    assert invocations(flow) == []
    assert segment_triggers.member_backfills_resend() == []  # its first message still has time

    later = timezone.now() + segment_triggers.BACKFILL_FIRST_MESSAGE_GRACE * 2
    monkeypatch.setattr(segment_triggers.timezone, "now", lambda: later)
    tasks.resend_member_backfills()

    assert sorted(i.target_user_ids[0] for i in invocations(flow)) == ["u-1", "u-2", "u-3"]
    assert not MemberBackfill.objects.exists()
    tasks.resend_member_backfills()  # nothing left to send
    assert len(invocations(flow)) == 3


def test_a_backfill_another_worker_holds_is_left_to_it(flow, vip, monkeypatch):
    from triggers.models import MemberBackfill

    monkeypatch.setattr(segment_triggers, "INLINE_MEMBER_LIMIT", 1)
    members(vip, "u-1", "u-2")
    trigger = segment_trigger(flow, vip)
    edit_draft(flow, "v2")
    flow_services.flow_publish(flow=flow, trigger_existing_segment_members=True)
    MemberBackfill.objects.update(claimed_until=timezone.now() + timezone.timedelta(minutes=5))

    assert segment_triggers.segment_members_start_by_id(trigger_id=trigger.pk) == 0
    assert invocations(flow) == []


# --- Workbench pages --------------------------------------------------------------------------


def test_add_trigger_offers_segment_and_event(login, owner, flow):
    page = login(owner).get(f"/e/acme/flows/{flow.pk}/triggers/").content.decode()

    assert f"/e/acme/flows/{flow.pk}/triggers/new/segment" in page
    assert f"/e/acme/flows/{flow.pk}/triggers/new/event" in page


def test_an_editor_adds_a_segment_trigger_from_the_flows_triggers_tab(login, editor, flow, vip):
    vip.member_count = 3
    vip.save()
    client = login(editor)
    form = client.get(f"/e/acme/flows/{flow.pk}/triggers/new/segment").content.decode()
    assert "VIP customers (3 members)" in form

    response = client.post(
        f"/e/acme/flows/{flow.pk}/triggers/new/segment",
        {"segment": vip.pk, "on": "entered", "reentry": "once", "mode": "test", "name": "New VIPs"},
    )

    trigger = Trigger.objects.get(type="segment")
    assert response.status_code == 302
    assert response["Location"] == f"/e/acme/triggers/{trigger.pk}/"
    assert (trigger.name, trigger.mode, trigger.segment_config["reentry"]) == ("New VIPs", "test", "once")
    page = client.get(response["Location"]).content.decode()
    assert "when a customer enters" in page
    assert "once per customer, ever" in page


def test_the_segment_form_says_what_is_missing(login, editor, flow, vip):
    response = login(editor).post(f"/e/acme/flows/{flow.pk}/triggers/new/segment", {"on": "entered"})

    assert response.status_code == 400
    assert not Trigger.objects.filter(type="segment").exists()


def test_the_trigger_page_saves_settings_and_switches_mode(login, editor, flow, vip, env_a):
    other = make_segment(env_a, "Churn risk")
    trigger = segment_trigger(flow, vip, mode="test")
    client = login(editor)

    saved = client.post(
        f"/e/acme/triggers/{trigger.pk}/", {"op": "config", "segment": other.pk, "on": "exited", "reentry": "always"}
    )
    assert saved.status_code == 302
    client.post(f"/e/acme/triggers/{trigger.pk}/mode", {"mode": "disabled"})

    trigger.refresh_from_db()
    assert (trigger.segment_config["segmentId"], trigger.segment_config["on"], trigger.mode) == (
        other.pk,
        "exited",
        "disabled",
    )
    assert client.post(f"/e/acme/triggers/{trigger.pk}/delete").status_code == 302
    assert not Trigger.objects.filter(pk=trigger.pk).exists()


def test_a_viewer_sees_the_page_but_cannot_add(login, viewer, flow, vip):
    trigger = segment_trigger(flow, vip)
    client = login(viewer)

    assert client.get(f"/e/acme/triggers/{trigger.pk}/").status_code == 200
    assert client.get(f"/e/acme/flows/{flow.pk}/triggers/new/segment").status_code == 403


def test_an_outsider_gets_no_trigger_page(login, outsider, flow, vip):
    trigger = segment_trigger(flow, vip)

    assert login(outsider).get(f"/e/acme/triggers/{trigger.pk}/").status_code == 404
    assert login(outsider).get(f"/e/acme/flows/{flow.pk}/triggers/new/segment").status_code == 404


def test_the_publish_page_offers_to_start_the_members_and_says_how_many_started(
    login, editor, flow, vip, django_capture_on_commit_callbacks
):
    members(vip, "u-1", "u-2", "u-3")
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")
    client = login(editor)

    page = client.get(f"/e/acme/flows/{flow.pk}/publish").content.decode()
    assert "3 customers are already in <strong>VIP customers</strong>." in page
    assert 'name="trigger_existing_segment_members"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/e/acme/flows/{flow.pk}/publish", {"trigger_existing_segment_members": "on"}, follow=True
        )

    assert "Version 2 published." in response.content.decode()
    assert "Started it for 3 customers already in the segment." in response.content.decode()
    assert len(invocations(flow)) == 3


def test_publishing_without_the_box_starts_nobody(login, editor, flow, vip):
    members(vip, "u-1")
    segment_trigger(flow, vip)
    edit_draft(flow, "v2")

    login(editor).post(f"/e/acme/flows/{flow.pk}/publish")

    assert invocations(flow) == []


def test_a_flow_without_segment_triggers_has_no_members_box(login, editor, flow):
    edit_draft(flow, "v2")

    assert (
        "trigger_existing_segment_members" not in login(editor).get(f"/e/acme/flows/{flow.pk}/publish").content.decode()
    )


def test_a_segment_a_trigger_starts_from_cannot_be_deleted(workbench_a, flow, vip):
    segment_trigger(flow, vip, name="Entered VIP")

    response = workbench_a.delete(f"/api/v1/acme/segments/{vip.pk}")

    assert response.status_code == 409
    assert response.json()["code"] == "segment_in_use"
    assert "trigger 'Entered VIP' of flow" in response.json()["detail"]
    assert Segment.objects.filter(pk=vip.pk).exists()
