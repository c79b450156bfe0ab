"""GET analytics-events (SPEC section 3): flows' analytics events and custom events, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from customers.models import Event
from customers.services import events_record
from flows.models import AnalyticsEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/acme/analytics-events"
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def flow_event(environment, *, at, name="card-published", user_id="u1", flow=None, key="inv-1", test=False, **props):
    return AnalyticsEvent.objects.create(
        environment=environment,
        name=name,
        user_id=user_id,
        flow=flow,
        flow_invocation_id=key,
        test=test,
        properties=props,
        occurred_at=at,
    )


def custom_event(environment, *, at, name="purchase", user_id="u1", source_flow_id=None, **props) -> Event:
    events_record(
        environment=environment,
        events=[{"userId": user_id, "name": name, "properties": props, "timestamp": at.isoformat()}],
        source_flow_id=source_flow_id,
    )
    return Event.objects.filter(environment=environment).latest("id")


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.fixture
def mixed(env_a, env_b, flow):
    """Two flow events and two custom events of A at distinct times, and one of B."""
    return {
        "old_flow": flow_event(env_a, at=T0, flow=flow, name="flow-run-started"),
        "custom": custom_event(env_a, at=T0 + timedelta(minutes=1), plan="pro"),
        "test_flow": flow_event(env_a, at=T0 + timedelta(minutes=2), flow=flow, key="inv-2", test=True, user_id="u2"),
        "caused": custom_event(env_a, at=T0 + timedelta(minutes=3), name="upgraded", source_flow_id=flow.pk),
        "other_env": flow_event(env_b, at=T0 + timedelta(minutes=4)),
    }


def test_both_kinds_are_listed_newest_first_in_one_shape(workbench_a, mixed, flow):
    response = workbench_a.get(URL)

    assert ids(response) == [
        f"c{mixed['caused'].pk}",
        f"f{mixed['test_flow'].pk}",
        f"c{mixed['custom'].pk}",
        f"f{mixed['old_flow'].pk}",
    ]
    body = response.json()
    assert body["next"] is None
    custom, flow_item = body["results"][2], body["results"][3]
    assert custom == {
        "id": f"c{mixed['custom'].pk}",
        "name": "purchase",
        "userId": "u1",
        "flowId": None,
        "flowInvocationId": "",
        "test": False,
        "properties": {"plan": "pro"},
        "occurredAt": "2026-05-01T12:01:00Z",
    }
    assert flow_item["flowId"] == flow.pk
    assert flow_item["flowInvocationId"] == "inv-1"
    assert body["results"][0]["flowId"] == flow.pk  # a custom event caused by a flow's run


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "purchase"}, ["custom"]),
        ({"name": "flow-run-started"}, ["old_flow"]),
        ({"userId": "u2"}, ["test_flow"]),
        ({"flowId": "FLOW"}, ["caused", "test_flow", "old_flow"]),
        ({"flowInvocationId": "inv-2"}, ["test_flow"]),
        ({"test": "true"}, ["test_flow"]),
        ({"test": "false"}, ["caused", "custom", "old_flow"]),
        ({"since": "2026-05-01T12:01:00Z"}, ["caused", "test_flow", "custom"]),
        ({"since": "2026-05-01T14:01:30+02:00"}, ["caused", "test_flow"]),
        ({"name": "nothing-of-that-name"}, []),
    ],
)
def test_filters(workbench_a, mixed, flow, query, expected):
    query = {key: str(flow.pk) if value == "FLOW" else value for key, value in query.items()}

    response = workbench_a.get(URL, query)

    want = [f"{'c' if isinstance(mixed[key], Event) else 'f'}{mixed[key].pk}" for key in expected]
    assert ids(response) == want


def test_pages_follow_the_next_link_without_gaps_or_repeats_across_equal_times(workbench_a, env_a, flow):
    # Several events of both kinds at the very same instant, and more around it.
    for minute in (0, 1, 1, 1, 2):
        flow_event(env_a, at=T0 + timedelta(minutes=minute), flow=flow)
        custom_event(env_a, at=T0 + timedelta(minutes=minute))
    everything = ids(workbench_a.get(URL))
    assert len(everything) == 10

    seen: list[str] = []
    response = workbench_a.get(URL, {"pageSize": 3})
    pages = 0
    while True:
        seen += ids(response)
        pages += 1
        next_url = response.json()["next"]
        if next_url is None:
            break
        assert "pageSize=3" in next_url
        response = workbench_a.get(next_url)

    assert seen == everything
    assert pages == 4


def test_a_page_does_not_shift_when_newer_events_arrive(workbench_a, env_a):
    for minute in range(4):
        custom_event(env_a, at=T0 + timedelta(minutes=minute), name=f"e{minute}")
    first = workbench_a.get(URL, {"pageSize": 2})

    custom_event(env_a, at=T0 + timedelta(hours=1), name="newer")
    second = workbench_a.get(first.json()["next"])

    assert [item["name"] for item in second.json()["results"]] == ["e1", "e0"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"test": "yes"}, "test"),
        ({"flowId": "abc"}, "flowId"),
        ({"flowId": "0"}, "flowId"),
        ({"since": "last week"}, "since"),
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "1001"}, "pageSize"),
    ],
)
def test_a_bad_filter_is_refused_with_400(workbench_a, query, field):
    response = workbench_a.get(URL, query)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert field in body["errors"]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WyJ4IiwiZiIsMV0"])  # the latter: ["x","f",1]
def test_an_invalid_cursor_is_a_page_that_is_not_there(workbench_a, cursor):
    response = workbench_a.get(URL, {"cursor": cursor})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_another_environments_credential_gets_404(session_with, mixed):
    response = session_with("outsider", "workbench").get(URL)

    assert response.status_code == 404


def test_the_events_role_is_refused_with_403(events_a, mixed):
    assert events_a.get(URL).status_code == 403


def test_a_page_takes_a_fixed_number_of_queries(workbench_a, mixed, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        response = workbench_a.get(URL)

    assert len(ids(response)) == 4
