"""Rules compiled to SQL and run against real customers, events and memberships.

The same table of cases runs on whichever database the suite uses: SQLite by default, and
PostgreSQL when DATABASE_URL names one (CI), so both compilations answer alike. Time is the
fixed NOW passed to the compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from customers.models import Customer, Event, EventDailyCount
from segments.compiler import matching_sql
from segments.models import Segment, SegmentMembership
from segments.rules import rules_clean
from tests.factories import CustomerFactory
from workbench.models import Environment

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EVERYONE = {"de", "fr", "none", "us"}


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def all_of(*conditions: Any) -> dict[str, Any]:
    return {"match": "all", "conditions": list(conditions)}


def matching(
    environment: Environment,
    rules: dict[str, Any],
    *,
    now: datetime = NOW,
    user_ids: Sequence[str] | None = None,
) -> set[str]:
    cleaned = rules_clean(rules, environment_id=environment.pk)
    sql, params = matching_sql(
        cleaned, environment_id=environment.pk, now=now, vendor=connection.vendor, user_ids=user_ids
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def daily(environment: Environment, user_id: str, name: str, day: date, count: int) -> None:
    EventDailyCount.objects.create(environment=environment, user_id=user_id, name=name, day=day, count=count)


def event(environment: Environment, user_id: str, name: str, at: datetime, **properties: Any) -> None:
    Event.objects.create(environment=environment, user_id=user_id, name=name, occurred_at=at, properties=properties)


@pytest.fixture
def population(db: None) -> Environment:
    """Four customers (de, fr, none, us) and a look-alike of `de` in another environment."""
    environment = Environment.objects.create(slug="acme", name="Acme")
    CustomerFactory(
        environment=environment,
        user_id="de",
        name="Anna Schmidt",
        email="Ann@Example.com",
        country="DE",
        tags=["vip", "beta"],
        custom_fields={
            "plan": "pro",
            "score": 7,
            "beta": True,
            "renewal": "2024-06-05",
            "signup": "2024-05-01T10:00:00+02:00",
            "plan.tier": "gold",
        },
        created_at=days_ago(100),
        last_seen_at=days_ago(2),
    )
    CustomerFactory(
        environment=environment,
        user_id="fr",
        name="Bob 50%_off",
        email="bob@example.com",
        country="FR",
        tags=["beta"],
        custom_fields={
            "plan": "team",
            "score": 7.0,
            "beta": "yes",
            "renewal": "2024-07-01",
            "nickname": "",
            'say "hi"': "hello",
        },
        created_at=days_ago(40),
        last_seen_at=days_ago(40),
    )
    CustomerFactory(
        environment=environment,
        user_id="none",
        name=None,
        email=None,
        country=None,
        tags=[],
        custom_fields={},
        created_at=days_ago(1),
        last_seen_at=None,
    )
    CustomerFactory(
        environment=environment,
        user_id="us",
        name="carl",
        email="carl@EXAMPLE.com",
        country="US",
        tags=["VIP"],
        custom_fields={"plan": "Pro", "score": "7", "beta": 1, "renewal": "not a date", "odd": "2023-02-29"},
        created_at=days_ago(5),
        last_seen_at=NOW + timedelta(days=1),
    )
    other = Environment.objects.create(slug="globex", name="Globex")
    CustomerFactory(
        environment=other,
        user_id="other",
        name="Anna Schmidt",
        email="Ann@Example.com",
        country="DE",
        tags=["vip", "beta"],
        custom_fields={"plan": "pro"},
        created_at=days_ago(1),
        last_seen_at=days_ago(1),
    )
    today = NOW.date()
    # Rollup: the last 30 days are May 3 to June 1 (today) included.
    daily(environment, "de", "purchase", today, 1)
    daily(environment, "de", "purchase", date(2024, 5, 20), 1)
    daily(environment, "de", "purchase", date(2024, 4, 1), 5)
    daily(environment, "fr", "purchase", date(2024, 5, 3), 1)
    daily(environment, "fr", "purchase", date(2024, 5, 2), 3)
    daily(environment, "us", "login", today, 1)
    daily(other, "other", "purchase", today, 9)
    # Raw events, for tests with property filters.
    event(environment, "de", "purchase", days_ago(1), plan="pro", amount=30)
    event(environment, "de", "purchase", days_ago(10), plan="basic", amount=5)
    event(environment, "fr", "purchase", days_ago(31), plan="pro", amount=50)
    event(environment, "us", "login", days_ago(0.5), plan="pro")
    # Nested properties, and a key of its own with a dot (which wins over the nested value).
    event(environment, "de", "order", days_ago(2), order={"total": 120, "currency": "EUR"})
    event(environment, "fr", "order", days_ago(2), order={"total": 500}, **{"order.total": 5})
    event(other, "other", "purchase", days_ago(1), plan="pro", amount=30)
    return environment


FIELD_CASES: list[tuple[dict[str, Any], set[str]]] = [
    # text fields: case-sensitive, a missing value matches only the negative ops
    ({"field": "country", "op": "eq", "value": "DE"}, {"de"}),
    ({"field": "country", "op": "eq", "value": "de"}, set()),
    ({"field": "country", "op": "neq", "value": "DE"}, {"fr", "none", "us"}),
    ({"field": "country", "op": "in", "value": ["DE", "FR"]}, {"de", "fr"}),
    ({"field": "country", "op": "notIn", "value": ["DE", "FR"]}, {"none", "us"}),
    ({"field": "country", "op": "exists"}, {"de", "fr", "us"}),
    ({"field": "country", "op": "notExists"}, {"none"}),
    ({"field": "name", "op": "contains", "value": "Schm"}, {"de"}),
    ({"field": "name", "op": "contains", "value": "schm"}, set()),
    ({"field": "name", "op": "contains", "value": "%_"}, {"fr"}),
    ({"field": "name", "op": "contains", "value": "%"}, {"fr"}),
    ({"field": "name", "op": "notContains", "value": "Schm"}, {"fr", "none", "us"}),
    ({"field": "name", "op": "startsWith", "value": "Ann"}, {"de"}),
    ({"field": "name", "op": "startsWith", "value": "C"}, set()),
    ({"field": "name", "op": "startsWith", "value": "_"}, set()),
    ({"field": "name", "op": "endsWith", "value": "idt"}, {"de"}),
    ({"field": "name", "op": "endsWith", "value": "IDT"}, set()),
    ({"field": "name", "op": "endsWith", "value": "a much longer text than any name"}, set()),
    # email equality ignores case; its other ops do not
    ({"field": "email", "op": "eq", "value": "ann@example.COM"}, {"de"}),
    ({"field": "email", "op": "in", "value": ["CARL@example.com", "x@y.z"]}, {"us"}),
    ({"field": "email", "op": "neq", "value": "ANN@example.com"}, {"fr", "none", "us"}),
    ({"field": "email", "op": "notIn", "value": ["ann@example.com", "BOB@example.com"]}, {"none", "us"}),
    ({"field": "email", "op": "contains", "value": "EXAMPLE"}, {"us"}),
    # timestamps: windows around NOW
    ({"field": "createdAt", "op": "withinLastDays", "value": 30}, {"none", "us"}),
    ({"field": "createdAt", "op": "notWithinLastDays", "value": 30}, {"de", "fr"}),
    ({"field": "lastSeenAt", "op": "withinLastDays", "value": 7}, {"de"}),
    ({"field": "lastSeenAt", "op": "notWithinLastDays", "value": 7}, {"fr", "none", "us"}),
    ({"field": "lastSeenAt", "op": "withinNextDays", "value": 2}, {"us"}),
    ({"field": "createdAt", "op": "betweenDaysAgo", "value": [60, 30]}, {"fr"}),
    ({"field": "createdAt", "op": "betweenDaysAgo", "value": [5, 5]}, {"us"}),
    ({"field": "lastSeenAt", "op": "exists"}, {"de", "fr", "us"}),
    ({"field": "lastSeenAt", "op": "notExists"}, {"none"}),
    # timestamps: an ISO date compares by whole UTC days (us was created 2024-05-27 12:00)
    ({"field": "createdAt", "op": "before", "value": "2024-04-30"}, {"de", "fr"}),
    ({"field": "createdAt", "op": "after", "value": "2024-05-27"}, {"none"}),
    ({"field": "createdAt", "op": "after", "value": "2024-05-26"}, {"none", "us"}),
    ({"field": "createdAt", "op": "gt", "value": "2024-05-31"}, set()),
    ({"field": "createdAt", "op": "gte", "value": "2024-05-31"}, {"none"}),
    ({"field": "createdAt", "op": "lt", "value": "2024-05-27"}, {"de", "fr"}),
    ({"field": "createdAt", "op": "lte", "value": "2024-05-27"}, {"de", "fr", "us"}),
    # timestamps: a datetime compares to the instant, offsets honoured
    ({"field": "createdAt", "op": "gt", "value": "2024-05-27T12:00:00Z"}, {"none"}),
    ({"field": "createdAt", "op": "gte", "value": "2024-05-27T12:00:00Z"}, {"none", "us"}),
    ({"field": "createdAt", "op": "lt", "value": "2024-05-27T12:00:00Z"}, {"de", "fr"}),
    ({"field": "createdAt", "op": "lte", "value": "2024-05-27T12:00:00Z"}, {"de", "fr", "us"}),
    ({"field": "createdAt", "op": "after", "value": "2024-05-27T13:00:00+02:00"}, {"none", "us"}),
    # custom fields: typed values
    ({"field": "customFields.plan", "op": "eq", "value": "pro"}, {"de"}),
    ({"field": "customFields.plan", "op": "neq", "value": "pro"}, {"fr", "none", "us"}),
    ({"field": "customFields.plan", "op": "in", "value": ["pro", "team"]}, {"de", "fr"}),
    ({"field": "customFields.plan", "op": "notIn", "value": ["pro", "team"]}, {"none", "us"}),
    ({"field": "customFields.score", "op": "eq", "value": 7}, {"de", "fr"}),
    ({"field": "customFields.score", "op": "eq", "value": "7"}, {"us"}),
    ({"field": "customFields.beta", "op": "eq", "value": True}, {"de"}),
    ({"field": "customFields.beta", "op": "eq", "value": 1}, {"us"}),
    ({"field": "customFields.beta", "op": "in", "value": [True, "yes"]}, {"de", "fr"}),
    ({"field": "customFields.beta", "op": "neq", "value": True}, {"fr", "none", "us"}),
    ({"field": "customFields.score", "op": "in", "value": list(range(1, 20))}, {"de", "fr"}),
    ({"field": "customFields.score", "op": "gt", "value": 6}, {"de", "fr"}),
    ({"field": "customFields.score", "op": "gte", "value": 7}, {"de", "fr"}),
    ({"field": "customFields.score", "op": "lt", "value": 7}, set()),
    ({"field": "customFields.score", "op": "lte", "value": 7.5}, {"de", "fr"}),
    ({"field": "customFields.plan", "op": "contains", "value": "ro"}, {"de", "us"}),
    ({"field": "customFields.plan", "op": "contains", "value": "pr"}, {"de"}),
    ({"field": "customFields.plan", "op": "notContains", "value": "pr"}, {"fr", "none", "us"}),
    ({"field": "customFields.plan", "op": "startsWith", "value": "P"}, {"us"}),
    ({"field": "customFields.plan", "op": "endsWith", "value": "am"}, {"fr"}),
    ({"field": "customFields.score", "op": "contains", "value": "7"}, {"us"}),
    ({"field": "customFields.plan", "op": "exists"}, {"de", "fr", "us"}),
    ({"field": "customFields.plan", "op": "notExists"}, {"none"}),
    ({"field": "customFields.nickname", "op": "exists"}, set()),
    ({"field": "customFields.nickname", "op": "notExists"}, EVERYONE),
    ({"field": "customFields.plan.tier", "op": "eq", "value": "gold"}, {"de"}),
    ({"field": 'customFields.say "hi"', "op": "eq", "value": "hello"}, {"fr"}),
    ({"field": 'customFields.say "hi"', "op": "exists"}, {"fr"}),
    # custom fields: ISO date strings compare as dates; other strings and numbers never do
    ({"field": "customFields.renewal", "op": "after", "value": "2024-06-04"}, {"de", "fr"}),
    ({"field": "customFields.renewal", "op": "before", "value": "2024-07-01"}, {"de"}),
    ({"field": "customFields.renewal", "op": "lte", "value": "2024-07-01"}, {"de", "fr"}),
    ({"field": "customFields.renewal", "op": "withinNextDays", "value": 7}, {"de"}),
    ({"field": "customFields.renewal", "op": "notWithinLastDays", "value": 7}, EVERYONE),
    ({"field": "customFields.signup", "op": "gt", "value": "2024-05-01T09:00:00Z"}, set()),
    ({"field": "customFields.signup", "op": "lt", "value": "2024-05-01T09:00:00Z"}, {"de"}),
    ({"field": "customFields.signup", "op": "betweenDaysAgo", "value": [40, 30]}, {"de"}),
    ({"field": "customFields.odd", "op": "gt", "value": "2000-01-01"}, set()),
    ({"field": "customFields.score", "op": "gt", "value": "2000-01-01"}, set()),
]

TAG_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"tag": "vip", "op": "has"}, {"de"}),
    ({"tag": "vip", "op": "hasNot"}, {"fr", "none", "us"}),
    ({"tags": ["vip", "beta"], "op": "hasAny"}, {"de", "fr"}),
    ({"tags": ["vip", "beta"], "op": "hasAll"}, {"de"}),
    ({"tags": ["vip", "beta"], "op": "hasNone"}, {"none", "us"}),
    ({"tags": ["beta"], "op": "hasAll"}, {"de", "fr"}),
]


def ordered(*where: dict[str, Any], op: str = "occurred") -> dict[str, Any]:
    return {"event": "order", "op": op, "where": list(where)}


EVENT_CASES: list[tuple[dict[str, Any], set[str]]] = [
    # property names reach into nested objects, a key of its own first
    (ordered({"property": "order.total", "op": "gt", "value": 100}), {"de"}),
    (ordered({"property": "order.total", "op": "lt", "value": 10}), {"fr"}),
    (ordered({"property": "order.currency", "op": "eq", "value": "EUR"}), {"de"}),
    (ordered({"property": "order.currency", "op": "in", "value": ["USD", "EUR"]}), {"de"}),
    (ordered({"property": "order.currency", "op": "startsWith", "value": "EU"}), {"de"}),
    (ordered({"property": "order.currency", "op": "exists"}, op="notOccurred"), {"fr", "none", "us"}),
    (ordered({"property": "order.missing.deeper", "op": "notExists"}), {"de", "fr"}),
    # the rollup: all time, and the last N UTC days including today
    ({"event": "purchase", "op": "occurred"}, {"de", "fr"}),
    ({"event": "purchase", "op": "notOccurred"}, {"none", "us"}),
    ({"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30}, {"de"}),
    ({"event": "purchase", "op": "countGte", "value": 1, "withinLastDays": 30}, {"de", "fr"}),
    ({"event": "purchase", "op": "occurred", "withinLastDays": 29}, {"de"}),
    ({"event": "purchase", "op": "occurred", "withinLastDays": 1}, {"de"}),
    ({"event": "purchase", "op": "countLte", "value": 1, "withinLastDays": 30}, {"fr", "none", "us"}),
    ({"event": "purchase", "op": "countEq", "value": 0, "withinLastDays": 30}, {"none", "us"}),
    ({"event": "purchase", "op": "countEq", "value": 2, "withinLastDays": 30}, {"de"}),
    ({"event": "purchase", "op": "countEq", "value": 7}, {"de"}),
    ({"event": "purchase", "op": "countGte", "value": 0}, EVERYONE),
    ({"event": "purchase", "op": "countLte", "value": 0}, {"none", "us"}),
    ({"event": "signup", "op": "notOccurred"}, EVERYONE),
    # raw events with property tests, windows of N x 24 hours
    (
        {"event": "purchase", "op": "occurred", "where": [{"property": "plan", "op": "eq", "value": "pro"}]},
        {"de", "fr"},
    ),
    (
        {
            "event": "purchase",
            "op": "occurred",
            "withinLastDays": 30,
            "where": [{"property": "plan", "op": "eq", "value": "pro"}],
        },
        {"de"},
    ),
    (
        {"event": "purchase", "op": "countGte", "value": 2, "where": [{"property": "amount", "op": "gte", "value": 5}]},
        {"de"},
    ),
    (
        {"event": "purchase", "op": "notOccurred", "where": [{"property": "plan", "op": "eq", "value": "pro"}]},
        {"none", "us"},
    ),
    (
        {
            "event": "purchase",
            "op": "countEq",
            "value": 1,
            "withinLastDays": 60,
            "where": [{"property": "amount", "op": "gt", "value": 20}],
        },
        {"de", "fr"},
    ),
    (
        {
            "event": "purchase",
            "op": "countLte",
            "value": 0,
            "where": [{"property": "plan", "op": "neq", "value": "pro"}],
        },
        {"fr", "none", "us"},
    ),
]


@pytest.mark.parametrize(("condition", "expected"), FIELD_CASES + TAG_CASES + EVENT_CASES)
def test_each_op_matches_the_customers_it_names(
    population: Environment, condition: dict[str, Any], expected: set[str]
) -> None:
    assert matching(population, all_of(condition)) == expected


def test_segment_tests_read_the_ledgers_current_members(population: Environment) -> None:
    segment = Segment.objects.create(environment=population, name="Germans", rules=all_of())
    SegmentMembership.objects.create(environment=population, segment=segment, user_id="de")
    SegmentMembership.objects.create(environment=population, segment=segment, user_id="fr", is_member=False)
    assert matching(population, all_of({"segment": segment.pk, "op": "in"})) == {"de"}
    assert matching(population, all_of({"segment": segment.pk, "op": "notIn"})) == {"fr", "none", "us"}


def test_groups_nest_with_all_and_any(population: Environment) -> None:
    rules = {
        "match": "any",
        "conditions": [
            {"field": "country", "op": "eq", "value": "US"},
            all_of({"tag": "beta", "op": "has"}, {"field": "customFields.plan", "op": "eq", "value": "team"}),
        ],
    }
    assert matching(population, rules) == {"us", "fr"}
    assert matching(population, all_of()) == EVERYONE
    assert matching(population, {"match": "any", "conditions": []}) == set()


def test_the_benchmark_segment(population: Environment) -> None:
    rules = all_of(
        {"field": "country", "op": "eq", "value": "DE"},
        {"field": "customFields.plan", "op": "in", "value": ["pro", "team"]},
        {"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30},
    )
    assert matching(population, rules) == {"de"}


def test_user_ids_restrict_the_answer(population: Environment) -> None:
    rules = all_of({"field": "country", "op": "exists"})
    assert matching(population, rules, user_ids=["de", "fr", "nobody"]) == {"de", "fr"}
    assert matching(population, rules, user_ids=[]) == set()
    purchased = all_of({"event": "purchase", "op": "notOccurred"})
    assert matching(population, purchased, user_ids=["de", "us"]) == {"us"}


def test_windows_move_with_now(population: Environment) -> None:
    rules = all_of({"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30})
    # On June 19 the window starts May 21: only one of de's purchases is left.
    assert matching(population, rules, now=NOW + timedelta(days=18)) == set()
    seen = all_of({"field": "lastSeenAt", "op": "withinLastDays", "value": 7})
    assert matching(population, seen, now=NOW + timedelta(days=3)) == {"de", "us"}


def test_values_travel_as_parameters_never_as_sql_text(population: Environment) -> None:
    hostile = "x'); DELETE FROM customers_customer; --"
    rules = all_of(
        {"field": "country", "op": "eq", "value": hostile},
        {"field": f"customFields.{hostile}", "op": "contains", "value": hostile},
        {"tags": [hostile], "op": "hasAny"},
        {"event": hostile, "op": "occurred", "where": [{"property": hostile, "op": "eq", "value": hostile}]},
    )
    cleaned = rules_clean(rules, environment_id=population.pk)
    sql, _params = matching_sql(cleaned, environment_id=population.pk, now=NOW, vendor=connection.vendor)
    assert "DELETE" not in sql
    assert matching(population, {"match": "any", "conditions": rules["conditions"]}) == set()
    assert Customer.objects.count() == 5


def test_now_must_be_aware_and_the_vendor_known() -> None:
    with pytest.raises(ValueError, match="aware"):
        matching_sql(all_of(), environment_id=1, now=datetime(2024, 1, 1), vendor="sqlite")
    with pytest.raises(ValueError, match="oracle"):
        matching_sql(all_of(), environment_id=1, now=NOW, vendor="oracle")
