"""Segment reads: the environment-scoped selectors, the preview of unsaved rules and the dry run
of an edit against the ledger's members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.http import Http404

from customers.models import Customer
from segments.models import Segment, SegmentMembership, SegmentSize
from segments.rules import rules_clean
from segments.selectors import (
    DryRun,
    RulesPreview,
    customer_segments,
    matching_count_and_sample,
    segment_dry_run,
    segment_get,
    segment_list,
    segment_member_count,
    segment_members,
    segment_sizes,
)
from workbench.models import Environment

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def all_of(*conditions: Any) -> dict[str, Any]:
    return {"match": "all", "conditions": list(conditions)}


def customers(environment: Environment, **countries: str | None) -> None:
    Customer.objects.bulk_create(
        Customer(environment=environment, user_id=user_id, country=country) for user_id, country in countries.items()
    )


def member(segment: Segment, user_id: str, *, minutes: int = 0, is_member: bool = True) -> SegmentMembership:
    return SegmentMembership.objects.create(
        environment_id=segment.environment_id,
        segment=segment,
        user_id=user_id,
        is_member=is_member,
        entered_at=T0 + timedelta(minutes=minutes),
    )


@pytest.fixture
def acme(db: None) -> Environment:
    return Environment.objects.create(slug="acme", name="Acme")


@pytest.fixture
def globex(db: None) -> Environment:
    return Environment.objects.create(slug="globex", name="Globex")


# --- selectors ---------------------------------------------------------------------------------


def test_segments_are_listed_by_name_within_their_environment(acme: Environment, globex: Environment) -> None:
    b = Segment.objects.create(environment=acme, name="Buyers", rules=all_of())
    a = Segment.objects.create(environment=acme, name="Active", rules=all_of())
    Segment.objects.create(environment=globex, name="Aardvarks", rules=all_of())
    assert list(segment_list(environment=acme)) == [a, b]


def test_another_environments_segment_is_not_found(acme: Environment, globex: Environment) -> None:
    ours = Segment.objects.create(environment=acme, name="Ours", rules=all_of())
    theirs = Segment.objects.create(environment=globex, name="Theirs", rules=all_of())
    assert segment_get(environment=acme, segment_id=ours.pk) == ours
    assert segment_get(environment=acme, segment_id=str(ours.pk)) == ours
    for missing in (theirs.pk, 999_999, "seven", None):
        with pytest.raises(Http404):
            segment_get(environment=acme, segment_id=missing)  # type: ignore[arg-type]


def test_members_are_the_current_ones_newest_first_and_searchable(acme: Environment) -> None:
    segment = Segment.objects.create(environment=acme, name="Germans", rules=all_of())
    member(segment, "anna", minutes=1)
    member(segment, "bernd", minutes=3)
    member(segment, "hanna", minutes=2)
    member(segment, "left", minutes=4, is_member=False)
    assert [m.user_id for m in segment_members(segment=segment)] == ["bernd", "hanna", "anna"]
    assert [m.user_id for m in segment_members(segment=segment, search=" ANN ")] == ["hanna", "anna"]
    assert segment_member_count(segment=segment) == 3


def test_sizes_are_oldest_first_and_can_start_later(acme: Environment) -> None:
    segment = Segment.objects.create(environment=acme, name="Germans", rules=all_of())
    for hours, count in ((2, 20), (0, 0), (1, 10)):
        SegmentSize.objects.create(segment=segment, measured_at=T0 + timedelta(hours=hours), member_count=count)
    assert [size.member_count for size in segment_sizes(segment=segment)] == [0, 10, 20]
    assert [size.member_count for size in segment_sizes(segment=segment, since=T0 + timedelta(hours=1))] == [10, 20]


def test_a_customers_segments_come_with_the_segment_in_one_query(
    acme: Environment, globex: Environment, django_assert_num_queries: Any
) -> None:
    first = Segment.objects.create(environment=acme, name="First", rules=all_of())
    second = Segment.objects.create(environment=acme, name="Second", rules=all_of())
    left = Segment.objects.create(environment=acme, name="Left", rules=all_of())
    theirs = Segment.objects.create(environment=globex, name="Theirs", rules=all_of())
    member(first, "anna", minutes=1)
    member(second, "anna", minutes=2)
    member(left, "anna", is_member=False)
    member(theirs, "anna")
    with django_assert_num_queries(1):
        names = [m.segment.name for m in customer_segments(environment=acme, user_id="anna")]
    assert names == ["Second", "First"]


# --- previews ----------------------------------------------------------------------------------


def test_a_preview_counts_and_samples_the_matching_customers(acme: Environment, globex: Environment) -> None:
    customers(acme, **{f"de-{n:02d}": "DE" for n in range(25)}, fr="FR", nobody=None)
    customers(globex, elsewhere="DE")
    rules = rules_clean(all_of({"field": "country", "op": "eq", "value": "DE"}), environment_id=acme.pk)
    preview = matching_count_and_sample(environment=acme, rules=rules)
    assert preview == RulesPreview(count=25, sample=[f"de-{n:02d}" for n in range(20)])
    assert matching_count_and_sample(environment=acme, rules=rules, sample_size=2).sample == ["de-00", "de-01"]


def test_a_preview_of_rules_nobody_matches(acme: Environment) -> None:
    customers(acme, fr="FR")
    rules = rules_clean(all_of({"field": "country", "op": "eq", "value": "DE"}), environment_id=acme.pk)
    assert matching_count_and_sample(environment=acme, rules=rules) == RulesPreview(count=0, sample=[])


def test_a_dry_run_tells_who_would_enter_exit_and_stay(acme: Environment, globex: Environment) -> None:
    customers(acme, a="DE", b="DE", c="DE", d="FR", e="FR", f=None)
    customers(globex, g="DE")
    segment = Segment.objects.create(
        environment=acme, name="Germans", rules=all_of({"field": "country", "op": "eq", "value": "FR"})
    )
    member(segment, "d")
    member(segment, "e")
    member(segment, "a")  # a member who also matches the new rules
    member(segment, "b", is_member=False)  # left once: entering again is an entry
    new_rules = rules_clean(all_of({"field": "country", "op": "eq", "value": "DE"}), environment_id=acme.pk)
    assert segment_dry_run(segment=segment, rules=new_rules) == DryRun(
        enter=2, exit=2, stay=1, sample_enter=["b", "c"], sample_exit=["d", "e"]
    )
    assert segment_dry_run(segment=segment, rules=new_rules, sample_size=1) == DryRun(
        enter=2, exit=2, stay=1, sample_enter=["b"], sample_exit=["d"]
    )


def test_a_dry_run_of_a_segment_without_members(acme: Environment) -> None:
    customers(acme, a="DE")
    segment = Segment.objects.create(environment=acme, name="New", rules=all_of())
    rules = rules_clean(all_of({"field": "country", "op": "exists"}), environment_id=acme.pk)
    assert segment_dry_run(segment=segment, rules=rules) == DryRun(
        enter=1, exit=0, stay=0, sample_enter=["a"], sample_exit=[]
    )
    nobody = rules_clean({"match": "any", "conditions": []}, environment_id=acme.pk)
    assert segment_dry_run(segment=segment, rules=nobody) == DryRun(0, 0, 0, [], [])


def test_a_dry_run_counts_in_a_fixed_number_of_queries(acme: Environment, django_assert_num_queries: Any) -> None:
    customers(acme, **{f"c{n}": "DE" for n in range(50)})
    segment = Segment.objects.create(environment=acme, name="Germans", rules=all_of())
    for n in range(0, 50, 2):
        member(segment, f"c{n}")
    rules = rules_clean(all_of({"field": "customFields.plan", "op": "exists"}), environment_id=acme.pk)
    # On PostgreSQL the preview's own transaction adds a savepoint, its two settings and the release.
    with django_assert_num_queries(4 if connection.vendor != "postgresql" else 8):
        dry_run = segment_dry_run(segment=segment, rules=rules)
    assert (dry_run.enter, dry_run.exit, dry_run.stay) == (0, 25, 0)
