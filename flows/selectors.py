"""Reads for flows, invocations, cards and analytics, always scoped to one environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
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


@dataclass(frozen=True)
class FlowForStart:
    """What the start pipeline reads of a flow: who it belongs to, whether it may start, and
    the definitions a start would run (the draft for tests, the latest version for live).

    A typed value, made by `flow_for_start` (the ORM) or, on the hot paths, by one prepared
    statement (`triggers.start_reads`); `invocations_accept` takes nothing else.
    """

    id: int
    environment_id: int
    status: str
    draft: dict[str, Any]
    latest_version_number: int | None  # None: never published
    latest_version_definition: dict[str, Any] | None


def flow_for_start(*, flow: Flow) -> FlowForStart:
    """The flow as the start pipeline reads it, with its latest version (one query)."""
    latest = FlowVersion.objects.filter(flow=flow).order_by("-number").values_list("number", "definition").first()
    number, definition = latest if latest is not None else (None, None)
    return FlowForStart(
        id=flow.pk,
        environment_id=flow.environment_id,
        status=flow.status,
        draft=flow.draft,
        latest_version_number=number,
        latest_version_definition=definition,
    )


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


def flow_version_list(*, flow: Flow) -> QuerySet[FlowVersion]:
    """The flow's published versions, newest first, with who published each (one query).

    `flow` comes from `flow_get`, which already checked its environment."""
    return FlowVersion.objects.filter(flow=flow).select_related("published_by").order_by("-number")


def flow_version_get(*, flow: Flow, number: int) -> FlowVersion:
    """One version of the flow by its number; 404 for a number the flow does not have."""
    version = FlowVersion.objects.filter(flow=flow, number=number).select_related("published_by").first()
    if version is None:
        raise Http404("No such version")
    return version


# --- One customer's activity (the customer profile's fragment; members helper) -------------


def run_list_for_user(*, environment: Environment, user_id: str, test: bool) -> QuerySet[FlowRun]:
    """The user's runs of one mode, newest first, with their flow and invocation (one query)."""
    runs = FlowRun.objects.filter(environment=environment, user_id=user_id, test=test)
    return runs.select_related("flow", "invocation").order_by("-created_at", "-id")
