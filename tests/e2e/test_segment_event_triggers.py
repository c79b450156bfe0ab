"""Segment and event triggers as a marketer adds them from the flow's Triggers tab, and publishing
a flow whose segment already has members. Screenshots go to /tmp/shots/triggers/."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from customers.hooks import SegmentTransition, segment_transitions
from customers.services import events_record
from flows.models import Invocation
from flows.services import flow_create, flow_publish, flow_update
from segments.models import Segment, SegmentMembership
from tests.factories import TestUserFactory
from triggers.models import Trigger

pytestmark = pytest.mark.browser

SHOTS = Path(tempfile.gettempdir()) / "shots" / "triggers"
CARD = {"type": "send_card", "card": {"title": "Welcome to VIP", "body": "Thanks for being with us."}}


@pytest.fixture(autouse=True)
def _shots_dir() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)


def vip_segment(environment, *members: str) -> Segment:
    segment = Segment.objects.create(
        environment=environment,
        name="VIP customers",
        rules={"match": "all", "conditions": []},
        status="ready",
        member_count=len(members),
    )
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(environment=environment, segment=segment, user_id=user_id) for user_id in members]
    )
    return segment


def test_an_editor_adds_a_segment_trigger_from_the_triggers_tab(e2e_log_in, e2e_environment, e2e_make_member):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(environment=e2e_environment, name="VIP welcome", steps=[CARD])
    segment = vip_segment(e2e_environment, "c-1", "c-2", "tester-1")
    TestUserFactory(environment=e2e_environment, user_id="tester-1")
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/")
    page.locator("#add-trigger summary").click()
    page.screenshot(path=SHOTS / "add_trigger_menu.png")
    page.locator("#add-trigger").get_by_role("link", name="Segment").click()

    expect(page.get_by_role("heading", name="New segment trigger")).to_be_visible()
    page.get_by_label("Segment", exact=True).select_option(label="VIP customers (3 members)")
    page.get_by_label("enters the segment").check()
    page.get_by_label("once, ever").check()
    expect(page.get_by_label("Live — real customers")).to_be_disabled()  # not published yet
    page.get_by_label("Name").fill("New VIPs")
    page.screenshot(path=SHOTS / "segment_new.png", full_page=True)
    page.get_by_role("button", name="Create segment trigger").click()

    trigger = Trigger.objects.get(type="segment")
    expect(page.locator("#trigger-title")).to_contain_text("New VIPs")
    expect(page.locator("#trigger-summary")).to_contain_text("when a customer enters VIP customers")
    expect(page.locator(".badge.mode-test").first).to_be_visible()
    page.screenshot(path=SHOTS / "segment_trigger_page.png", full_page=True)

    # A test user entering the segment starts a test of the draft; it shows under Recent starts.
    segment_transitions.announce(
        transitions=[
            SegmentTransition(
                environment_id=e2e_environment.pk,
                segment_id=segment.pk,
                segment_name=segment.name,
                user_id="tester-1",
                entered=True,
                sequence=2,
                at=trigger.created_at,
            )
        ]
    )
    page.reload()
    expect(page.locator("#recent-starts tbody tr")).to_have_count(1)
    expect(page.locator("#recent-starts")).to_contain_text("tester-1")

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/")
    row = page.locator(f"#trigger-{trigger.pk}")
    expect(row).to_contain_text("New VIPs")
    expect(row).to_contain_text("once per customer")
    page.screenshot(path=SHOTS / "triggers_tab.png", full_page=True)


def test_publishing_offers_to_start_the_members_already_in_the_segment(e2e_log_in, e2e_environment, e2e_make_member):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(environment=e2e_environment, name="VIP welcome", steps=[CARD])
    flow_publish(flow=flow)
    segment = vip_segment(e2e_environment, "c-1", "c-2")
    from triggers.segment_triggers import segment_trigger_create

    segment_trigger_create(flow=flow, segment_id=segment.pk, mode="live")
    flow_update(flow=flow, steps=[{**CARD, "card": {**CARD["card"], "title": "Welcome, VIP"}}])
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/")
    page.get_by_role("link", name="Publish…").first.click()
    dialog = page.locator("#existing-members")
    expect(dialog).to_contain_text("2 customers are already in VIP customers.")
    page.get_by_label("Also start them now").check()
    page.screenshot(path=SHOTS / "publish_with_members.png", full_page=True)
    page.get_by_role("button", name="Publish version 2").click()

    expect(page.locator(".messages")).to_contain_text("Started it for 2 customers already in the segment.")
    page.screenshot(path=SHOTS / "published_members_started.png", full_page=True)
    assert Invocation.objects.filter(flow=flow, mode="live").count() == 2


def test_an_event_trigger_maps_the_newest_event(e2e_log_in, e2e_environment, e2e_make_member):
    editor = e2e_make_member("edward", {e2e_environment: "editor"})
    flow = flow_create(
        environment=e2e_environment,
        name="Upgrade thanks",
        variables=[{"name": "plan", "default": "free", "required": False}],
        steps=[{"type": "send_card", "card": {"title": "Enjoy {{plan}}", "body": ""}}],
    )
    TestUserFactory(environment=e2e_environment, user_id="tester-1")
    page = e2e_log_in(editor)

    page.goto(f"/e/acme/flows/{flow.pk}/triggers/new/event")
    page.get_by_label("Event name").fill("upgraded")
    page.get_by_role("button", name="Create event trigger").click()
    expect(page.locator("#no-event-sample")).to_contain_text("No upgraded event has been received yet.")
    page.screenshot(path=SHOTS / "event_trigger_empty.png", full_page=True)

    events_record(
        environment=e2e_environment,
        events=[{"userId": "tester-1", "name": "upgraded", "properties": {"plan": "pro"}, "messageId": "m-1"}],
    )
    page.reload()
    expect(page.locator("#event-sample")).to_contain_text('"plan": "pro"')
    expect(page.locator("#mapping-preview")).to_contain_text("A valid start request.")
    expect(page.locator("#preview-output")).to_contain_text("evt-m-1")
    page.get_by_role("button", name="Send test card").click()
    expect(page.locator("#send-test-result")).to_contain_text("Test started.")
    page.screenshot(path=SHOTS / "event_trigger_page.png", full_page=True)
