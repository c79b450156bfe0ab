"""Full evaluation of a segment: the ledger follows the rules, and every real change of
membership emits exactly one segment-entered or segment-exited event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from customers.models import Customer
from flows.models import AnalyticsEvent
from segments import ledger, services
from segments.models import Segment, SegmentMembership, SegmentSize, SegmentStatus
from segments.services import Outcome
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def country_is(*countries: str) -> dict[str, Any]:
    return {"match": "all", "conditions": [{"field": "country", "op": "in", "value": list(countries)}]}


def members(segment: Segment) -> list[str]:
    return sorted(SegmentMembership.objects.filter(segment=segment, is_member=True).values_list("user_id", flat=True))


def events(segment: Segment) -> list[tuple[str, str]]:
    """(name, userId) of the segment's analytics events, oldest first."""
    return [
        (event.name, event.user_id)
        for event in AnalyticsEvent.objects.order_by("pk")
        if event.properties.get("segmentId") == segment.pk
    ]


@pytest.fixture
def customers(env_a):
    made = {}
    for user_id, country in [("ana", "DE"), ("ben", "DE"), ("cem", "FR"), ("dora", "IT"), ("eli", None)]:
        made[user_id] = CustomerFactory(environment=env_a, user_id=user_id, country=country)
    return made


@pytest.fixture
def create(env_a, django_capture_on_commit_callbacks):
    """Create a segment and run what its commit sends (the evaluation), as a worker would."""

    def make(rules: dict[str, Any], name: str = "Germans") -> Segment:
        with django_capture_on_commit_callbacks(execute=True):
            segment = services.segment_create(environment=env_a, name=name, rules=rules)
        segment.refresh_from_db()
        return segment

    return make


@pytest.fixture
def update(django_capture_on_commit_callbacks):
    def change(segment: Segment, **changes: Any) -> Segment:
        with django_capture_on_commit_callbacks(execute=True):
            services.segment_update(segment=segment, **changes)
        segment.refresh_from_db()
        return segment

    return change


def test_a_new_segment_is_computed_and_each_member_enters_once(customers, create) -> None:
    segment = create(country_is("DE"))

    assert segment.status == SegmentStatus.READY
    assert segment.member_count == 2
    assert segment.last_computed_at is not None
    assert members(segment) == ["ana", "ben"]
    assert sorted(events(segment)) == [("segment-entered", "ana"), ("segment-entered", "ben")]
    event = AnalyticsEvent.objects.filter(name="segment-entered", user_id="ana").get()
    assert event.properties == {"segmentId": segment.pk, "segmentName": "Germans"}
    assert event.test is False
    assert list(SegmentSize.objects.filter(segment=segment).values_list("member_count", flat=True)) == [2]


def test_a_segment_is_computing_until_its_evaluation_runs(env_a, customers) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))

    assert segment.status == SegmentStatus.COMPUTING
    assert members(segment) == []


def test_an_edit_exits_who_no_longer_matches_enters_new_matches_and_leaves_the_rest_alone(
    customers, create, update
) -> None:
    segment = create(country_is("DE", "FR"))
    assert members(segment) == ["ana", "ben", "cem"]

    segment = update(segment, rules=country_is("DE", "IT"))

    assert members(segment) == ["ana", "ben", "dora"]
    assert segment.member_count == 3
    assert segment.rules_version == 2
    assert segment.status == SegmentStatus.READY
    after_edit = events(segment)[3:]
    assert sorted(after_edit) == [("segment-entered", "dora"), ("segment-exited", "cem")]
    exited = SegmentMembership.objects.get(segment=segment, user_id="cem")
    assert (exited.is_member, exited.sequence, exited.exited_at is not None) == (False, 2, True)


def test_a_customer_who_leaves_and_comes_back_enters_again(customers, create, update) -> None:
    segment = create(country_is("FR"))
    update(segment, rules=country_is("DE"))
    update(segment, rules=country_is("FR"))

    assert [name for name, user in events(segment) if user == "cem"] == [
        "segment-entered",
        "segment-exited",
        "segment-entered",
    ]
    assert SegmentMembership.objects.get(segment=segment, user_id="cem").sequence == 3


def test_renaming_a_segment_does_not_evaluate_it_again(customers, create, update) -> None:
    segment = create(country_is("DE"))

    segment = update(segment, name="Deutschland")

    assert segment.rules_version == 1
    assert segment.status == SegmentStatus.READY
    assert len(events(segment)) == 2


def test_a_redelivered_evaluation_changes_nothing(customers, create) -> None:
    segment = create(country_is("DE"))

    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.BUSY
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.COMPUTING)
    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.READY

    assert len(events(segment)) == 2
    assert members(segment) == ["ana", "ben"]


def test_evaluation_goes_through_the_diff_in_batches(customers, create, settings) -> None:
    settings.SEGMENT_EVALUATION_BATCH = 2
    for number in range(7):
        CustomerFactory(environment=customers["ana"].environment, user_id=f"z-{number}", country="DE")

    segment = create(country_is("DE"))

    assert segment.member_count == 9
    assert len(events(segment)) == 9


def test_a_failing_segment_shows_its_error_and_the_others_still_compute(customers, create, monkeypatch) -> None:
    real = ledger.compiler.matching_sql

    def broken_for_france(rules: dict[str, Any], **kwargs: Any) -> tuple[str, list[Any]]:
        if rules["conditions"][0]["value"] == ["FR"]:
            raise RuntimeError("no such column: boom")
        return real(rules, **kwargs)

    monkeypatch.setattr(ledger.compiler, "matching_sql", broken_for_france)

    broken = create(country_is("FR"), name="French")
    working = create(country_is("DE"))

    assert broken.status == SegmentStatus.FAILED
    assert "boom" in broken.last_error
    assert broken.lease_token == ""
    assert working.status == SegmentStatus.READY
    assert members(working) == ["ana", "ben"]


def test_a_lease_held_by_a_live_worker_is_respected_and_one_that_ran_out_is_taken_over(env_a, customers) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))
    Segment.objects.filter(pk=segment.pk).update(
        lease_token="other-worker", lease_until=timezone.now() + timedelta(seconds=30)
    )

    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.BUSY
    assert members(segment) == []

    Segment.objects.filter(pk=segment.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.READY

    segment.refresh_from_db()
    assert (segment.status, segment.lease_token) == (SegmentStatus.READY, "")
    assert members(segment) == ["ana", "ben"]


def test_a_worker_whose_lease_was_taken_over_stops_without_marking_the_segment(env_a, customers, monkeypatch) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))
    real = ledger.diff_prepare

    def taken_over_meanwhile(**kwargs: Any) -> int:
        result = real(**kwargs)
        Segment.objects.filter(pk=segment.pk).update(lease_token="new-holder")
        return result

    monkeypatch.setattr(ledger, "diff_prepare", taken_over_meanwhile)

    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.LOST
    segment.refresh_from_db()
    assert (segment.status, segment.lease_token) == (SegmentStatus.COMPUTING, "new-holder")
    assert members(segment) == []


def test_an_evaluation_of_rules_edited_meanwhile_does_not_mark_the_segment_ready(env_a, customers, monkeypatch) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))
    real = ledger.diff_prepare
    edits = []

    def edited_meanwhile(**kwargs: Any) -> int:
        result = real(**kwargs)
        if not edits:
            edits.append(services.segment_update(segment=segment, rules=country_is("IT")))
        return result

    monkeypatch.setattr(ledger, "diff_prepare", edited_meanwhile)

    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.READY

    segment.refresh_from_db()
    assert (segment.status, segment.rules_version, segment.member_count) == (SegmentStatus.READY, 2, 1)
    assert members(segment) == ["dora"]
    assert events(segment) == [("segment-entered", "dora")]


def test_the_sweep_sends_again_an_evaluation_nobody_took(env_a, customers, settings) -> None:
    settings.SWEEP_STALE_SECONDS = 1
    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))
    Segment.objects.filter(pk=segment.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    leased = services.segment_create(environment=env_a, name="Leased", rules=country_is("FR"))
    Segment.objects.filter(pk=leased.pk).update(
        updated_at=timezone.now() - timedelta(seconds=5),
        lease_token="alive",
        lease_until=timezone.now() + timedelta(seconds=30),
    )

    assert services.segments_sweep().segment_ids == [segment.pk]

    from segments.tasks import sweep

    sweep()
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.READY
    assert members(segment) == ["ana", "ben"]


def test_an_evaluation_out_of_time_stays_computing_for_the_next_run(env_a, customers, monkeypatch) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    segment = services.segment_create(environment=env_a, name="Germans", rules=country_is("DE"))

    def out_of_time(**kwargs: Any) -> int:
        raise SoftTimeLimitExceeded()

    with monkeypatch.context() as patched:
        patched.setattr(ledger, "diff_prepare", out_of_time)
        assert services.segment_evaluate(segment_id=segment.pk) == Outcome.PAUSED
    segment.refresh_from_db()
    assert (segment.status, segment.lease_token, segment.lease_until) == (SegmentStatus.COMPUTING, "", None)

    assert services.segment_evaluate(segment_id=segment.pk) == Outcome.READY
    assert members(segment) == ["ana", "ben"]


# --- edits that can only narrow or only widen the rules ------------------------------------


def edited(segment: Segment, rules: dict[str, Any]) -> tuple[Segment, services.PreviousRules]:
    """Save new rules without running their evaluation yet; what the ledger was ready with."""
    previous = segment.rules
    segment = services.segment_update(segment=segment, rules=rules)
    return segment, services.PreviousRules(rules=previous, version=segment.rules_version)


@pytest.fixture
def full_diffs(monkeypatch) -> list[int]:
    """Counts the full computations (ledger.diff_prepare) that evaluations run."""
    real, calls = ledger.diff_prepare, []

    def counted(**kwargs: Any) -> int:
        calls.append(kwargs["segment"].id)
        return real(**kwargs)

    monkeypatch.setattr(ledger, "diff_prepare", counted)
    return calls


def germans_with(*conditions: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": match, "conditions": [{"field": "country", "op": "eq", "value": "DE"}, *conditions]}


def test_an_added_condition_under_all_only_narrows_and_an_added_alternative_under_any_only_widens() -> None:
    city = {"field": "city", "op": "eq", "value": "Berlin"}
    narrowed = services.edit_plan(germans_with(), germans_with(city))
    widened = services.edit_plan(germans_with(match="any"), germans_with(city, match="any"))

    assert narrowed == services.EditPlan(services.Direction.NARROWER)
    assert widened == services.EditPlan(services.Direction.WIDER, {"match": "any", "conditions": [city]})


def test_a_grown_or_shrunk_value_set_moves_the_rules_one_way_and_entrants_hold_a_new_value() -> None:
    plans = {"field": "customFields.plan", "op": "in", "value": ["pro"]}
    more = {**plans, "value": ["pro", "starter"]}
    excluded = {"tags": ["churned", "test"], "op": "hasNone"}

    assert services.edit_plan(germans_with(plans), germans_with(more)) == services.EditPlan(
        services.Direction.WIDER, {"match": "any", "conditions": [{**more, "value": ["starter"]}]}
    )
    assert services.edit_plan(germans_with(more), germans_with(plans)).direction == services.Direction.NARROWER
    assert services.edit_plan(germans_with(excluded), germans_with({**excluded, "tags": ["test"]})) == (
        services.EditPlan(
            services.Direction.WIDER, {"match": "any", "conditions": [{"tags": ["churned"], "op": "hasAny"}]}
        )
    )


@pytest.mark.parametrize(
    "new",
    [
        pytest.param({"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "FR"}]}, id="changed"),
        pytest.param({"match": "all", "conditions": []}, id="removed"),
        pytest.param({"match": "any", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}, id="match"),
        pytest.param({"match": "all", "conditions": [{"field": "country", "op": "in", "value": ["DE"]}]}, id="op"),
    ],
)
def test_any_other_edit_has_no_plan(new: dict[str, Any]) -> None:
    assert services.edit_plan(germans_with(), new) is None


def test_a_value_set_in_another_order_is_no_change() -> None:
    old = germans_with({"field": "city", "op": "in", "value": ["Berlin", "Bonn"]}, {"tags": ["a"], "op": "hasAny"})
    new = germans_with({"field": "city", "op": "in", "value": ["Bonn", "Berlin"]}, {"tags": ["a", "b"], "op": "hasAny"})

    assert services.edit_plan(old, new) == services.EditPlan(
        services.Direction.WIDER, {"match": "any", "conditions": [{"tags": ["b"], "op": "hasAny"}]}
    )


def test_mixed_directions_have_no_plan() -> None:
    old = germans_with({"field": "city", "op": "in", "value": ["Berlin"]}, {"tags": ["a"], "op": "hasAny"})
    new = germans_with({"field": "city", "op": "in", "value": ["Berlin", "Bonn"]}, {"tags": [], "op": "hasAny"})

    assert services.edit_plan(old, new) is None


def test_a_narrowing_edit_looks_only_at_the_members_and_exits_who_no_longer_match(
    customers, create, full_diffs
) -> None:
    segment = create(country_is("DE", "FR"))
    Customer = type(customers["ana"])
    Customer.objects.filter(pk=customers["ana"].pk).update(city="Berlin")
    before = segment.time_checked_at
    full_diffs.clear()

    in_berlin = {"field": "city", "op": "eq", "value": "Berlin"}
    rules = country_is("DE", "FR")
    segment, previous = edited(segment, {**rules, "conditions": [*rules["conditions"], in_berlin]})
    assert services.segment_evaluate(segment_id=segment.pk, previous=previous) == Outcome.READY

    segment.refresh_from_db()
    assert full_diffs == []
    assert members(segment) == ["ana"]
    assert (segment.status, segment.member_count) == (SegmentStatus.READY, 1)
    assert sorted(events(segment)[3:]) == [("segment-exited", "ben"), ("segment-exited", "cem")]
    # Customers left out were not looked at: time-relative re-checks still start where they did.
    assert segment.time_checked_at == before


def test_a_widening_edit_looks_only_at_possible_entrants_and_enters_who_matches_now(
    customers, create, full_diffs
) -> None:
    segment = create(country_is("DE"))
    full_diffs.clear()

    segment, previous = edited(segment, country_is("DE", "IT"))
    assert services.segment_evaluate(segment_id=segment.pk, previous=previous) == Outcome.READY

    segment.refresh_from_db()
    assert full_diffs == []
    assert members(segment) == ["ana", "ben", "dora"]
    assert segment.member_count == 3
    assert events(segment)[2:] == [("segment-entered", "dora")]
    # A second run (a redelivered message) finds nothing to flip.
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.COMPUTING)
    assert services.segment_evaluate(segment_id=segment.pk, previous=previous) == Outcome.READY
    assert len(events(segment)) == 3


def test_other_edits_and_stale_or_missing_previous_rules_fall_back_to_the_full_computation(
    customers, create, full_diffs
) -> None:
    segment = create(country_is("DE"))
    full_diffs.clear()

    segment, previous = edited(
        segment, {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "FR"}]}
    )
    assert services.segment_evaluate(segment_id=segment.pk, previous=previous) == Outcome.READY
    assert members(segment) == ["cem"]
    assert len(full_diffs) == 1

    segment.refresh_from_db()
    segment, _ = edited(segment, country_is("FR", "IT"))
    stale = services.PreviousRules(rules=country_is("DE"), version=segment.rules_version - 1)
    assert services.segment_evaluate(segment_id=segment.pk, previous=stale) == Outcome.READY
    assert members(segment) == ["cem", "dora"]
    assert len(full_diffs) == 2


def test_a_shortcut_over_too_many_customers_falls_back_to_the_full_computation(
    customers, create, full_diffs, monkeypatch
) -> None:
    monkeypatch.setattr(services, "SHORTCUT_MAX_CUSTOMERS", 1)
    segment = create(country_is("DE", "FR"))
    full_diffs.clear()

    segment, previous = edited(segment, country_is("DE"))
    assert services.segment_evaluate(segment_id=segment.pk, previous=previous) == Outcome.READY

    assert full_diffs == [segment.pk]
    assert members(segment) == ["ana", "ben"]
    segment.refresh_from_db()
    assert segment.time_checked_at is not None
    assert segment.time_checked_at >= segment.updated_at


def test_an_edit_saved_by_a_member_takes_the_shortcut_from_the_rules_last_evaluated(
    customers, create, update, full_diffs
) -> None:
    Customer.objects.filter(user_id="ana").update(city="Berlin")
    Customer.objects.filter(user_id="ben").update(city="Hamburg")
    segment = create(germans_with())
    assert full_diffs == [segment.pk]  # the first evaluation is a full one

    narrowed = update(segment, rules=germans_with({"field": "city", "op": "eq", "value": "Berlin"}))

    assert full_diffs == [segment.pk]  # the edit looked at the members only
    assert narrowed.status == "ready"
    assert narrowed.evaluated_rules == narrowed.rules
    assert members(segment) == ["ana"]
