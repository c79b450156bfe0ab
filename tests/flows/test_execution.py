"""Execution at the service level: fan-out, runs, waits, failures, analytics, the sweep.

Time is moved by patching `django.utils.timezone.now` or by passing `now=` to the sweep;
nothing sleeps. Starts here are accepted through the service without running the fan-out
that would follow the commit, so each test drives the next step itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from customers.models import Customer
from flows import services, tasks
from flows.models import AnalyticsEvent, Card, Flow, FlowRun, Invocation, InvocationStatus, Mode, RunStatus
from segments import services as segment_services
from segments.models import CustomerMark
from tests.factories import CustomerFactory, TestUserFactory
from tests.flows.conftest import accept_start

pytestmark = pytest.mark.django_db

HOUR = 3600
WAIT_THEN_CARD = [
    {"type": "send_card", "card": {"title": "Before the wait"}},
    {"type": "wait", "seconds": HOUR},
    {"type": "send_card", "card": {"title": "After the wait"}},
]


def accept(flow: Flow, targets: list[str], mode: str = Mode.LIVE, **start: Any) -> Invocation:
    """Accept a start as the API does, leaving the fan-out to the test."""
    result = accept_start(flow=flow, mode=mode, body={"targetUserIds": targets, **start}, source="api")
    return Invocation.objects.get(pk=result.outcomes[0].invocation_id)


def run_all(invocation: Invocation) -> None:
    for chunk in services.invocations_fan_out(invocation_ids=[invocation.pk]):
        services.runs_execute(run_ids=chunk)


def event_names(**filters: Any) -> list[str]:
    return list(AnalyticsEvent.objects.filter(**filters).order_by("pk").values_list("name", flat=True))


@pytest.fixture
def frozen_now():
    """`frozen_now(moment)`: a context in which timezone.now() answers `moment`."""

    def freeze(moment: datetime):
        return mock.patch("django.utils.timezone.now", return_value=moment)

    return freeze


# --- fan-out and execution are idempotent -------------------------------------------------


def test_fan_out_creates_exactly_one_run_per_target_even_when_called_twice(flow):
    invocation = accept(flow, ["u1", "u2", "u3"])

    first = services.invocations_fan_out(invocation_ids=[invocation.pk])
    second = services.invocations_fan_out(invocation_ids=[invocation.pk])

    runs = FlowRun.objects.filter(invocation=invocation)
    assert sorted(runs.values_list("user_id", flat=True)) == ["u1", "u2", "u3"]
    assert first == second == [sorted(runs.values_list("pk", flat=True))]
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.RUNNING


def test_the_fan_out_records_the_acceptance_and_the_missing_profiles_once(flow, frozen_now):
    CustomerFactory(environment=flow.environment, user_id="known", name="Known Person")
    invocation = accept(flow, ["known", "brand-new"])
    assert not AnalyticsEvent.objects.exists()  # the answer waited for the invocation alone
    assert not Customer.objects.filter(user_id="brand-new").exists()

    with frozen_now(invocation.created_at + timedelta(minutes=5)):  # a worker that was down
        services.invocations_fan_out(invocation_ids=[invocation.pk])
        services.invocations_fan_out(invocation_ids=[invocation.pk])  # a redelivered message

    event = AnalyticsEvent.objects.get(name="flow-invocation-accepted")
    assert (event.flow_invocation_id, event.test) == (invocation.flow_invocation_id, False)
    assert event.occurred_at == invocation.created_at  # when it was accepted, not taken up
    assert event.properties == {"source": "api", "targetCount": 2}
    assert Customer.objects.get(user_id="brand-new").name is None
    assert Customer.objects.get(user_id="known").name == "Known Person"
    assert Customer.objects.count() == 2


def test_one_fan_out_takes_up_a_batch_of_invocations_in_one_go(flow, django_assert_max_num_queries):
    TestUserFactory(environment=flow.environment, user_id="tester")
    live = [accept(flow, [f"u{number}"]) for number in range(20)]
    test_with_target = accept(flow, ["tester", "stranger"], mode=Mode.TEST)
    test_without_target = accept(flow, ["stranger"], mode=Mode.TEST)
    ids = [invocation.pk for invocation in [*live, test_with_target, test_without_target]]

    # A fixed number of statements for the batch, not a transaction per invocation.
    with django_assert_max_num_queries(12):
        [chunk] = services.invocations_fan_out(invocation_ids=ids)

    assert sorted(FlowRun.objects.filter(pk__in=chunk).values_list("user_id", flat=True)) == sorted(
        [f"u{number}" for number in range(20)] + ["tester"]
    )
    assert AnalyticsEvent.objects.filter(name="flow-invocation-accepted").count() == 22
    assert Customer.objects.filter(user_id__startswith="u").count() == 20  # live targets only
    statuses = dict(Invocation.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses[test_without_target.pk] == InvocationStatus.COMPLETED
    assert {statuses[invocation.pk] for invocation in [*live, test_with_target]} == {InvocationStatus.RUNNING}
    assert services.invocations_fan_out(invocation_ids=ids) == [chunk]  # a redelivered message


def test_an_invocation_whose_flow_was_deleted_meanwhile_is_dropped_and_the_rest_of_the_batch_runs(flow):
    """Invocations have no foreign-key constraints: a start that commits just after its flow's
    delete has collected the flow's invocations outlives the flow; its fan-out drops it."""
    kept, orphaned = accept(flow, ["u1"]), accept(flow, ["u2"])
    Invocation.objects.filter(pk=orphaned.pk).update(flow_id=flow.pk + 1000)  # as if its flow were gone

    [chunk] = services.invocations_fan_out(invocation_ids=[kept.pk, orphaned.pk])

    assert list(FlowRun.objects.filter(pk__in=chunk).values_list("user_id", flat=True)) == ["u1"]
    assert list(Invocation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert event_names(name="flow-invocation-accepted", flow_invocation_id=orphaned.flow_invocation_id) == []
    assert services.flows_sweep(now=timezone.now() + timedelta(hours=1)).invocations == []


def test_a_profile_the_fan_out_creates_is_announced_to_segments(flow):
    segment_services.segment_create(
        environment=flow.environment,
        name="Not VIP",
        rules={"match": "all", "conditions": [{"tag": "vip", "op": "hasNot"}]},
    )
    CustomerFactory(environment=flow.environment, user_id="known")
    CustomerMark.objects.all().delete()
    invocation = accept(flow, ["known", "brand-new"])

    services.invocations_fan_out(invocation_ids=[invocation.pk])

    assert list(CustomerMark.objects.values_list("user_id", flat=True)) == ["brand-new"]  # not the known one


def test_fan_out_after_the_runs_executed_sends_nothing_again(flow):
    invocation = accept(flow, ["u1"])
    run_all(invocation)

    assert services.invocations_fan_out(invocation_ids=[invocation.pk]) == []
    assert FlowRun.objects.filter(invocation=invocation).count() == 1


def test_executing_the_same_runs_twice_publishes_each_card_once(flow):
    invocation = accept(flow, ["u1", "u2"])
    [chunk] = services.invocations_fan_out(invocation_ids=[invocation.pk])

    services.runs_execute(run_ids=chunk)
    services.runs_execute(run_ids=chunk)

    assert sorted(Card.objects.values_list("user_id", flat=True)) == ["u1", "u2"]
    assert event_names(name="card-published").count("card-published") == 2
    assert set(FlowRun.objects.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.COMPLETED


def test_a_start_with_no_test_user_among_its_targets_completes_at_once(flow):
    invocation = accept(flow, ["stranger"], mode=Mode.TEST)

    assert services.invocations_fan_out(invocation_ids=[invocation.pk]) == []

    invocation.refresh_from_db()
    assert (invocation.status, invocation.ignored_user_ids) == (InvocationStatus.COMPLETED, ["stranger"])
    assert not FlowRun.objects.exists()


# --- waits --------------------------------------------------------------------------------


@pytest.fixture
def waiting_flow(make_flow) -> Flow:
    return make_flow(name="Wait an hour", variables=[], steps=WAIT_THEN_CARD)


def test_a_wait_step_leaves_the_run_waiting_until_its_resume_time(waiting_flow, frozen_now):
    started_at = timezone.now()
    invocation = accept(waiting_flow, ["u1"])

    with frozen_now(started_at):
        run_all(invocation)

    run = FlowRun.objects.get()
    assert (run.status, run.step_index, run.resume_at) == (RunStatus.WAITING, 2, started_at + timedelta(seconds=HOUR))
    assert list(Card.objects.values_list("title", flat=True)) == ["Before the wait"]
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.RUNNING


def test_the_sweep_leaves_a_wait_alone_before_its_time_and_resumes_it_after(waiting_flow, frozen_now):
    started_at = timezone.now()
    invocation = accept(waiting_flow, ["u1"])
    with frozen_now(started_at):
        run_all(invocation)

    with frozen_now(started_at + timedelta(seconds=HOUR - 1)):
        tasks.sweep()
    assert FlowRun.objects.get().status == RunStatus.WAITING
    assert Card.objects.count() == 1

    with frozen_now(started_at + timedelta(seconds=HOUR + 1)):
        tasks.sweep()

    run = FlowRun.objects.get()
    assert (run.status, run.resume_at) == (RunStatus.COMPLETED, None)
    assert list(Card.objects.order_by("step_index").values_list("title", flat=True)) == [
        "Before the wait",
        "After the wait",
    ]
    assert event_names(user_id="u1") == ["flow-run-started", "card-published", "card-published", "flow-run-completed"]
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.COMPLETED


def test_a_due_wait_resumes_when_its_run_is_executed_again(waiting_flow):
    invocation = accept(waiting_flow, ["u1"])
    run_all(invocation)
    run = FlowRun.objects.get()
    assert services.runs_execute(run_ids=[run.pk]) == []  # not due yet: nothing happens
    FlowRun.objects.filter(pk=run.pk).update(resume_at=timezone.now() - timedelta(seconds=1))

    services.runs_execute(run_ids=[run.pk])

    assert FlowRun.objects.get().status == RunStatus.COMPLETED
    assert Card.objects.count() == 2


def test_the_sweep_given_a_later_now_queues_the_due_waits(waiting_flow):
    invocation = accept(waiting_flow, ["u1", "u2"])
    run_all(invocation)

    result = services.flows_sweep(now=timezone.now() + timedelta(seconds=HOUR + 1))

    run_ids = sorted(FlowRun.objects.values_list("pk", flat=True))
    assert result.run_chunks == [run_ids]
    assert set(FlowRun.objects.values_list("status", flat=True)) == {RunStatus.QUEUED}
    services.runs_execute(run_ids=run_ids)
    assert Card.objects.filter(title="After the wait").count() == 2


def test_runs_execute_reports_the_waits_it_left(waiting_flow):
    invocation = accept(waiting_flow, ["u1"])
    [chunk] = services.invocations_fan_out(invocation_ids=[invocation.pk])

    waits = services.runs_execute(run_ids=chunk)

    [(run_id, delay)] = waits
    assert run_id == chunk[0]
    assert HOUR - 5 < delay <= HOUR


# --- failures -----------------------------------------------------------------------------


def test_a_failing_run_records_why_and_the_others_complete(flow):
    invocation = accept(flow, ["u1", "broken", "u3"])
    real_card_for = services._card_for

    def card_for(run: FlowRun, *args: Any) -> Card:
        if run.user_id == "broken":
            raise RuntimeError("the card could not be rendered")
        return real_card_for(run, *args)

    with mock.patch.object(services, "_card_for", card_for):
        run_all(invocation)

    runs = {run.user_id: run for run in FlowRun.objects.all()}
    assert runs["broken"].status == RunStatus.FAILED
    assert "the card could not be rendered" in runs["broken"].error
    assert runs["broken"].finished_at is not None
    assert (runs["u1"].status, runs["u3"].status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert sorted(Card.objects.values_list("user_id", flat=True)) == ["u1", "u3"]
    failed = AnalyticsEvent.objects.get(name="flow-run-failed")
    assert failed.user_id == "broken"
    assert "the card could not be rendered" in failed.properties["error"]
    assert event_names(name="flow-run-completed") == ["flow-run-completed"] * 2
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.COMPLETED


def test_a_failed_run_shows_its_error_in_the_invocation(events_a, flow, start_flow):
    with mock.patch.object(services, "_card_for", side_effect=RuntimeError("no renderer")):
        start_flow(events_a, flow, {"targetUserIds": ["u1"], "flowInvocationId": "k"})

    [invocation] = events_a.get("/api/v1/acme/invocations/k").json()["data"]

    [run] = invocation["runs"]
    assert (run["userId"], run["status"]) == ("u1", "failed")
    assert "no renderer" in run["error"]


# --- analytics ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "test"), [(Mode.LIVE, False), (Mode.TEST, True)])
def test_a_start_records_its_analytics_events_with_the_test_flag(flow, test_user, mode, test):
    invocation = accept(flow, ["tester-1"], mode=mode, flowInvocationId="k1")

    run_all(invocation)

    events = list(AnalyticsEvent.objects.order_by("pk"))
    assert [(event.name, event.user_id) for event in events] == [
        ("flow-invocation-accepted", ""),
        ("flow-run-started", "tester-1"),
        ("card-published", "tester-1"),
        ("flow-run-completed", "tester-1"),
    ]
    assert {(event.test, event.flow_id, event.flow_invocation_id) for event in events} == {(test, flow.pk, "k1")}
    assert events[0].properties == {"source": "api", "targetCount": 1}
    assert FlowRun.objects.get().test is test
    assert Card.objects.get().test is test


# --- test data ----------------------------------------------------------------------------


def test_deleting_test_data_removes_only_the_test_data_of_the_environment(flow, make_flow, test_user, env_b):
    other_env_flow = make_flow(name="Globex", environment=env_b)
    TestUserFactory(environment=env_b, user_id="globex-1")
    for invocation in (
        accept(flow, ["tester-1"], mode=Mode.TEST),
        accept(flow, ["tester-1", "u2"], mode=Mode.TEST),
        accept(flow, ["tester-1", "u2"], mode=Mode.LIVE),
        accept(other_env_flow, ["globex-1"], mode=Mode.TEST),
    ):
        run_all(invocation)
    assert Card.objects.filter(environment=flow.environment, test=True).count() == 2
    test_events = AnalyticsEvent.objects.filter(environment=flow.environment, test=True).count()

    deleted = services.environment_test_data_delete(environment=flow.environment)

    assert deleted == services.DeletedTestData(invocations=2, cards=2, events=test_events)
    assert list(Invocation.objects.filter(environment=flow.environment).values_list("mode", flat=True)) == ["live"]
    assert not FlowRun.objects.filter(environment=flow.environment, test=True).exists()
    assert not Card.objects.filter(environment=flow.environment, test=True).exists()
    assert Card.objects.filter(environment=flow.environment, test=False).count() == 2
    assert not AnalyticsEvent.objects.filter(environment=flow.environment, test=True).exists()
    assert AnalyticsEvent.objects.filter(environment=flow.environment, test=False).count() == 7
    assert Card.objects.filter(environment=env_b, test=True).count() == 1


# --- durability when the broker is down ---------------------------------------------------


def test_a_start_answers_202_when_the_broker_is_down_and_the_sweep_runs_it_later(
    events_a, flow, start_flow, frozen_now
):
    with mock.patch.object(tasks.fan_out_invocations, "apply_async", side_effect=ConnectionError("broker down")):
        response = start_flow(events_a, flow, {"targetUserIds": ["u1"], "flowInvocationId": "k"})

    assert response.status_code == 202
    invocation = Invocation.objects.get()
    assert invocation.status == InvocationStatus.ACCEPTED
    assert not Card.objects.exists()

    with frozen_now(invocation.created_at + timedelta(seconds=5)):
        tasks.sweep()  # too soon: the fan-out may still be on its way
    assert not FlowRun.objects.exists()

    with frozen_now(invocation.created_at + timedelta(minutes=5)):
        tasks.sweep()

    assert list(Card.objects.values_list("user_id", "title")) == [("u1", "Hello there")]
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.COMPLETED


def test_runs_that_were_never_executed_are_resent_by_the_sweep(flow, frozen_now):
    invocation = accept(flow, ["u1", "u2"])
    with mock.patch.object(tasks.execute_runs, "apply_async", side_effect=ConnectionError("broker down")):
        tasks.fan_out_invocations([invocation.pk])
    assert set(FlowRun.objects.values_list("status", flat=True)) == {RunStatus.QUEUED}

    with frozen_now(timezone.now() + timedelta(minutes=5)):
        tasks.sweep()

    assert set(FlowRun.objects.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    assert Card.objects.count() == 2


def test_runs_accepted_before_the_flow_was_archived_still_finish(flow):
    invocation = accept(flow, ["u1"])

    services.flow_archive(flow=flow)
    run_all(invocation)

    assert list(Card.objects.values_list("user_id", flat=True)) == ["u1"]
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.COMPLETED
