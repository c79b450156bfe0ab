"""Segments' services: creating, editing and deleting segments."""

from __future__ import annotations

from typing import Any

import pytest

from segments import services
from segments.models import Segment, SegmentStatus
from workbench.errors import Invalid, Refused

pytestmark = pytest.mark.django_db

GERMANS: dict[str, Any] = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}


def test_a_segment_is_saved_computing_with_cleaned_rules(env_a, owner) -> None:
    segment = services.segment_create(environment=env_a, name="  Germans ", rules=GERMANS, by=owner)

    assert (segment.name, segment.status, segment.rules_version) == ("Germans", SegmentStatus.COMPUTING, 1)
    assert segment.rules == GERMANS
    assert segment.created_by == owner


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, None])
def test_a_segment_needs_a_name_of_1_to_200_characters(env_a, name) -> None:
    with pytest.raises(Invalid) as caught:
        services.segment_create(environment=env_a, name=name, rules=GERMANS)

    assert list(caught.value.errors) == ["name"]
    assert not Segment.objects.exists()


def test_bad_rules_are_refused_with_the_conditions_path(env_a) -> None:
    rules = {"match": "all", "conditions": [{"field": "country", "op": "sounds like", "value": "DE"}]}

    with pytest.raises(Invalid) as caught:
        services.segment_create(environment=env_a, name="Germans", rules=rules)

    assert "rules.conditions[0].op" in caught.value.errors


def test_a_name_and_rules_problem_are_answered_together(env_a) -> None:
    with pytest.raises(Invalid) as caught:
        services.segment_create(environment=env_a, name="", rules={"match": "some"})

    assert "name" in caught.value.errors
    assert any(key.startswith("rules") for key in caught.value.errors)


def test_an_edit_of_the_rules_bumps_their_version_and_computes_again(env_a) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.READY)

    changed = {"match": "any", "conditions": [{"field": "country", "op": "eq", "value": "AT"}]}
    segment = services.segment_update(segment=segment, rules=changed)

    assert (segment.rules_version, segment.status, segment.rules) == (2, SegmentStatus.COMPUTING, changed)


def test_saving_the_same_rules_again_changes_nothing(env_a) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.READY)

    segment = services.segment_update(segment=segment, name="Deutsche", rules=GERMANS)

    assert (segment.name, segment.rules_version, segment.status) == ("Deutsche", 1, SegmentStatus.READY)


def test_a_segment_cannot_be_made_to_contain_itself(env_a) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)

    with pytest.raises(Invalid) as caught:
        services.segment_update(
            segment=segment, rules={"match": "all", "conditions": [{"segment": segment.pk, "op": "in"}]}
        )

    assert any(key.startswith("rules.conditions[0]") for key in caught.value.errors)


def test_a_segment_used_by_another_segments_rules_cannot_be_deleted(env_a) -> None:
    germans = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)
    services.segment_create(
        environment=env_a,
        name="German buyers",
        rules={"match": "all", "conditions": [{"segment": germans.pk, "op": "in"}]},
    )

    with pytest.raises(Refused) as caught:
        services.segment_delete(segment=germans)

    assert (caught.value.status, caught.value.code) == (409, "segment_in_use")
    assert "German buyers" in caught.value.detail
    assert Segment.objects.filter(pk=germans.pk).exists()


def test_an_unused_segment_is_deleted_with_its_ledger(env_a) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)

    services.segment_delete(segment=segment)

    assert not Segment.objects.exists()


def test_saving_the_rules_of_a_failed_segment_again_retries_it(env_a) -> None:
    segment = services.segment_create(environment=env_a, name="Germans", rules=GERMANS)
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.FAILED, last_error="timeout")

    segment = services.segment_update(segment=segment, rules=GERMANS)

    assert (segment.status, segment.last_error, segment.rules_version) == (SegmentStatus.COMPUTING, "", 2)
