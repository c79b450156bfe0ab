"""Analytics over time: the series per day, the totals per flow, the period a page is asked
for, the flow's analytics tab, the environment's analytics page, their CSV, and the
overview's recent activity, as each persona sees them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flows import analytics, services
from flows.analytics import Counts, Period, PeriodForm
from flows.models import Flow
from tests.factories import TestUserFactory, flow_started_at

pytestmark = pytest.mark.django_db

# The tests' clock: every page and period is computed on this day.
NOW = datetime(2025, 5, 20, 15, 0, tzinfo=UTC)
TODAY = NOW.date()


def days_ago(days: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), datetime.min.time(), tzinfo=UTC).replace(
        hour=hour, minute=minute
    )


@pytest.fixture(autouse=True)
def _frozen_clock() -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


@pytest.fixture
def tester(env_a):
    return TestUserFactory(environment=env_a, user_id="tess-phone", name="Tess")


@pytest.fixture
def history(flow, tester) -> Flow:
    """The Welcome flow's last week: 3 days ago two live starts (3 users, one run failing),
    yesterday a test, today one live start."""
    flow_started_at(days_ago(3, 9), flow=flow, user_ids=["u1", "u2"])
    flow_started_at(days_ago(3, 23, 59), flow=flow, user_ids=["u3"], failing=["u3"])
    flow_started_at(days_ago(1), flow=flow, user_ids=["tess-phone"], mode="test", source="workbench")
    flow_started_at(days_ago(0, 8), flow=flow, user_ids=["u4"])
    return flow


def show_test_data(environment: Any) -> None:
    services.environment_analytics_setting_set(environment=environment, include_test_data=True)


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def chart_of(response: Any) -> dict[str, Any]:
    match = re.search(r'<script id="analytics-data" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "the page has no chart data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# --- The series ---------------------------------------------------------------------------


def test_a_flows_series_counts_each_day_live_and_test_apart_with_zeros_between(history):
    series = analytics.flow_series(flow=history, period=Period.last_days(7, today=TODAY))

    assert [day.day for day in series.days] == [TODAY - timedelta(days=n) for n in range(6, -1, -1)]
    by_day = {day.day: day for day in series.days}
    assert by_day[TODAY - timedelta(days=3)].live == Counts(invocations=2, runs=3, cards=2, completed=2, failed=1)
    assert by_day[TODAY - timedelta(days=3)].test == Counts()
    assert by_day[TODAY - timedelta(days=2)].live == Counts()  # a quiet day is a zero, not a gap
    assert by_day[TODAY - timedelta(days=1)].test == Counts(invocations=1, runs=1, cards=1, completed=1)
    assert by_day[TODAY].live == Counts(invocations=1, runs=1, cards=1, completed=1)
    assert series.live == Counts(invocations=3, runs=4, cards=3, completed=3, failed=1)
    assert series.test == Counts(invocations=1, runs=1, cards=1, completed=1)


def test_a_day_is_a_utc_day_and_the_period_ends_with_its_last_day(flow):
    flow_started_at(days_ago(2, 23, 59), flow=flow, user_ids=["late"])
    flow_started_at(days_ago(1, 0, 0), flow=flow, user_ids=["early"])
    flow_started_at(days_ago(0, 0, 0), flow=flow, user_ids=["after-the-period"])

    period = Period(first=TODAY - timedelta(days=2), last=TODAY - timedelta(days=1))
    series = analytics.flow_series(flow=flow, period=period)

    assert [(day.day, day.live.invocations) for day in series.days] == [
        (TODAY - timedelta(days=2), 1),
        (TODAY - timedelta(days=1), 1),
    ]


def test_the_series_is_one_query_whatever_the_period(history, env_a, django_assert_num_queries):
    with django_assert_num_queries(1):
        analytics.flow_series(flow=history, period=Period.last_days(7, today=TODAY))
    with django_assert_num_queries(1):
        long = analytics.environment_series(environment=env_a, period=Period.last_days(366, today=TODAY))
    assert len(long.days) == 366


def test_the_environment_counts_every_flow_even_deleted_ones_and_never_another_environments(history, make_flow, env_b):
    other = make_flow(name="Winback")
    flow_started_at(days_ago(2), flow=other, user_ids=["w1"])
    gone = make_flow(name="Old promo")
    flow_started_at(days_ago(2), flow=gone, user_ids=["p1", "p2"])
    services.flow_delete(flow=gone)
    elsewhere = make_flow(name="Globex welcome", environment=env_b)
    flow_started_at(days_ago(2), flow=elsewhere, user_ids=["g1"])

    series = analytics.environment_series(environment=history.environment, period=Period.last_days(7, today=TODAY))

    assert series.live.invocations == 3 + 1 + 1  # the history, Winback, the deleted flow
    assert {day.day: day.live.runs for day in series.days}[TODAY - timedelta(days=2)] == 3


def test_flow_totals_list_the_busiest_first_and_keep_deleted_flows_apart(
    history, env_a, make_flow, django_assert_num_queries
):
    quiet = make_flow(name="A quiet flow")
    archived = make_flow(name="Archived and idle")
    services.flow_archive(flow=archived)
    gone = make_flow(name="Old promo")
    flow_started_at(days_ago(2), flow=gone, user_ids=["p1"])
    services.flow_delete(flow=gone)
    period = Period.last_days(7, today=TODAY)

    with django_assert_num_queries(2):
        totals = analytics.flow_totals(environment=env_a, period=period, modes=["live"])

    assert [(item.name, item.live.invocations) for item in totals] == [
        ("Welcome", 3),
        ("Deleted flows", 1),
        ("A quiet flow", 0),
    ]
    assert totals[2].flow == quiet


# --- The period a page asks for -------------------------------------------------------------


def test_no_period_means_the_last_30_days_and_presets_choose_7_30_or_90():
    form = PeriodForm({}, today=TODAY)
    assert form.is_valid()
    assert form.period() == Period(first=TODAY - timedelta(days=29), last=TODAY, preset=30)

    form = PeriodForm({"days": "90"}, today=TODAY)
    assert form.is_valid()
    assert (form.period().first, form.period().length) == (TODAY - timedelta(days=89), 90)

    form = PeriodForm({"from": "2025-05-01", "to": "2025-05-03"}, today=TODAY)
    assert form.is_valid()
    assert form.period() == Period(first=date(2025, 5, 1), last=date(2025, 5, 3))


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2025-05-10", "to": "2025-05-01"}, "end", "The end date is before the start date."),
        ({"from": "2025-05-10", "to": "2025-05-21"}, "end", "Pick an end date up to today (2025-05-20)."),
        ({"from": "2025-05-10"}, "end", "Pick an end date too."),
        ({"to": "2025-05-10"}, "start", "Pick a start date too."),
        ({"from": "10/05/2025", "to": "2025-05-12"}, "start", "Enter the start date as YYYY-MM-DD."),
        ({"from": "2024-01-01", "to": "2025-05-01"}, "start", "Pick at most 366 days at a time."),
        ({"days": "5"}, "days", "Choose the last 7, 30 or 90 days, or pick dates."),
    ],
)
def test_a_period_that_cannot_be_shown_says_why(query, field, message):
    form = PeriodForm(query, today=TODAY)

    assert not form.is_valid()
    assert form.errors[field] == [message]


# --- The flow's analytics tab ---------------------------------------------------------------


def test_the_flow_tab_shows_totals_and_a_chart_per_measure_from_the_days_numbers(login, viewer, history):
    response = login(viewer).get(f"/e/acme/flows/{history.pk}/analytics/?days=7")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'aria-current="page">Analytics</a>' in page  # the flow's tab bar
    assert "14 May 2025 \u2013 20 May 2025" in page
    assert "UTC days" in page
    chart = chart_of(response)
    assert chart["labels"] == [(TODAY - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    assert chart["modes"] == ["live"]  # the environment leaves test data out by default
    assert chart["values"]["live"]["invocations"] == [0, 0, 0, 2, 0, 0, 1]
    assert chart["values"]["live"]["failed"] == [0, 0, 0, 1, 0, 0, 0]
    for measure in ("invocations", "runs", "cards", "failed"):
        assert f'data-measure="{measure}"' in page
    assert "vendor/chartjs/4.6.1/chart.umd.min.js" in page
    assert "js/analytics.js" in page
    assert f'href="/e/acme/flows/{history.pk}/analytics.csv?days=7"' in page


def test_with_test_data_shown_the_tab_shows_live_and_test_apart_or_one_of_them(login, viewer, history):
    show_test_data(history.environment)
    client = login(viewer)

    both = chart_of(client.get(f"/e/acme/flows/{history.pk}/analytics/?days=7"))
    test_only = chart_of(client.get(f"/e/acme/flows/{history.pk}/analytics/?days=7&mode=test"))

    assert both["modes"] == ["live", "test"]
    assert both["values"]["test"]["invocations"] == [0, 0, 0, 0, 0, 1, 0]
    assert test_only["modes"] == ["test"]
    assert list(test_only["values"]) == ["test"]
    page = client.get(f"/e/acme/flows/{history.pk}/analytics/?days=7&mode=test").content.decode()
    assert f'href="/e/acme/flows/{history.pk}/analytics/?days=30&amp;mode=test"' in page  # a preset keeps the mode
    assert '<input type="hidden" name="mode" value="test">' in page


def test_a_custom_period_is_shown_and_kept_in_the_csv_link(login, editor, history):
    response = login(editor).get(f"/e/acme/flows/{history.pk}/analytics/?from=2025-05-17&to=2025-05-18")

    assert response.status_code == 200
    assert chart_of(response)["labels"] == ["2025-05-17", "2025-05-18"]
    assert "analytics.csv?from=2025-05-17&amp;to=2025-05-18" in response.content.decode()


def test_dates_that_cannot_be_shown_are_refused_with_the_reason_at_the_picker(login, editor, history):
    response = login(editor).get(f"/e/acme/flows/{history.pk}/analytics/?from=2025-05-18&to=2025-05-01")

    assert response.status_code == 400
    page = response.content.decode()
    assert "These dates cannot be shown." in page
    assert "To: The end date is before the start date." in page
    assert re.search(r'id="period-to" name="to"[^>]*value="2025-05-01"', page)  # what was typed stays
    assert "analytics-data" not in page


def test_a_period_without_activity_says_so_and_offers_a_test(login, editor, flow):
    response = login(editor).get(f"/e/acme/flows/{flow.pk}/analytics/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Nothing happened in this period" in page
    assert "Send yourself a test" in page
    assert "analytics-data" not in page


# --- CSV ------------------------------------------------------------------------------------


def test_the_flow_csv_has_a_row_per_day_with_each_measure(login, viewer, history):
    response = login(viewer).get(f"/e/acme/flows/{history.pk}/analytics.csv?from=2025-05-16&to=2025-05-18")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="acme-flow-{history.pk}-2025-05-16-to-2025-05-18.csv"'
    )
    assert csv_rows(response) == [
        ["date", "invocations_live", "runs_live", "cards_live", "completed_live", "failed_live"],
        ["2025-05-16", "0", "0", "0", "0", "0"],
        ["2025-05-17", "2", "3", "2", "2", "1"],
        ["2025-05-18", "0", "0", "0", "0", "0"],
    ]


def test_with_test_data_shown_the_csv_has_each_measure_live_and_test(login, viewer, history):
    show_test_data(history.environment)

    rows = csv_rows(login(viewer).get(f"/e/acme/flows/{history.pk}/analytics.csv?from=2025-05-19&to=2025-05-19"))

    assert rows[0][:5] == ["date", "invocations_live", "invocations_test", "runs_live", "runs_test"]
    assert rows[1][:5] == ["2025-05-19", "0", "1", "0", "1"]


def test_a_csv_of_dates_that_cannot_be_shown_is_refused(login, viewer, history):
    response = login(viewer).get(f"/e/acme/flows/{history.pk}/analytics.csv?from=2025-05-19")

    assert response.status_code == 400
    assert response.content.decode() == "Pick an end date too."


def test_the_flows_csv_keeps_names_a_spreadsheet_would_run_as_text(login, owner, make_flow):
    sneaky = make_flow(name='=HYPERLINK("https://evil.example","Click")')
    flow_started_at(days_ago(1), flow=sneaky, user_ids=["u1"])

    rows = csv_rows(login(owner).get("/e/acme/flows/analytics.csv?days=7&by=flow"))

    assert rows[0][:5] == ["flow_id", "flow", "from", "to", "invocations_live"]
    name = '\'=HYPERLINK("https://evil.example","Click")'
    assert rows[1][:5] == [str(sneaky.pk), name, "2025-05-14", "2025-05-20", "1"]


# --- The environment's analytics page -------------------------------------------------------


def test_the_environment_page_shows_every_flow_with_its_totals_linking_to_its_tab(login, viewer, history, make_flow):
    winback = make_flow(name="Winback")
    flow_started_at(days_ago(2), flow=winback, user_ids=["w1"], failing=["w1"])

    response = login(viewer).get("/e/acme/flows/analytics/?days=7")

    assert response.status_code == 200
    page = response.content.decode()
    assert chart_of(response)["values"]["live"]["invocations"] == [0, 0, 0, 2, 1, 0, 1]
    assert f'href="/e/acme/flows/{history.pk}/analytics/?days=7">Welcome</a>' in page
    assert f'href="/e/acme/flows/{winback.pk}/analytics/?days=7">Winback</a>' in page
    assert page.index(">Welcome</a>") < page.index(">Winback</a>")  # busiest first
    assert 'href="/e/acme/flows/analytics.csv?days=7&amp;by=flow"' in page
    assert 'href="/e/acme/flows/analytics/" aria-current="page">Analytics</a>' in page  # the sidebar


def test_the_environment_csv_has_a_row_per_day(login, viewer, history):
    rows = csv_rows(login(viewer).get("/e/acme/flows/analytics.csv?days=7"))

    assert len(rows) == 1 + 7
    assert rows[4] == ["2025-05-17", "2", "3", "2", "2", "1"]


def test_a_new_environment_page_says_nothing_happened_yet(login, owner):
    page = login(owner).get("/e/acme/flows/analytics/").content.decode()

    assert "Nothing happened in this period" in page
    assert "Go to flows" in page
    assert "show test data too" in page  # owners may include test sends


def test_the_pages_cost_the_same_queries_whatever_the_period_and_the_number_of_flows(login, viewer, history, make_flow):
    client = login(viewer)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    flow_page = queries(f"/e/acme/flows/{history.pk}/analytics/?days=7")
    environment_page = queries("/e/acme/flows/analytics/?days=7")
    for name in ("Second", "Third", "Fourth"):
        flow_started_at(days_ago(1), flow=make_flow(name=name), user_ids=["x"])

    assert queries(f"/e/acme/flows/{history.pk}/analytics/?days=90") == flow_page
    assert queries("/e/acme/flows/analytics/?days=90") == environment_page


# --- The overview's recent activity ----------------------------------------------------------


def test_the_overview_loads_its_recent_activity_from_flows(login, viewer):
    page = login(viewer).get("/e/acme/").content.decode()

    assert 'hx-get="/e/acme/flows/activity-fragment" hx-trigger="load"' in page
    assert "vendor/chartjs/4.6.1/chart.umd.min.js" in page


def test_recent_activity_lists_the_latest_invocations_the_week_and_the_failures(login, viewer, history):
    response = login(viewer).get("/e/acme/flows/activity-fragment", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<tr>") == 1 + 4  # the header and four invocations, test included
    assert (page.count("<td>API</td>"), page.count("<td>Workbench</td>")) == (3, 1)
    assert '<span class="badge test">test</span>' in page
    assert "The card&#x27;s image could not be loaded" in page  # the failed run and why
    assert "<code>u3</code>" in page
    chart = json.loads(re.search(r'<script id="activity-data" type="application/json">(.*?)</script>', page).group(1))
    assert chart["values"]["live"]["invocations"] == [0, 0, 0, 2, 0, 0, 1]


def test_recent_activity_of_a_new_environment_says_how_to_begin(login, editor):
    page = login(editor).get("/e/acme/flows/activity-fragment", HTTP_HX_REQUEST="true").content.decode()

    assert "No activity yet" in page
    assert 'href="/e/acme/flows/new"' in page


def test_the_activity_fragment_alone_is_no_page(login, viewer):
    response = login(viewer).get("/e/acme/flows/activity-fragment")

    assert (response.status_code, response["Location"]) == (302, "/e/acme/")


# --- Who may see them -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "{id}/analytics/",
        "{id}/analytics.csv",
        "analytics/",
        "analytics.csv",
        "analytics.csv?by=flow",
        "activity-fragment",
    ],
)
def test_a_non_member_gets_404(login, outsider, history, path):
    response = login(outsider).get("/e/acme/flows/" + path.format(id=history.pk), HTTP_HX_REQUEST="true")

    assert response.status_code == 404


def test_another_environments_flow_is_not_found_from_ones_own(login, outsider, env_b, history):
    client = login(outsider)

    assert client.get(f"/e/globex/flows/{history.pk}/analytics/").status_code == 404
    assert client.get(f"/e/globex/flows/{history.pk}/analytics.csv").status_code == 404


def test_another_environments_activity_is_not_in_ones_own_pages(login, outsider, env_b, history):
    client = login(outsider)

    page = client.get("/e/globex/flows/activity-fragment", HTTP_HX_REQUEST="true").content.decode()
    rows = csv_rows(client.get("/e/globex/flows/analytics.csv?days=7"))

    assert "No activity yet" in page
    assert all(cell == "0" for row in rows[1:] for cell in row[1:])
