"""Analytics over time: what a flow, or a whole environment, did day by day.

Reads only. The figures come from the analytics events (SPEC section 1), the append-only
record every start, run and card writes: they stay when a flow is deleted (its events keep
their day, with no flow) and go only with "Delete test data". One grouped query per series,
whatever the number of days; days without events are zeros. Days are UTC days (the
Workbench's time zone), and the pages say so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from customers.resources import neutralise_formula
from workbench.models import Environment

from .models import AnalyticsEvent, Flow, FlowRun, FlowStatus, Invocation, Mode, RunStatus

TIME_ZONE_NAME = "UTC"
PRESET_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class Measure:
    key: str  # a field of Counts
    label: str
    event: str  # the analytics event counted


MEASURES = (
    Measure("invocations", "Invocations", "flow-invocation-accepted"),
    Measure("runs", "Runs started", "flow-run-started"),
    Measure("cards", "Cards published", "card-published"),
    Measure("completed", "Runs completed", "flow-run-completed"),
    Measure("failed", "Runs failed", "flow-run-failed"),
)
MEASURE_OF_EVENT = {measure.event: measure.key for measure in MEASURES}


@dataclass(frozen=True)
class Counts:
    """One mode's figures over some stretch of time (a day, or a whole period)."""

    invocations: int = 0
    runs: int = 0
    cards: int = 0
    completed: int = 0
    failed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def of(self, measure: str) -> int:
        value: int = getattr(self, measure)
        return value

    @property
    def is_zero(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


ZERO = Counts()


@dataclass(frozen=True)
class DayCounts:
    day: date
    live: Counts
    test: Counts

    def mode(self, mode: str) -> Counts:
        return self.test if mode == Mode.TEST else self.live


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `first` to `last`, both included."""

    first: date
    last: date
    preset: int | None = None  # the preset it was chosen with (7, 30, 90), if any

    @classmethod
    def last_days(cls, days: int, *, today: date | None = None) -> Period:
        today = today or utc_today()
        return cls(first=today - timedelta(days=days - 1), last=today, preset=days)

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=offset) for offset in range(self.length)]

    def query(self) -> str:
        """The period as a query string, for links that keep it (another page, the CSV)."""
        if self.preset is not None:
            return urlencode({"days": self.preset})
        return urlencode({"from": self.first.isoformat(), "to": self.last.isoformat()})

    def bounds(self) -> tuple[datetime, datetime]:
        """The first instant of the period and the first instant after it."""
        start = datetime.combine(self.first, time.min, tzinfo=UTC)
        return start, start + timedelta(days=self.length)


@dataclass(frozen=True)
class Series:
    """Per-day figures of one period, live and test apart, and their totals."""

    period: Period
    days: tuple[DayCounts, ...]
    live: Counts  # totals
    test: Counts

    def total(self, mode: str) -> Counts:
        return self.test if mode == Mode.TEST else self.live

    def is_empty(self, modes: Iterable[str]) -> bool:
        return all(self.total(mode).is_zero for mode in modes)


def utc_today() -> date:
    return timezone.now().astimezone(UTC).date()


# --- Series -----------------------------------------------------------------------------


def flow_series(*, flow: Flow, period: Period) -> Series:
    """The flow's figures per day of the period (one query)."""
    return _series(AnalyticsEvent.objects.filter(environment_id=flow.environment_id, flow=flow), period)


def environment_series(*, environment: Environment, period: Period) -> Series:
    """The figures of every flow of the environment per day, deleted flows' included (one query)."""
    return _series(AnalyticsEvent.objects.filter(environment=environment), period)


def _in_period(events: QuerySet[AnalyticsEvent], period: Period) -> QuerySet[AnalyticsEvent]:
    start, end = period.bounds()
    # order_by(): the model's default ordering would otherwise join the GROUP BY.
    return events.filter(name__in=MEASURE_OF_EVENT, occurred_at__gte=start, occurred_at__lt=end).order_by()


def _series(events: QuerySet[AnalyticsEvent], period: Period) -> Series:
    rows = (
        _in_period(events, period)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values("day", "name", "test")
        .annotate(count=Count("id"))
    )
    found: dict[tuple[date, bool], dict[str, int]] = {}
    for row in rows:
        found.setdefault((row["day"], row["test"]), {})[MEASURE_OF_EVENT[row["name"]]] = row["count"]
    days = tuple(
        DayCounts(day=day, live=Counts(**found.get((day, False), {})), test=Counts(**found.get((day, True), {})))
        for day in period.dates()
    )
    return Series(
        period=period,
        days=days,
        live=sum((day.live for day in days), ZERO),
        test=sum((day.test for day in days), ZERO),
    )


# --- Totals per flow --------------------------------------------------------------------


@dataclass(frozen=True)
class FlowTotals:
    flow: Flow | None  # None: the events of flows that were deleted since
    live: Counts
    test: Counts

    def total(self, mode: str) -> Counts:
        return self.test if mode == Mode.TEST else self.live

    @property
    def name(self) -> str:
        return self.flow.name if self.flow is not None else "Deleted flows"


def flow_totals(*, environment: Environment, period: Period, modes: Iterable[str]) -> list[FlowTotals]:
    """Each flow's totals over the period, busiest first (two queries).

    Every flow that is not archived is listed, with zeros if it did nothing, so that a
    quiet flow is seen to be quiet; archived flows and deleted ones only if they did something.
    """
    modes = list(modes)
    rows = _in_period(AnalyticsEvent.objects.filter(environment=environment), period).values("flow_id", "name", "test")
    found: dict[tuple[int | None, bool], dict[str, int]] = {}
    for row in rows.annotate(count=Count("id")):
        found.setdefault((row["flow_id"], row["test"]), {})[MEASURE_OF_EVENT[row["name"]]] = row["count"]
    flows: list[Flow | None] = list(Flow.objects.filter(environment=environment).order_by("name", "id"))
    if any(flow_id is None for flow_id, _test in found):
        flows.append(None)
    totals = []
    for flow in flows:
        flow_id = flow.pk if flow is not None else None
        item = FlowTotals(
            flow=flow, live=Counts(**found.get((flow_id, False), {})), test=Counts(**found.get((flow_id, True), {}))
        )
        active = any(not item.total(mode).is_zero for mode in modes)
        if active or (flow is not None and flow.status != FlowStatus.ARCHIVED):
            totals.append(item)
    # Stable sort: among equally busy flows the alphabetical order stays.
    return sorted(totals, key=lambda item: -sum(item.total(mode).invocations for mode in modes))


# --- Recent activity (the environment's overview) -----------------------------------------

# What started an invocation (Invocation.source), as the overview names it.
SOURCE_LABELS = {
    "api": "API",
    "webhook": "Webhook",
    "segment": "Segment",
    "event": "Event",
    "sfmc": "Marketing Cloud",
    "marketo": "Marketo",
    "workbench": "Workbench",
    "csv": "CSV",
    "dashboard": "Customers dashboard",
    "test-sender": "Test sender",
}


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source.replace("_", " ").capitalize())


def recent_invocations(*, environment: Environment, limit: int = 10) -> list[Invocation]:
    """The latest invocations of every flow, newest first, with their flow (one query)."""
    return list(
        Invocation.objects.filter(environment=environment)
        .select_related("flow")
        .defer("request", "definition", "variables", "notification_detail", "metadata", "card_options")
        .order_by("-created_at", "-id")[:limit]
    )


def recent_failed_runs(*, environment: Environment, limit: int = 5) -> list[FlowRun]:
    """The latest failed runs, newest first, with their flow (one query)."""
    return list(
        FlowRun.objects.filter(environment=environment, status=RunStatus.FAILED)
        .select_related("flow")
        .order_by("-finished_at", "-id")[:limit]
    )


# --- Period from a query string -----------------------------------------------------------


class PeriodForm(forms.Form):
    """`?days=7|30|90`, or `?from=YYYY-MM-DD&to=YYYY-MM-DD` (the query's names; `from` is a
    Python keyword, so the form calls them `start` and `end`). No parameters: the last 30 days."""

    days = forms.TypedChoiceField(
        choices=[(str(days), f"Last {days} days") for days in PRESET_DAYS],
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "Choose the last 7, 30 or 90 days, or pick dates."},
    )
    start = forms.DateField(
        required=False, input_formats=["%Y-%m-%d"], error_messages={"invalid": "Enter the start date as YYYY-MM-DD."}
    )
    end = forms.DateField(
        required=False, input_formats=["%Y-%m-%d"], error_messages={"invalid": "Enter the end date as YYYY-MM-DD."}
    )

    def __init__(self, query: Mapping[str, str], *, today: date | None = None) -> None:
        data = {"days": query.get("days", ""), "start": query.get("from", ""), "end": query.get("to", "")}
        super().__init__(data)
        self.today = today or utc_today()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if self.errors or (start is None and end is None):
            return cleaned
        if start is None:
            self.add_error("start", "Pick a start date too.")
        elif end is None:
            self.add_error("end", "Pick an end date too.")
        elif start > end:
            self.add_error("end", "The end date is before the start date.")
        elif end > self.today:
            self.add_error("end", f"Pick an end date up to today ({self.today.isoformat()}).")
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", f"Pick at most {MAX_DAYS} days at a time.")
        return cleaned

    def period(self) -> Period:
        """The chosen period; call after `is_valid()` returned True."""
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if start is not None and end is not None:
            return Period(first=start, last=end, preset=None)
        return Period.last_days(self.cleaned_data.get("days") or DEFAULT_DAYS, today=self.today)


# --- What the pages and the CSV export need ---------------------------------------------


def chart_data(series: Series, modes: Iterable[str]) -> dict[str, Any]:
    """The numbers `static/js/analytics.js` draws, as a JSON-ready dict."""
    modes = list(modes)
    return {
        "labels": [day.day.isoformat() for day in series.days],
        "modes": modes,
        "values": {
            mode: {measure.key: [day.mode(mode).of(measure.key) for day in series.days] for measure in MEASURES}
            for mode in modes
        },
    }


def series_csv(series: Series, modes: Iterable[str]) -> str:
    """One row per day: the date (UTC), then each measure for each mode."""
    modes = list(modes)
    header = ["date"] + [f"{measure.key}_{mode}" for measure in MEASURES for mode in modes]
    rows = [
        [day.day.isoformat()] + [day.mode(mode).of(measure.key) for measure in MEASURES for mode in modes]
        for day in series.days
    ]
    return _csv([header, *rows])


def flow_totals_csv(totals: Iterable[FlowTotals], period: Period, modes: Iterable[str]) -> str:
    """One row per flow: its id and name, the period, then each measure for each mode."""
    modes = list(modes)
    header = ["flow_id", "flow", "from", "to"] + [f"{measure.key}_{mode}" for measure in MEASURES for mode in modes]
    rows = [
        [item.flow.pk if item.flow is not None else "", item.name, period.first.isoformat(), period.last.isoformat()]
        + [item.total(mode).of(measure.key) for measure in MEASURES for mode in modes]
        for item in totals
    ]
    return _csv([header, *rows])


def _csv(rows: list[list[Any]]) -> str:
    """CSV text whose cells a spreadsheet shows as text, never runs as formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([neutralise_formula(cell) for cell in row] for row in rows)
    return out.getvalue()
