"""The recursion guard (SPEC section 5): flows' own analytics events can start OTHER flows'
event triggers, never the same flow; a chain of flows starting flows stops at a depth of 5,
and the 6th start is refused and recorded as `flow-run-failed` with reason `recursion_limit`."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flows import services
from flows.models import AnalyticsEvent, Flow, Invocation
from tests.flows.conftest import accept_start
from triggers import event_triggers

pytestmark = pytest.mark.django_db


def listen(flow: Flow, event_name: str, mode: str = "live") -> None:
    event_triggers.event_trigger_create(flow=flow, event_name=event_name, mode=mode)


def start(flow: Flow, captured: Any, user_id: str = "u-1", mode: str = "live") -> None:
    with captured(execute=True):
        accept_start(flow=flow, mode=mode, body={"targetUserIds": [user_id]})


def test_a_flows_completion_starts_another_flow_one_level_deeper(make_flow, django_capture_on_commit_callbacks):
    first, second = make_flow(name="First"), make_flow(name="Second")
    listen(second, "flow-run-completed")

    start(first, django_capture_on_commit_callbacks)

    followed = Invocation.objects.get(flow=second)
    assert (followed.source, followed.chain_depth, followed.target_user_ids) == ("event", 2, ["u-1"])
    assert AnalyticsEvent.objects.filter(flow=second, name="flow-run-completed", user_id="u-1").exists()


def test_a_flows_own_events_never_start_itself(make_flow, django_capture_on_commit_callbacks):
    looping = make_flow(name="Loop")
    listen(looping, "flow-run-completed")
    listen(looping, "card-published")

    start(looping, django_capture_on_commit_callbacks)

    assert Invocation.objects.filter(flow=looping).count() == 1


def test_a_chain_of_flows_runs_five_and_refuses_the_sixth(make_flow, django_capture_on_commit_callbacks):
    """Each next flow listens to the completions of the one before it (`where` flowId)."""
    chain = [make_flow(name=f"Link {n}") for n in range(1, 8)]
    for previous, following in itertools.pairwise(chain):
        event_triggers.event_trigger_create(
            flow=following,
            event_name="flow-run-completed",
            where=[{"property": "flowId", "op": "eq", "value": previous.pk}],
            mode="live",
        )

    start(chain[0], django_capture_on_commit_callbacks)

    started = {
        flow.name: list(Invocation.objects.filter(flow=flow).values_list("chain_depth", flat=True)) for flow in chain
    }
    assert started == {
        "Link 1": [1],
        "Link 2": [2],
        "Link 3": [3],
        "Link 4": [4],
        "Link 5": [5],
        "Link 6": [],
        "Link 7": [],
    }
    failed = AnalyticsEvent.objects.get(flow=chain[5], name="flow-run-failed")
    assert failed.properties["reason"] == "recursion_limit"
    assert failed.user_id == "u-1"


def test_a_test_runs_events_never_start_a_live_invocation(make_flow, test_user, django_capture_on_commit_callbacks):
    first, live_listener, test_listener = make_flow(name="First"), make_flow(name="Live"), make_flow(name="Test")
    listen(live_listener, "flow-run-completed", mode="live")
    listen(test_listener, "flow-run-completed", mode="test")

    start(first, django_capture_on_commit_callbacks, user_id="tester-1", mode="test")

    assert Invocation.objects.filter(flow=live_listener).count() == 0
    assert list(Invocation.objects.filter(flow=test_listener).values_list("mode", "chain_depth")) == [("test", 2)]


def test_a_start_deeper_than_the_limit_is_refused_by_the_pipeline(flow):
    from flows.selectors import flow_for_start

    with pytest.raises(services.FlowRefused) as refused:
        services.invocations_accept(
            flow=flow_for_start(flow=flow),
            mode="live",
            starts=services.start_requests_check({"targetUserIds": ["u-1", "u-2"]}),
            source="event",
            chain_depth=6,
        )

    assert refused.value.code == "recursion_limit"
    assert Invocation.objects.count() == 0
    assert sorted(AnalyticsEvent.objects.filter(name="flow-run-failed").values_list("user_id", flat=True)) == [
        "u-1",
        "u-2",
    ]
