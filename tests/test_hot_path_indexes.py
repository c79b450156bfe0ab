"""Every live start and webhook writes an invocation, a webhook also its request log entry, and
their fan-out analytics events: each index on those tables is paid for on every request
(PostgreSQL's CPU per webhook fell by a tenth when the redundant single-column foreign-key
indexes went). These tests make adding one a decision: add it here, with the read it serves.
"""

from __future__ import annotations

import pytest
from django.db import connection

from flows.models import AnalyticsEvent, Invocation
from triggers.models import WebhookRequest

pytestmark = pytest.mark.django_db

# Per table: the columns of each index, and the read that needs it.
WRITTEN_PER_START_INDEXES = {
    Invocation: {
        ("id",): "the primary key",
        ("flow_id", "mode", "flow_invocation_id"): "idempotency: one invocation per key, flow and mode",
        ("environment_id", "flow_invocation_id"): "GET invocations/{flowInvocationId}",
        ("status", "created_at"): "the sweep's invocations not yet fanned out",
        ("flow_id", "created_at"): "a flow's invocations, newest first",
    },
    WebhookRequest: {
        ("id",): "the primary key",
        ("trigger_id", "received_at"): "a trigger's request log, newest first",
        ("environment_id", "received_at"): "the request log's retention sweep",
        # Partial: only held requests and replays are in these, so an accepted request skips them.
        ("trigger_id", "held_state", "received_at"): "a trigger's held requests",
        ("replay_of_id",): "a logged request's replays",
    },
    AnalyticsEvent: {
        ("id",): "the primary key",
        ("environment_id", "name", "occurred_at"): "analytics-events reads and the analytics pages",
        ("flow_id", "name", "test"): "a flow's analytics",
    },
}


# The foreign keys of those rows that have no database constraint: a constraint makes every
# insert lock the parent row (FOR KEY SHARE), and concurrent requests of one environment, flow
# and trigger then share those locks as multixacts. Measured under load (bench_webhooks):
# PostgreSQL's CPU per webhook 780-880 µs with them, 630-680 µs without. Deletes still cascade,
# in Django; the fan-out drops an invocation whose flow was deleted while it was accepted.
UNCONSTRAINED_FOREIGN_KEYS = {
    Invocation: {"environment_id", "flow_id"},
    WebhookRequest: {"environment_id", "trigger_id"},
    AnalyticsEvent: {"environment_id", "flow_id"},
}


@pytest.mark.parametrize("model", list(UNCONSTRAINED_FOREIGN_KEYS), ids=lambda model: model.__name__)
def test_the_rows_every_request_writes_lock_no_parent_row(model: type) -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    constrained = {
        column for details in constraints.values() if details["foreign_key"] for column in details["columns"]
    }
    foreign_keys = {field.column for field in model._meta.concrete_fields if field.is_relation}
    assert UNCONSTRAINED_FOREIGN_KEYS[model] <= foreign_keys
    assert constrained == foreign_keys - UNCONSTRAINED_FOREIGN_KEYS[model]


@pytest.mark.parametrize("model", list(WRITTEN_PER_START_INDEXES), ids=lambda model: model.__name__)
def test_the_tables_every_request_writes_keep_only_the_indexes_their_reads_need(model: type) -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    indexed = {
        tuple(details["columns"])
        for details in constraints.values()
        if details["index"] or details["primary_key"] or details["unique"]
    }
    assert indexed == set(WRITTEN_PER_START_INDEXES[model])


def test_an_accepted_webhooks_log_entry_is_in_neither_partial_index() -> None:
    conditions = {index.name: index.condition for index in WebhookRequest._meta.indexes if index.condition}
    assert set(conditions) == {"webhook_requests_held", "webhook_request_replays"}
