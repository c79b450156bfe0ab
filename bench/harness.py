"""What every benchmark shares: the result row, the timer and the PostgreSQL database.

A benchmark module is `bench/bench_<subject>.py` with a `run() -> list[Result]`. It measures
its subject and a reference (the fastest plain way to do the same work) in the same run, on
the same machine, so that the ratio between them means something on a noisy machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_workbench"
# The table of the "durable floor" references (bench/bare_urls.py): the body and a primary key.
DURABLE_FLOOR_TABLE = "bench_durable_floor"
# The tables of the "rows floor" references: copies of the product's tables with every index
# and check, no rows and no foreign keys (the product's have none either), by the product's table.
ROWS_FLOOR_TABLES = {
    "flows_invocation": "bench_rows_invocation",
    "triggers_webhookrequest": "bench_rows_webhookrequest",
}


class BenchError(Exception):
    """A benchmark cannot run here (no PostgreSQL, wrong database URL); the message says why."""


@dataclass(frozen=True)
class Result:
    """One line of the table: a measured rate next to the reference rate from the same run.

    Rates are "higher is better" (items per second); `goal` is the lowest acceptable
    measured/reference ratio, or None for a line that only gives a scale (a floor).
    """

    name: str
    unit: str
    measured: float
    reference: float
    reference_name: str
    goal: float | None

    @property
    def ratio(self) -> float:
        return self.measured / self.reference if self.reference else 0.0

    @property
    def passed(self) -> bool:
        return self.goal is None or self.ratio >= self.goal


@dataclass(frozen=True)
class Timing:
    """Seconds taken by each repetition of one measurement."""

    seconds: list[float]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def rate(self, items: int) -> float:
        """Items per second on the best repetition: noise only ever adds time."""
        return items / self.best


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """Seconds `action` takes, by the monotonic high-resolution clock, and what it returned."""
    started = time.perf_counter()
    outcome = action()
    return time.perf_counter() - started, outcome


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def prepare_database(*, fresh: bool = False) -> str:
    """Make the benchmark database ready and Django configured against it; return its URL.

    1. Read DATABASE_URL (default: the local `bench_workbench` database) and refuse anything
       but PostgreSQL: the references are PostgreSQL's own fast paths.
    2. Connect to the server's maintenance database and create the benchmark database if
       it is missing (or, with `fresh`, drop and recreate it: only a database whose name
       says "bench"); an unreachable server stops the run with a message saying so.
    3. Configure Django (settings read DATABASE_URL; a secret key is defaulted for this
       process only) and apply the migrations.
    """
    import psycopg
    from psycopg import sql

    url = database_url()
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise BenchError(f"Benchmarks need PostgreSQL; DATABASE_URL is not a PostgreSQL URL: {url}")
    name = parts.path.lstrip("/")
    if not name:
        raise BenchError(f"DATABASE_URL names no database: {url}")
    if fresh and "bench" not in name:
        raise BenchError(f"--fresh drops the database; refusing for {name!r}, whose name does not say 'bench'.")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as admin:
            if fresh:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        raise BenchError(
            f"PostgreSQL is unreachable at {where} ({error}).\n"
            "Start it, or point DATABASE_URL at a server you may create databases on, e.g. "
            f"{DEFAULT_DATABASE_URL}"
        ) from error

    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-not-for-any-server")

    import django
    from django.core.management import call_command
    from django.db.migrations.exceptions import InconsistentMigrationHistory

    django.setup()
    try:
        call_command("migrate", interactive=False, verbosity=0)
    except InconsistentMigrationHistory as error:
        raise BenchError(
            f"The migrations applied to {name!r} no longer match the code ({error}).\n"
            "Rerun with --fresh to drop and recreate the benchmark database."
        ) from error
    return url


@contextlib.contextmanager
def durable_floor_table() -> Iterator[None]:
    """The tables the floor references write to (the durable floor's, the rows floor's), dropped
    afterwards (leave this block only once the server that wrote to them has stopped)."""
    from django.db import connection

    floor_tables = [DURABLE_FLOOR_TABLE, *ROWS_FLOOR_TABLES.values()]
    with connection.cursor() as cursor:
        for table in floor_tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {DURABLE_FLOOR_TABLE} (id bigserial PRIMARY KEY, body jsonb NOT NULL)")
        for product_table, table in ROWS_FLOOR_TABLES.items():
            cursor.execute(f"CREATE TABLE {table} (LIKE {product_table} INCLUDING ALL)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for table in floor_tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")


def empty_scratch_environment(environment: Any) -> None:
    """Delete everything earlier runs left in a benchmark's scratch environment, in bulk
    (raw DELETEs, not the ORM's row-by-row cascade), and its API credentials."""
    from django.db import connection, transaction
    from oauth2_provider.models import Application

    from flows.models import Flow
    from workbench.models import ApiCredential

    tables = [
        "triggers_webhookrequest", "flows_card", "flows_analyticsevent", "flows_flowrun", "flows_invocation",
        "customers_customer",
    ]  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {table} WHERE environment_id = %s", [environment.pk])
        for table in ("triggers_marketocallback", "triggers_marketobatch"):  # before their triggers
            cursor.execute(
                f"DELETE FROM {table} WHERE trigger_id IN (SELECT id FROM triggers_trigger WHERE environment_id = %s)",
                [environment.pk],
            )
        cursor.execute(
            "DELETE FROM triggers_triggermodechange WHERE trigger_id IN "
            "(SELECT id FROM triggers_trigger WHERE environment_id = %s)",
            [environment.pk],
        )
        cursor.execute("DELETE FROM triggers_trigger WHERE environment_id = %s", [environment.pk])
    Flow.objects.filter(environment=environment).delete()
    application_ids = [
        pk
        for pk in ApiCredential.objects.filter(environment=environment).values_list("application_id", flat=True)
        if pk
    ]
    ApiCredential.objects.filter(environment=environment).delete()
    Application.objects.filter(pk__in=application_ids).delete()
