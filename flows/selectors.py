"""Reads for flows, invocations, cards and analytics, always scoped to one environment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from workbench.models import Environment
from workbench.raw_rows import ModelColumns, prepared_cursor

from .models import AnalyticsEvent, Card, Flow, FlowRun, FlowVersion, Invocation, Mode, RunStatus


def flow_list(*, environment: Environment) -> QuerySet[Flow]:
    return Flow.objects.filter(environment=environment).order_by("name", "id")


def flow_get(*, environment: Environment, flow_id: int | str) -> Flow:
    """The environment's flow; 404 for another environment's, or an id that is not a number."""
    try:
        pk = int(flow_id)
    except (TypeError, ValueError):
        raise Http404("No such flow") from None
    flow = Flow.objects.filter(environment=environment, pk=pk).select_related("environment").first()
    if flow is None:
        raise Http404("No such flow")
    return flow


@dataclass(frozen=True)
class FlowStartColumns:
    """The columns and join that read a flow (aliased `f`) with its latest version, for raw
    statements of the start pipeline, here and in the triggers' (the webhook's trigger)."""

    sql: str
    join: str
    flow: ModelColumns[Flow]
    version: ModelColumns[FlowVersion]

    @property
    def width(self) -> int:
        return self.flow.width + self.version.width

    def read(self, row: Sequence[Any], start: int = 0) -> Flow:
        """The flow of `row` (from column `start`) with `start_version_number` and
        `start_version_definition` (None when never published), as `invocations_accept` reads them."""
        flow = self.flow.instance(row, start)
        number, definition = self.version.values(row, start + self.flow.width)
        flow.start_version_number, flow.start_version_definition = number, definition  # type: ignore[attr-defined]
        return flow


@cache
def flow_start_columns() -> FlowStartColumns:
    """Built once from the models' metadata; the latest version is joined on its number, found
    by a correlated subquery (which SQLite runs too)."""
    quote = connection.ops.quote_name
    number = FlowVersion._meta.get_field("number")
    version = ModelColumns.of(FlowVersion, "v", [number, FlowVersion._meta.get_field("definition")])
    flow = ModelColumns.of(Flow, "f")
    version_table, version_flow = quote(FlowVersion._meta.db_table), quote(FlowVersion._meta.get_field("flow").column)
    flow_pk, number_column = quote(Flow._meta.pk.column), quote(number.column)
    join = (  # names from the models' metadata only
        f"LEFT JOIN {version_table} v ON v.{version_flow} = f.{flow_pk} AND v.{number_column} = "  # noqa: S608
        f"(SELECT MAX(w.{number_column}) FROM {version_table} w WHERE w.{version_flow} = f.{flow_pk})"
    )
    return FlowStartColumns(sql=f"{flow.sql}, {version.sql}", join=join, flow=flow, version=version)


@cache
def _start_query(extra_columns: tuple[tuple[str, str], ...]) -> str:
    """The statement of flow_for_start, built once (ORM compilation was a quarter of a start)."""
    quote = connection.ops.quote_name
    columns = flow_start_columns()
    extras = "".join(f", ({expression})" for _, expression in extra_columns)
    # Only names from the models' metadata (and the caller's constant SQL) are formatted in;
    # the environment and the flow id are parameters.
    return (
        f"SELECT {columns.sql}{extras} FROM {quote(Flow._meta.db_table)} f {columns.join} "  # noqa: S608
        f"WHERE f.{quote(Flow._meta.get_field('environment').column)} = %s AND f.{quote(Flow._meta.pk.column)} = %s"
    )


def flow_for_start(
    *, environment: Environment, flow_id: int | str, extra_columns: tuple[tuple[str, str], ...] = ()
) -> Flow:
    """flow_get for the start pipeline, in one prepared statement: the flow with its latest version.

    The latest version's number and definition come as `start_version_number` and
    `start_version_definition` (None when never published), read by `invocations_accept`
    instead of a query of its own. `extra_columns` are (attribute, SQL expression over the
    flow row `f`) pairs read in the same statement (the API trigger's id); constant SQL only.
    """
    try:
        pk = int(flow_id)
    except (TypeError, ValueError):
        raise Http404("No such flow") from None
    with prepared_cursor() as cursor:
        cursor.execute(_start_query(extra_columns), [environment.pk, pk])
        row = cursor.fetchone()
    if row is None:
        raise Http404("No such flow")
    columns = flow_start_columns()
    flow = columns.read(row)
    for (attname, _), value in zip(extra_columns, row[columns.width :], strict=True):
        setattr(flow, attname, value)
    flow.environment = environment  # the filter made sure of it; saves a join
    return flow


def invocations_by_key(*, environment: Environment, flow_invocation_id: str) -> QuerySet[Invocation]:
    """Every invocation of the environment with that key (at most one per flow and mode)."""
    return (
        Invocation.objects.filter(environment=environment, flow_invocation_id=flow_invocation_id)
        .select_related("flow")
        .prefetch_related("runs", "cards")
        .order_by("created_at", "id")
    )


def invocation_get(*, environment: Environment, invocation_id: int) -> Invocation:
    invocation = (
        Invocation.objects.filter(environment=environment, pk=invocation_id)
        .select_related("flow")
        .prefetch_related("runs", "cards")
        .first()
    )
    if invocation is None:
        raise Http404("No such invocation")
    return invocation


def invocation_list(*, environment: Environment, flow: Flow | None = None) -> QuerySet[Invocation]:
    invocations = Invocation.objects.filter(environment=environment).select_related("flow")
    if flow is not None:
        invocations = invocations.filter(flow=flow)
    return invocations.order_by("-created_at", "-id")


def card_feed(*, environment: Environment, user_id: str, test: bool | None = None) -> QuerySet[Card]:
    """A user's feed, newest first; `test` keeps only test (True) or live (False) cards."""
    cards = Card.objects.filter(environment=environment, user_id=user_id)
    if test is not None:
        cards = cards.filter(test=test)
    return cards.order_by("-published_at", "-id")


@dataclass(frozen=True)
class ModeCounts:
    invocations: int
    runs: int
    runs_completed: int
    runs_failed: int
    cards: int


@dataclass(frozen=True)
class FlowStats:
    live: ModeCounts
    test: ModeCounts | None  # None when the environment excludes test data from analytics


def flow_stats(*, flow: Flow) -> FlowStats:
    """Counts of invocations, runs and cards, live and test apart (three queries)."""
    invocations = dict(
        Invocation.objects.filter(flow=flow)
        .values_list("mode")
        .annotate(count=Count("id"))
        .values_list("mode", "count")
    )
    runs = {
        row["test"]: row
        for row in FlowRun.objects.filter(flow=flow)
        .values("test")
        .annotate(
            total=Count("id"),
            completed=Count("id", filter=Q(status=RunStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=RunStatus.FAILED)),
        )
    }
    cards = dict(
        Card.objects.filter(flow=flow).values_list("test").annotate(count=Count("id")).values_list("test", "count")
    )

    def counts(test: bool) -> ModeCounts:
        row = runs.get(test, {})
        return ModeCounts(
            invocations=invocations.get(Mode.TEST if test else Mode.LIVE, 0),
            runs=row.get("total", 0),
            runs_completed=row.get("completed", 0),
            runs_failed=row.get("failed", 0),
            cards=cards.get(test, 0),
        )

    include_test = flow.environment.analytics_include_test_data
    return FlowStats(live=counts(False), test=counts(True) if include_test else None)


def analytics_events(*, environment: Environment, flow: Flow | None = None) -> QuerySet[AnalyticsEvent]:
    events = AnalyticsEvent.objects.filter(environment=environment)
    if flow is not None:
        events = events.filter(flow=flow)
    if not environment.analytics_include_test_data:
        events = events.filter(test=False)
    return events.order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class FlowDeletion:
    """What deleting a flow removes with it, shown before the owner confirms."""

    versions: int
    invocations: int
    cards: int
    triggers: int
    live_webhooks: int  # whose senders get 404 from then on


def flow_deletion_preview(*, flow: Flow) -> FlowDeletion:
    # Triggers are read through the flow's reverse relation: flows does not import triggers.
    triggers = list(flow.triggers.values_list("type", "mode"))
    return FlowDeletion(
        versions=flow.versions.count(),
        invocations=flow.invocations.count(),
        cards=flow.cards.count(),
        triggers=len(triggers),
        live_webhooks=sum(1 for kind, mode in triggers if (kind, mode) == ("webhook", "live")),
    )


def environment_test_data_counts(*, environment: Environment) -> dict[str, int]:
    """What "Delete test data" would remove: test invocations, runs, cards and events."""
    return {
        "invocations": Invocation.objects.filter(environment=environment, mode=Mode.TEST).count(),
        "runs": FlowRun.objects.filter(environment=environment, test=True).count(),
        "cards": Card.objects.filter(environment=environment, test=True).count(),
        "events": AnalyticsEvent.objects.filter(environment=environment, test=True).count(),
    }
