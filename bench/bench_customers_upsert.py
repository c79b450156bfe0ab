"""Batch upsert of customer profiles against a raw COPY of the same rows.

The service is driven the way `POST customers` drives it: batches of 1,000 validated,
snake_case profiles. Two passes: 100,000 new customers into an empty table, then an update
of the same 100,000 (new lastSeenAt, a changed, an added and a removed custom field).
The reference is PostgreSQL's fastest way to load those rows: one `COPY ... FROM STDIN`
into the same table, emptied first, with all its indexes in place.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import BenchError, Result, Timing, timed

PROFILES = 100_000
BATCH = 1_000  # settings.BATCH_UPSERT_MAX_PROFILES: what one API request carries
REPEATS = 3
GOAL = 0.2
ENVIRONMENT_SLUG = "bench-upsert"

COUNTRIES = {
    "DE": ["Berlin", "Munich", "Hamburg"],
    "FR": ["Paris", "Lyon", "Lille"],
    "US": ["New York", "Austin", "Seattle", "Chicago"],
    "GB": ["London", "Leeds", "Bristol"],
    "BR": ["São Paulo", "Recife"],
    "JP": ["Tokyo", "Osaka"],
}
TAGS = ["vip", "beta", "newsletter", "churn-risk", "ios", "android", "web", "trial", "paid", "b2b"]
FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Dennis", "Radia"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen", "Ritchie"]
PLANS = ["free", "starter", "pro", "enterprise"]

COPY_COLUMNS = (
    "environment_id",
    "user_id",
    "name",
    "email",
    "country",
    "city",
    "tags",
    "custom_fields",
    "created_at",
    "last_seen_at",
    "updated_at",
)


def make_profiles(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """New customers, as the API serializer hands them to the service."""
    profiles = []
    for number in range(PROFILES):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country = rng.choice(list(COUNTRIES))
        custom_fields: dict[str, Any] = {"plan": rng.choice(PLANS), "sessions": rng.randint(1, 500)}
        if rng.random() < 0.5:
            custom_fields["signup_date"] = (now - timedelta(days=rng.randint(1, 900))).date().isoformat()
        profiles.append(
            {
                "user_id": f"user-{number:07d}",
                "name": f"{first} {last}",
                "email": f"{first}.{last}.{number}@example.com".lower(),
                "country": country,
                "city": rng.choice(COUNTRIES[country]),
                "tags": rng.sample(TAGS, rng.randint(0, 4)),
                "custom_fields": custom_fields,
                "last_seen_at": now - timedelta(seconds=rng.randint(0, 30 * 86_400)),
            }
        )
    return profiles


def make_updates(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """The same customers seen again: partial profiles, custom fields changed, added, removed."""
    updates = []
    for number in range(PROFILES):
        update: dict[str, Any] = {
            "user_id": f"user-{number:07d}",
            "last_seen_at": now + timedelta(seconds=rng.randint(0, 86_400)),
            "custom_fields": {"sessions": rng.randint(500, 900), "signup_date": None, "last_app": "2.4.1"},
        }
        if rng.random() < 0.3:
            update["tags"] = rng.sample(TAGS, rng.randint(1, 3))
        if rng.random() < 0.1:
            country = rng.choice(list(COUNTRIES))
            update["country"], update["city"] = country, rng.choice(COUNTRIES[country])
        updates.append(update)
    return updates


def copy_rows(environment_id: int, profiles: list[dict[str, Any]], now: datetime) -> list[tuple[Any, ...]]:
    from psycopg.types.json import Jsonb

    return [
        (
            environment_id,
            profile["user_id"],
            profile["name"],
            profile["email"],
            profile["country"],
            profile["city"],
            Jsonb(profile["tags"]),
            Jsonb(profile["custom_fields"]),
            now,
            profile["last_seen_at"],
            now,
        )
        for profile in profiles
    ]


def empty_table() -> None:
    """Start from an empty table whose planner statistics say so.

    CASCADE empties tables that point at customers too: in this database they can only point
    at the benchmark's own customers (see ensure_scratch_table).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE customers_customer CASCADE")
        cursor.execute("ANALYZE customers_customer")


def analyze_table() -> None:
    """Give the planner the statistics autovacuum would have gathered on a settled table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")


def ensure_scratch_table(environment: Any) -> None:
    """Refuse to empty a customers table that holds anyone else's customers."""
    from customers.models import Customer

    others = Customer.objects.exclude(environment=environment).count()
    if others:
        raise BenchError(
            f"{Customer._meta.db_table} holds {others:,} customers of other environments; this benchmark "
            "empties that table. Point DATABASE_URL at a scratch database (the default is bench_workbench)."
        )


def load_by_copy(rows: list[tuple[Any, ...]]) -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY customers_customer ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def upsert_in_batches(environment: Any, profiles: list[dict[str, Any]]) -> tuple[int, int]:
    from customers.services import customers_upsert

    created = updated = 0
    for start in range(0, len(profiles), BATCH):
        batch: list[Mapping[str, Any]] = list(profiles[start : start + BATCH])
        result = customers_upsert(environment=environment, profiles=batch)
        created += len(result.created)
        updated += len(result.updated)
    return created, updated


def check_upserted(environment: Any, updates: list[dict[str, Any]]) -> None:
    """Guard against measuring a service that got faster by writing the wrong thing."""
    from customers.models import Customer

    assert Customer.objects.filter(environment=environment).count() == PROFILES
    sample = updates[PROFILES // 2]
    customer = Customer.objects.get(environment=environment, user_id=sample["user_id"])
    assert customer.last_seen_at == sample["last_seen_at"], "lastSeenAt was not updated"
    assert "signup_date" not in customer.custom_fields, "a None custom field was not removed"
    assert customer.custom_fields["sessions"] == sample["custom_fields"]["sessions"]
    assert customer.custom_fields["plan"] in PLANS, "an omitted custom field was lost"
    assert customer.name, "an omitted field was lost"


def run() -> list[Result]:
    """Interleave the repetitions (COPY, insert pass, update pass) so drift hits all three."""
    from workbench.models import Environment

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark"})
    now = datetime.now(UTC)
    profiles = make_profiles(random.Random(1), now)
    updates = make_updates(random.Random(2), now)
    rows = copy_rows(environment.id, profiles, now)
    ensure_scratch_table(environment)
    # The inputs are a million long-lived objects an API worker would not hold; keep the
    # cyclic garbage collector from walking them again and again inside both measurements.
    gc.collect()
    gc.freeze()

    copy_seconds: list[float] = []
    insert_seconds: list[float] = []
    update_seconds: list[float] = []
    for _ in range(REPEATS):
        empty_table()
        seconds, _ = timed(lambda: load_by_copy(rows))
        copy_seconds.append(seconds)

        empty_table()
        seconds, counts = timed(lambda: upsert_in_batches(environment, profiles))
        assert counts == (PROFILES, 0), f"the insert pass created/updated {counts}"
        insert_seconds.append(seconds)
        analyze_table()
        seconds, counts = timed(lambda: upsert_in_batches(environment, updates))
        assert counts == (0, PROFILES), f"the update pass created/updated {counts}"
        update_seconds.append(seconds)
        check_upserted(environment, updates)
    empty_table()
    gc.unfreeze()

    copy_rate = Timing(copy_seconds).rate(PROFILES)
    reference = "COPY"
    return [
        Result(
            name="customers_upsert: 100k new",
            unit="profiles/s",
            measured=Timing(insert_seconds).rate(PROFILES),
            reference=copy_rate,
            reference_name=reference,
            goal=GOAL,
        ),
        Result(
            name="customers_upsert: 100k updated",
            unit="profiles/s",
            measured=Timing(update_seconds).rate(PROFILES),
            reference=copy_rate,
            reference_name=reference,
            goal=GOAL,
        ),
    ]
