"""Reads for flows, invocations, cards and analytics, always scoped to one environment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from customers.models import Event
from workbench.models import Environment

from .definitions import Definition
from .models import AnalyticsEvent, Card, Flow, FlowRun, FlowVersion, Invocation, Mode, RunStatus, empty_definition


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
    draft: Definition
    latest_version_number: int | None  # None: never published
    latest_version_definition: Definition | None

    def definition_run_by(self, mode: str) -> Definition:
        """What a start of `mode` runs: the draft for tests, the latest version for live
        (empty while the flow was never published; the start pipeline refuses those first)."""
        if mode == Mode.TEST:
            return self.draft
        return self.latest_version_definition or empty_definition()


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
        .select_related("flow", "started_by")
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


# --- GET analytics-events: flows' analytics events and customers' custom events, merged -------


@dataclass(frozen=True)
class AnalyticsEventFilters:
    """The filters of GET analytics-events; None is "any"."""

    name: str | None = None
    user_id: str | None = None
    flow_id: int | None = None
    flow_invocation_id: str | None = None
    test: bool | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class AnalyticsEventPosition:
    """Where a page ends, in the list's order (occurredAt, then source, then id, all descending):
    the keyset the next page starts after. Flows' events ("f") sort before custom events ("c")
    of the same instant."""

    occurred_at: datetime
    source: str  # "f": flows.AnalyticsEvent, "c": customers.Event
    pk: int


@dataclass(frozen=True)
class AnalyticsEventItem:
    id: str  # opaque: "f<id>" or "c<id>"
    name: str
    user_id: str
    flow_id: int | None
    flow_invocation_id: str
    test: bool
    properties: dict[str, Any]
    occurred_at: datetime
    position: AnalyticsEventPosition


FLOW_EVENTS, CUSTOM_EVENTS = "f", "c"
_SOURCE_RANK = {FLOW_EVENTS: 1, CUSTOM_EVENTS: 0}


def _after(source: str, position: AnalyticsEventPosition | None) -> Q:
    """Rows of `source` that come after `position` in the merged order."""
    if position is None:
        return Q()
    if position.source == source:
        return Q(occurred_at__lt=position.occurred_at) | Q(occurred_at=position.occurred_at, pk__lt=position.pk)
    if _SOURCE_RANK[source] < _SOURCE_RANK[position.source]:
        return Q(occurred_at__lte=position.occurred_at)  # this source's rows of that instant come later
    return Q(occurred_at__lt=position.occurred_at)


def analytics_event_page(
    *,
    environment: Environment,
    filters: AnalyticsEventFilters,
    after: AnalyticsEventPosition | None = None,
    limit: int = 100,
) -> tuple[list[AnalyticsEventItem], bool]:
    """One page of the environment's analytics events, newest first, and whether more follow.

    1. Read at most limit + 1 of flows' analytics events and as many custom events
       (customers.Event: no flow invocation, never a test; flowId is the flow whose run
       caused it) after `after`, each in the list's order: two indexed, bounded queries.
    2. Merge them and keep the first `limit`.
    """
    fields = ("pk", "name", "user_id", "occurred_at", "properties")
    flow_events = AnalyticsEvent.objects.filter(_after(FLOW_EVENTS, after), environment=environment)
    custom = Event.objects.filter(_after(CUSTOM_EVENTS, after), environment=environment)
    include_custom = filters.test is not True and filters.flow_invocation_id in (None, "")
    if filters.name is not None:
        flow_events, custom = flow_events.filter(name=filters.name), custom.filter(name=filters.name)
    if filters.user_id is not None:
        flow_events, custom = flow_events.filter(user_id=filters.user_id), custom.filter(user_id=filters.user_id)
    if filters.flow_id is not None:
        flow_events = flow_events.filter(flow_id=filters.flow_id)
        custom = custom.filter(source_flow_id=filters.flow_id)
    if filters.flow_invocation_id is not None:
        flow_events = flow_events.filter(flow_invocation_id=filters.flow_invocation_id)
    if filters.test is not None:
        flow_events = flow_events.filter(test=filters.test)
    if filters.since is not None:
        flow_events, custom = (
            flow_events.filter(occurred_at__gte=filters.since),
            custom.filter(occurred_at__gte=filters.since),
        )
    items = [
        AnalyticsEventItem(
            id=f"{FLOW_EVENTS}{pk}",
            name=name,
            user_id=user_id,
            flow_id=flow_id,
            flow_invocation_id=flow_invocation_id,
            test=test,
            properties=properties,
            occurred_at=occurred_at,
            position=AnalyticsEventPosition(occurred_at, FLOW_EVENTS, pk),
        )
        for pk, name, user_id, occurred_at, properties, flow_id, flow_invocation_id, test in flow_events.order_by(
            "-occurred_at", "-pk"
        ).values_list(*fields, "flow_id", "flow_invocation_id", "test")[: limit + 1]
    ]
    if include_custom:
        items += [
            AnalyticsEventItem(
                id=f"{CUSTOM_EVENTS}{pk}",
                name=name,
                user_id=user_id,
                flow_id=source_flow_id,
                flow_invocation_id="",
                test=False,
                properties=properties,
                occurred_at=occurred_at,
                position=AnalyticsEventPosition(occurred_at, CUSTOM_EVENTS, pk),
            )
            for pk, name, user_id, occurred_at, properties, source_flow_id in custom.order_by(
                "-occurred_at", "-pk"
            ).values_list(*fields, "source_flow_id")[: limit + 1]
        ]
    items.sort(key=lambda item: (item.occurred_at, _SOURCE_RANK[item.position.source], item.position.pk), reverse=True)
    return items[:limit], len(items) > limit
