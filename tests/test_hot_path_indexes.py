"""Every live start and webhook writes an invocation, and a webhook also its request log entry
and a `webhook-received` event: each index on those tables is paid for on every request
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
