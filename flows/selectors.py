"""Reads for flows, invocations, cards and analytics, always scoped to one environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from workbench.models import Environment

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


def flow_for_start(*, environment: Environment, flow_id: int | str, **annotations: Any) -> Flow:
    """flow_get for the start pipeline, in one query: the flow with its latest version.

    The latest version's number and definition come as `start_version_number` and
    `start_version_definition` (None when never published), read by `invocations_accept`
    instead of a query of its own; callers may annotate more (the API trigger's id).
    """
    try:
        pk = int(flow_id)
    except (TypeError, ValueError):
        raise Http404("No such flow") from None
    latest = FlowVersion.objects.filter(flow=OuterRef("pk")).order_by("-number")
    flow = (
        Flow.objects.filter(environment=environment, pk=pk)
        .annotate(
            start_version_number=Subquery(latest.values("number")[:1]),
            start_version_definition=Subquery(latest.values("definition")[:1]),
            **annotations,
        )
        .first()
    )
    if flow is None:
        raise Http404("No such flow")
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


def environment_test_data_counts(*, environment: Environment) -> dict[str, int]:
    """What "Delete test data" would remove: test invocations, runs, cards and events."""
    return {
        "invocations": Invocation.objects.filter(environment=environment, mode=Mode.TEST).count(),
        "runs": FlowRun.objects.filter(environment=environment, test=True).count(),
        "cards": Card.objects.filter(environment=environment, test=True).count(),
        "events": AnalyticsEvent.objects.filter(environment=environment, test=True).count(),
    }
