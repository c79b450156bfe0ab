"""Reads for triggers, scoped to one environment."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from customers.models import Event
from flows.models import Flow, Invocation
from segments.models import Segment, SegmentMembership
from workbench.models import Environment

from .models import CsvTask, HeldState, Trigger, TriggerMode, TriggerModeChange, TriggerType, WebhookRequest


def trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow).order_by("id")


def _request_count(requests: QuerySet[WebhookRequest]) -> Coalesce:
    """A per-trigger count as a subquery, so each count uses its own index of the request log
    (a join would read every logged request of the trigger once for all of them)."""
    counted = requests.filter(trigger=OuterRef("pk")).order_by().values("trigger").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def trigger_overview_list(*, flow: Flow, since: datetime) -> QuerySet[Trigger]:
    """The flow's triggers for its triggers tab, API first, each with its state at a glance:
    `requests_since` (requests logged since `since`), `held` (held requests), and the newest
    request's `last_request_at`, `last_outcome` and `last_status` (None without requests)."""
    latest = WebhookRequest.objects.filter(trigger=OuterRef("pk")).order_by("-received_at", "-id")
    return (
        Trigger.objects.filter(flow=flow)
        .select_related("environment")
        .annotate(
            requests_since=_request_count(WebhookRequest.objects.filter(received_at__gte=since)),
            held=_request_count(WebhookRequest.objects.filter(held_state=HeldState.HELD)),
            last_request_at=Subquery(latest.values("received_at")[:1]),
            last_outcome=Subquery(latest.values("outcome")[:1]),
            last_status=Subquery(latest.values("status_code")[:1]),
        )
        .order_by("id")
    )


def live_trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    """The flow's triggers a member switched to live (the API trigger's mode is per request)."""
    return Trigger.objects.filter(flow=flow, mode=TriggerMode.LIVE).exclude(type=TriggerType.API).order_by("id")


def paused_trigger_list(*, flow: Flow) -> QuerySet[Trigger]:
    return Trigger.objects.filter(flow=flow, mode=TriggerMode.PAUSED).order_by("id")


def trigger_get(*, environment: Environment, trigger_id: int) -> Trigger:
    trigger = Trigger.objects.filter(environment=environment, pk=trigger_id).select_related("flow").first()
    if trigger is None:
        raise Http404("No such trigger")
    return trigger


def webhook_request_list(*, trigger: Trigger) -> QuerySet[WebhookRequest]:
    """The trigger's request log, newest first."""
    return WebhookRequest.objects.filter(trigger=trigger).order_by("-received_at", "-id")


def webhook_request_get(*, trigger: Trigger, request_id: int) -> WebhookRequest:
    logged = WebhookRequest.objects.filter(trigger=trigger, pk=request_id).first()
    if logged is None:
        raise Http404("No such request")
    return logged


def held_count(*, trigger: Trigger) -> int:
    return WebhookRequest.objects.filter(trigger=trigger, held_state=HeldState.HELD).count()


def mode_change_list(*, trigger: Trigger) -> QuerySet[TriggerModeChange]:
    return TriggerModeChange.objects.filter(trigger=trigger).select_related("changed_by").order_by("-changed_at", "-id")


# --- Segment and event triggers -----------------------------------------------------------
# Segments' own reads (segments.selectors) were being written alongside; these few stay here,
# scoped the same way, until they can be replaced by segment_get / segment_members.


def segment_find(*, environment_id: int, segment_id: object) -> Segment | None:
    """The environment's segment with that id, or None (another environment's, or no number)."""
    if isinstance(segment_id, bool) or not isinstance(segment_id, int | str):
        return None
    try:
        pk = int(segment_id)
    except ValueError:
        return None
    return Segment.objects.filter(environment_id=environment_id, pk=pk).first()


def segment_choices(*, environment: Environment) -> QuerySet[Segment]:
    """The environment's segments with their member counts, for the segment trigger form."""
    return Segment.objects.filter(environment=environment).order_by("name", "id")


def segment_names(*, segment_ids: set[int]) -> dict[int, str]:
    return dict(Segment.objects.filter(pk__in=segment_ids).values_list("pk", "name"))


def current_memberships(*, segment_ids: list[int]) -> QuerySet[SegmentMembership]:
    """The current members of these segments (one row per segment and customer)."""
    return SegmentMembership.objects.filter(segment_id__in=segment_ids, is_member=True)


def member_counts(*, segment_ids: set[int]) -> dict[int, int]:
    """Current members per segment, counted from the ledger (the segment's own count may lag)."""
    rows = (
        SegmentMembership.objects.filter(segment_id__in=segment_ids, is_member=True)
        .order_by()
        .values("segment_id")
        .annotate(n=Count("pk"))
        .values_list("segment_id", "n")
    )
    return dict(rows)


def segment_triggers_of_segments(*, segment_ids: set[int]) -> QuerySet[Trigger]:
    """Segment triggers that may start something for changes of these segments."""
    return (
        Trigger.objects.filter(type=TriggerType.SEGMENT, mode__in=[TriggerMode.TEST, TriggerMode.LIVE])
        .filter(config__segmentId__in=sorted(segment_ids))
        .select_related("flow")
        .order_by("id")
    )


def event_triggers_listening(*, environment_ids: set[int], names: set[str]) -> QuerySet[Trigger]:
    """Event triggers of these environments that may start something for events of these names."""
    return (
        Trigger.objects.filter(
            type=TriggerType.EVENT,
            environment_id__in=sorted(environment_ids),
            mode__in=[TriggerMode.TEST, TriggerMode.LIVE],
        )
        .filter(config__eventName__in=sorted(names))
        .select_related("flow")
        .order_by("id")
    )


def last_event(*, environment_id: int, name: str) -> Event | None:
    """The newest event of that name: an event trigger's sample."""
    return Event.objects.filter(environment_id=environment_id, name=name).order_by("-occurred_at", "-id").first()


def event_names(*, environment: Environment, limit: int = 200) -> list[str]:
    """Names of events the environment has received, for the event trigger form's suggestions."""
    return list(
        Event.objects.filter(environment=environment).order_by("name").values_list("name", flat=True).distinct()[:limit]
    )


def trigger_invocations(*, trigger: Trigger) -> QuerySet[Invocation]:
    """The invocations a trigger started, newest first (the flow's index by creation time)."""
    return Invocation.objects.filter(flow_id=trigger.flow_id, trigger_id=trigger.pk).order_by("-created_at", "-id")


def csv_task_get(*, environment: Environment, task_id: int | str) -> CsvTask:
    """The environment's CSV task; 404 for another environment's or an id that is not a number."""
    try:
        pk = int(task_id)
    except (TypeError, ValueError):
        raise Http404("No such CSV task") from None
    task = CsvTask.objects.filter(environment=environment, pk=pk).select_related("flow", "created_by").first()
    if task is None:
        raise Http404("No such CSV task")
    return task


def csv_task_list(*, environment: Environment, flow: Flow | None = None) -> QuerySet[CsvTask]:
    """The environment's CSV tasks (or one flow's), newest first."""
    tasks = CsvTask.objects.filter(environment=environment)
    if flow is not None:
        tasks = tasks.filter(flow=flow)
    return tasks.select_related("flow", "created_by").order_by("-created_at", "-id")
