"""The PostgreSQL connection as the hot paths use it: prepared statements and a health check
that costs no round trip, but still replaces a connection the server has closed."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from customers.models import Customer
from flows.models import AnalyticsEvent
from flows.services import flow_create
from tests.factories import EnvironmentFactory
from tests.integration.conftest import wait_for
from triggers.models import RequestOutcome, WebhookRequest
from triggers.services import webhook_trigger_create
from workbench.raw_rows import insert_rows_like, insert_rows_together, prepared_cursor, rows_insert

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def admin_connection() -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
    )


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_a_connection_the_server_closed_is_replaced_before_a_request_uses_it() -> None:
    old_pid = backend_pid()
    with admin_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        # Termination is signalled: wait until the backend has gone.
        assert wait_for(
            lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [old_pid]).fetchone() == (0,)
        )

    # What Django does at the start of a request, with CONN_HEALTH_CHECKS on.
    connection.health_check_done = False
    connection.close_if_health_check_failed()

    assert backend_pid() != old_pid


def test_a_healthy_idle_connection_is_kept_without_a_query(monkeypatch: pytest.MonkeyPatch) -> None:
    pid = backend_pid()
    connection.health_check_done = False
    queries: list[str] = []
    real_cursor = connection.connection.cursor

    def counting_cursor(*args, **kwargs):
        queries.append("query")
        return real_cursor(*args, **kwargs)

    monkeypatch.setattr(connection.connection, "cursor", counting_cursor)

    connection.close_if_health_check_failed()

    assert queries == []
    monkeypatch.undo()
    assert backend_pid() == pid


def test_hot_path_statements_are_prepared_once_per_connection() -> None:
    statement = "SELECT %s::int + 1"
    for number in range(3):
        with prepared_cursor() as cursor:
            cursor.execute(statement, [number])
            assert cursor.fetchone() == (number + 1,)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int + 1%%'")
        assert cursor.fetchone() == (1,)


def test_rows_inserted_from_json_read_back_as_the_orm_wrote_them() -> None:
    environment = EnvironmentFactory()
    trigger = webhook_trigger_create(flow=flow_create(environment=environment, name="Welcome"))
    now = timezone.now()
    event = AnalyticsEvent(
        environment=environment,
        name="custom",
        flow_invocation_id="",
        test=True,
        properties={"nested": {"list": [1, 2.5, None, "x"]}, "unicode": "Grüße ✓"},
        occurred_at=now,
    )
    logged = WebhookRequest(
        environment=environment,
        trigger=trigger,
        received_at=now,
        source_ip="203.0.113.7",
        method="POST",
        headers={"content-type": "application/json"},
        body='{"a": 1}',
        outcome=RequestOutcome.ACCEPTED,
        status_code=202,
        errors=None,
    )
    for obj in (event, logged):
        [(obj.pk,)] = insert_rows_together([rows_insert([obj], returning=("id",))])

    stored_event = AnalyticsEvent.objects.get(pk=event.pk)
    assert stored_event.properties == event.properties
    assert stored_event.occurred_at == now
    assert stored_event.test is True
    assert stored_event.flow_id is None
    stored_log = WebhookRequest.objects.get(pk=logged.pk)
    assert (stored_log.headers, stored_log.body, stored_log.errors) == (logged.headers, '{"a": 1}', None)
    assert (stored_log.status_code, stored_log.query) == (202, {})


def test_rows_inserted_like_a_template_differ_from_it_only_where_told() -> None:
    environment = EnvironmentFactory()
    earlier, now = timezone.now() - timedelta(hours=1), timezone.now()
    template = AnalyticsEvent(environment=environment, name="flow-invocation-accepted", occurred_at=now)

    insert_rows_like(
        template,
        [
            {"flow_invocation_id": "a", "test": True, "properties": {"n": 1}},
            {"flow_invocation_id": "b", "occurred_at": earlier, "properties": {"n": [2, None]}},
        ],
    )
    insert_rows_like(Customer(environment=environment, user_id=""), [{"user_id": "u1"}], ignore_conflicts=True)
    insert_rows_like(Customer(environment=environment, user_id=""), [{"user_id": "u1"}], ignore_conflicts=True)

    rows = AnalyticsEvent.objects.order_by("flow_invocation_id")
    assert [(row.flow_invocation_id, row.test, row.properties, row.occurred_at) for row in rows] == [
        ("a", True, {"n": 1}, now),
        ("b", False, {"n": [2, None]}, earlier),
    ]
    assert {row.name for row in rows} == {"flow-invocation-accepted"}
    assert list(Customer.objects.values_list("user_id", flat=True)) == ["u1"]


def test_with_prepared_statements_off_nothing_is_prepared(settings) -> None:
    """DATABASE_PREPARED_STATEMENTS=0, for transaction-mode poolers such as PgBouncer."""
    settings.DATABASE_PREPARED_STATEMENTS = False
    for number in range(3):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int + 2", [number])
            assert cursor.fetchone() == (number + 2,)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int + 2%%'")
        assert cursor.fetchone() == (0,)
