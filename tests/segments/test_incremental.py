"""Membership kept current: profile changes, events, segments in segments and time itself
move customers in and out, each change emitting exactly one event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from customers.hooks import customers_changed
from customers.services import customers_upsert, events_record
from flows.models import AnalyticsEvent
from segments import services
from segments.models import CustomerMark, Segment, SegmentMembership, SegmentStatus
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def field_is(field: str, value: Any, op: str = "eq") -> dict[str, Any]:
    return {"match": "all", "conditions": [{"field": field, "op": op, "value": value}]}


def members(segment: Segment) -> list[str]:
    return sorted(SegmentMembership.objects.filter(segment=segment, is_member=True).values_list("user_id", flat=True))


def events(segment: Segment) -> list[tuple[str, str]]:
    return [
        (event.name, event.user_id)
        for event in AnalyticsEvent.objects.order_by("pk")
        if event.properties.get("segmentId") == segment.pk
    ]


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    """Run what a write sends after its commit (eager tasks), as a worker would."""

    def run(write: Any, *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return write(*args, **kwargs)

    return run


@pytest.fixture
def segment(env_a, run_commits) -> Segment:
    made = run_commits(services.segment_create, environment=env_a, name="Germans", rules=field_is("country", "DE"))
    made.refresh_from_db()
    assert made.status == SegmentStatus.READY
    return made


def upsert(env: Any, run_commits: Any, *profiles: dict[str, Any]) -> None:
    run_commits(customers_upsert, environment=env, profiles=list(profiles))


def test_a_profile_change_moves_the_customer_in_and_out_within_the_same_run(env_a, segment, run_commits) -> None:
    upsert(env_a, run_commits, {"user_id": "ana", "country": "FR"})
    assert members(segment) == []

    upsert(env_a, run_commits, {"user_id": "ana", "country": "DE"})
    assert members(segment) == ["ana"]

    upsert(env_a, run_commits, {"user_id": "ana", "country": "AT"})
    assert members(segment) == []
    assert events(segment) == [("segment-entered", "ana"), ("segment-exited", "ana")]
    segment.refresh_from_db()
    assert segment.member_count == 0
    assert not CustomerMark.objects.exists()


def test_a_change_that_keeps_the_customer_a_member_emits_nothing(env_a, segment, run_commits) -> None:
    upsert(env_a, run_commits, {"user_id": "ana", "country": "DE"})
    upsert(env_a, run_commits, {"user_id": "ana", "country": "DE", "city": "Berlin"})

    assert events(segment) == [("segment-entered", "ana")]


def test_a_change_of_a_field_no_segment_reads_marks_nobody(env_a, segment, run_commits) -> None:
    CustomerFactory(environment=env_a, user_id="ana", country="DE")

    with mock.patch("workbench.celery.enqueue") as sent:
        customers_upsert(environment=env_a, profiles=[{"user_id": "ana", "city": "Berlin"}])

    assert not CustomerMark.objects.exists()
    sent.assert_not_called()


def test_an_announced_change_is_marked_in_the_announcers_transaction(env_a, segment) -> None:
    customers_changed.announce(environment_id=env_a.pk, user_ids=["ana", "ben"], fields={"country"})

    assert sorted(CustomerMark.objects.values_list("user_id", flat=True)) == ["ana", "ben"]


def test_a_batch_upsert_moves_every_customer_whose_membership_changed(env_a, segment, run_commits) -> None:
    upsert(env_a, run_commits, *({"user_id": f"u{n}", "country": "DE" if n % 2 else "FR"} for n in range(10)))

    assert members(segment) == ["u1", "u3", "u5", "u7", "u9"]
    segment.refresh_from_db()
    assert segment.member_count == 5


def test_an_event_moves_the_customer_into_an_event_segment(env_a, run_commits) -> None:
    buyers = run_commits(
        services.segment_create,
        environment=env_a,
        name="Buyers",
        rules={"match": "all", "conditions": [{"event": "purchase", "op": "countGte", "value": 2}]},
    )

    run_commits(events_record, environment=env_a, events=[{"userId": "ana", "name": "purchase"}])
    assert members(buyers) == []
    run_commits(events_record, environment=env_a, events=[{"userId": "ana", "name": "purchase"}])
    run_commits(events_record, environment=env_a, events=[{"userId": "ana", "name": "purchase"}])

    assert members(buyers) == ["ana"]
    assert events(buyers) == [("segment-entered", "ana")]


def test_a_segment_of_a_segment_follows_its_members(env_a, segment, run_commits) -> None:
    berliners = run_commits(
        services.segment_create,
        environment=env_a,
        name="German Berliners",
        rules={
            "match": "all",
            "conditions": [{"segment": segment.pk, "op": "in"}, {"field": "city", "op": "eq", "value": "Berlin"}],
        },
    )

    upsert(env_a, run_commits, {"user_id": "ana", "country": "DE", "city": "Berlin"})
    assert members(berliners) == ["ana"]

    upsert(env_a, run_commits, {"user_id": "ana", "country": "FR"})
    assert members(segment) == []
    assert members(berliners) == []
    assert events(berliners) == [("segment-entered", "ana"), ("segment-exited", "ana")]


def test_marks_left_over_are_processed_by_the_sweep(env_a, segment, run_commits) -> None:
    CustomerFactory(environment=env_a, user_id="ana", country="DE")
    CustomerMark.objects.create(
        environment=env_a, user_id="ana", fields=["country"], marked_at=timezone.now() - timedelta(minutes=5)
    )

    from segments.tasks import sweep

    sweep()

    assert members(segment) == ["ana"]
    assert not CustomerMark.objects.exists()


def test_a_segment_whose_incremental_statement_fails_does_not_hold_up_the_others(
    env_a, segment, run_commits, monkeypatch
) -> None:
    other = run_commits(services.segment_create, environment=env_a, name="French", rules=field_is("country", "FR"))
    real = services.ledger.ledger_reconcile

    def failing_for_germans(*, segment: Any, **kwargs: Any) -> Any:
        if segment.name == "Germans":
            from django.db import DatabaseError

            raise DatabaseError("canceling statement due to statement timeout")
        return real(segment=segment, **kwargs)

    monkeypatch.setattr(services.ledger, "ledger_reconcile", failing_for_germans)
    upsert(env_a, run_commits, {"user_id": "ana", "country": "FR"})

    assert members(other) == ["ana"]
    assert not CustomerMark.objects.exists()


# --- time -----------------------------------------------------------------------------------


def test_a_customer_leaves_a_within_last_days_segment_when_the_days_run_out(env_a, run_commits) -> None:
    now = timezone.now()
    CustomerFactory(environment=env_a, user_id="ana", last_seen_at=now - timedelta(days=7) + timedelta(seconds=30))
    CustomerFactory(environment=env_a, user_id="ben", last_seen_at=now - timedelta(days=2))
    recent = run_commits(
        services.segment_create, environment=env_a, name="Recent", rules=field_is("lastSeenAt", 7, "withinLastDays")
    )
    assert members(recent) == ["ana", "ben"]

    later = now + timedelta(minutes=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        marked = run_commits(services.segments_time_recheck, now=later)

    assert marked == 1  # ana only: ben's boundary is days away
    assert members(recent) == ["ben"]
    assert events(recent)[-1] == ("segment-exited", "ana")
    recent.refresh_from_db()
    assert recent.time_checked_at == later


def test_an_event_window_drops_the_day_that_left_it_at_midnight(env_a, run_commits) -> None:
    today = datetime(2025, 3, 10, 23, 59, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=today):
        for days_ago in (0, 2):
            run_commits(
                events_record,
                environment=env_a,
                events=[
                    {"userId": "ana", "name": "purchase", "timestamp": (today - timedelta(days=days_ago)).isoformat()}
                ],
            )
        buyers = run_commits(
            services.segment_create,
            environment=env_a,
            name="Buyers",
            rules={
                "match": "all",
                "conditions": [{"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 3}],
            },
        )
    assert members(buyers) == ["ana"]

    after_midnight = today + timedelta(minutes=2)
    with mock.patch("django.utils.timezone.now", return_value=after_midnight):
        marked = run_commits(services.segments_time_recheck, now=after_midnight)

    assert marked == 1
    assert members(buyers) == []
    assert events(buyers) == [("segment-entered", "ana"), ("segment-exited", "ana")]


def test_segments_without_time_relative_rules_are_not_rechecked(env_a, segment, run_commits) -> None:
    CustomerFactory(environment=env_a, user_id="ana", country="DE")

    assert run_commits(services.segments_time_recheck, now=timezone.now() + timedelta(days=30)) == 0
