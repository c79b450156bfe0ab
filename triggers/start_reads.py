"""The triggers' hot-path reads: what an API start and a webhook request need, each in ONE statement.

Per request the API start needs the flow (in the caller's environment), the flow's latest
version and its API trigger's id; a webhook needs its trigger, the flow and the latest
version. The ORM would take a query each and compile them on every call (a quarter of a
start's time, measured), so each read here is one statement of constant text, built once
from the models' metadata and prepared once per connection (`workbench.raw_rows`).

They return typed values: the flow as `flows.selectors.FlowForStart`, which is all the start
pipeline reads, and the webhook's trigger as a model instance read whole. No SQL text leaves
this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection
from django.http import Http404

from flows.models import Flow, FlowVersion
from flows.selectors import FlowForStart
from workbench.raw_rows import ModelColumns, prepared_cursor

from .models import Trigger, TriggerType


@dataclass(frozen=True)
class ApiStartTarget:
    flow: FlowForStart
    api_trigger_id: int | None  # every flow has one; a flow made without its hooks has none


@dataclass(frozen=True)
class WebhookTarget:
    trigger: Trigger
    flow: FlowForStart


def api_start_target(*, environment_id: int, flow_id: int | str) -> ApiStartTarget:
    """The environment's flow as a start reads it, and its API trigger; 404 for another
    environment's flow or an id that is not a number."""
    try:
        pk = int(flow_id)
    except (TypeError, ValueError):
        raise Http404("No such flow") from None
    sql, flow_columns = _api_start_statement()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [environment_id, pk])
        row = cursor.fetchone()
    if row is None:
        raise Http404("No such flow")
    return ApiStartTarget(flow=flow_columns.read(row), api_trigger_id=row[flow_columns.width])


def webhook_target(*, token: str, trigger_type: str = TriggerType.WEBHOOK) -> WebhookTarget | None:
    """The webhook trigger with this token and its flow as a start reads it, or None. Triggers
    of other types called at a token of theirs (a Marketing Cloud activity) say their type."""
    sql, trigger_columns, flow_columns = _webhook_statement(TriggerType(trigger_type).value)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    return WebhookTarget(trigger=trigger_columns.instance(row), flow=flow_columns.read(row, trigger_columns.width))


@dataclass(frozen=True)
class _FlowColumns:
    """A flow (aliased `f`) and its latest version (aliased `v`), as FlowForStart holds them."""

    flow: ModelColumns[Flow]
    version: ModelColumns[FlowVersion]
    join: str  # the latest version, joined on its number

    @property
    def sql(self) -> str:
        return f"{self.flow.sql}, {self.version.sql}"

    @property
    def width(self) -> int:
        return self.flow.width + self.version.width

    def read(self, row: Sequence[Any], start: int = 0) -> FlowForStart:
        flow_id, environment_id, status, draft = self.flow.values(row, start)
        number, definition = self.version.values(row, start + self.flow.width)
        return FlowForStart(
            id=flow_id,
            environment_id=environment_id,
            status=status,
            draft=draft,
            latest_version_number=number,
            latest_version_definition=definition,
        )


@cache
def _flow_columns() -> _FlowColumns:
    """Built once; the latest version is found by a correlated subquery (SQLite runs it too)."""
    quote = connection.ops.quote_name
    flow_fields = [Flow._meta.get_field(name) for name in ("id", "environment", "status", "draft")]
    version_fields = [FlowVersion._meta.get_field(name) for name in ("number", "definition")]
    version_table = quote(FlowVersion._meta.db_table)
    version_flow = quote(FlowVersion._meta.get_field("flow").column)
    flow_pk, number = quote(Flow._meta.pk.column), quote(FlowVersion._meta.get_field("number").column)
    join = (  # names from the models' metadata only
        f"LEFT JOIN {version_table} v ON v.{version_flow} = f.{flow_pk} AND v.{number} = "  # noqa: S608
        f"(SELECT MAX(w.{number}) FROM {version_table} w WHERE w.{version_flow} = f.{flow_pk})"
    )
    return _FlowColumns(
        flow=ModelColumns.of(Flow, "f", flow_fields),  # type: ignore[arg-type]
        version=ModelColumns.of(FlowVersion, "v", version_fields),  # type: ignore[arg-type]
        join=join,
    )


@cache
def _api_start_statement() -> tuple[str, _FlowColumns]:
    """The flow in its environment, its latest version and its API trigger's id (one per flow,
    a unique constraint, so the join adds no row)."""
    quote = connection.ops.quote_name
    flows, trigger = _flow_columns(), Trigger._meta
    flow_table, flow_pk = quote(Flow._meta.db_table), quote(Flow._meta.pk.column)
    # Only names from the models' metadata and a TriggerType value are formatted in; the
    # environment and the flow id are parameters.
    sql = (
        f"SELECT {flows.sql}, t.{quote(trigger.pk.column)} FROM {flow_table} f {flows.join} "  # noqa: S608
        f"LEFT JOIN {quote(trigger.db_table)} t ON t.{quote(trigger.get_field('flow').column)} = f.{flow_pk} "
        f"AND t.{quote(trigger.get_field('type').column)} = '{TriggerType.API.value}' "
        f"WHERE f.{quote(Flow._meta.get_field('environment').column)} = %s AND f.{flow_pk} = %s"
    )
    return sql, flows


@cache
def _webhook_statement(trigger_type: str) -> tuple[str, ModelColumns[Trigger], _FlowColumns]:
    """The trigger of a token and type, with its flow and the flow's latest version."""
    quote = connection.ops.quote_name
    trigger, flows, meta = ModelColumns.of(Trigger, "t"), _flow_columns(), Trigger._meta
    flow_pk = quote(Flow._meta.pk.column)
    # Only names from the models' metadata and a TriggerType value are formatted in; the token
    # is a parameter.
    kind = TriggerType(trigger_type).value
    sql = (
        f"SELECT {trigger.sql}, {flows.sql} FROM {quote(meta.db_table)} t "  # noqa: S608
        f"JOIN {quote(Flow._meta.db_table)} f ON f.{flow_pk} = t.{quote(meta.get_field('flow').column)} "
        f"{flows.join} WHERE t.{quote(meta.get_field('token').column)} = %s "
        f"AND t.{quote(meta.get_field('type').column)} = '{kind}'"
    )
    return sql, trigger, flows
