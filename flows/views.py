"""Workbench pages for action flows: list, builder, publish and archive, tests, invocations,
the feed preview, and the environment's analytics and test data settings.

Every view is a thin edge: it reads through `selectors`, writes through `services`, and
picks the template: the whole page, or the partial an htmx request asks for.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers.selectors import testuser_list
from workbench.models import Environment, Role
from workbench.shell import WorkbenchRequest, can_edit, current_membership, environment_page

from . import analytics, hooks, selectors, services, versions
from .forms import (
    BUILDER_LIMITS,
    WAIT_UNITS,
    BuilderState,
    FlowCreateForm,
    SendTestForm,
    new_step_row,
    new_variable_row,
    safe_href,
)
from .models import Card, Flow, FlowStatus, FlowVersion, Mode

INVOCATIONS_PER_PAGE = 50
FEED_LENGTH = 100


def _environment(request: WorkbenchRequest) -> Environment:
    return request.environment


def _user(request: WorkbenchRequest) -> Any:
    return current_membership(request).user


# --- The flows list and a new flow ------------------------------------------------------


@require_GET
@environment_page()
def flow_list(request: WorkbenchRequest) -> HttpResponse:
    environment = _environment(request)
    flows = selectors.flow_list(environment=environment).annotate(
        live_invocations=Count("invocations", filter=Q(invocations__mode=Mode.LIVE)),
        test_invocations=Count("invocations", filter=Q(invocations__mode=Mode.TEST)),
    )
    return render(request, "flows/flow_list.html", {"flows": flows})


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_new(request: WorkbenchRequest) -> HttpResponse:
    environment = _environment(request)
    form = FlowCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        flow = services.flow_create(environment=environment, name=form.cleaned_data["name"], by=_user(request))
        messages.success(
            request, f"“{flow.name}” was created. Add its steps, save, send yourself a test, then publish."
        )
        return redirect("flow_detail", env=environment.slug, flow_id=flow.pk)
    return render(request, "flows/flow_new.html", {"form": form}, status=400 if form.errors else 200)


# --- The flow page's tabs -----------------------------------------------------------------

# The flow page's tabs, in the order of the tab bar: (tab, url name, label). Several apps own
# them (triggers, analytics, versions), so a tab whose URL does not exist yet is left out
# rather than breaking every flow page.
FLOW_TABS: list[tuple[str, str, str]] = [
    ("builder", "flow_detail", "Builder"),
    ("triggers", "flow_triggers", "Triggers"),
    ("testing", "flow_testing", "Testing"),
    ("activity", "flow_activity", "Activity"),
    ("analytics", "flow_analytics", "Analytics"),
    ("versions", "flow_versions", "Versions"),
]
RECENT_INVOCATIONS = 10


def _flow_url(url_name: str, flow: Flow) -> str | None:
    """The URL of one of the flow's pages, or None while no app provides it yet."""
    try:
        return reverse(url_name, args=(flow.environment.slug, flow.pk))
    except NoReverseMatch:
        return None


def flow_tab_context(request: WorkbenchRequest, flow: Flow, *, tab: str) -> dict[str, Any]:
    """What `flows/_flow_layout.html` needs: the flow, the tab bar with `tab` active, the
    member's rights and the header's state line. Every tab's view starts its context here."""
    tabs = [
        {"key": key, "label": label, "url": url, "active": key == tab}
        for key, url_name, label in FLOW_TABS
        if (url := _flow_url(url_name, flow)) is not None
    ]
    latest = services.flow_latest_version(flow=flow)
    membership = current_membership(request)
    return {
        "flow": flow,
        "tab": tab,
        "tab_label": next((label for key, _name, label in FLOW_TABS if key == tab), ""),
        "tabs": tabs,
        "can_edit": can_edit(request),
        "is_owner": membership.has_role(Role.OWNER),
        "draft_differs": latest is not None and latest.definition != flow.draft,
        "live_triggers_url": _flow_url("flow_triggers_live_summary", flow),
    }


# --- The builder tab --------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@environment_page()
def flow_detail(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The flow page's builder tab. A POST (editors) either edits the rows or saves the draft.

    1. `op=save` (also pressing Enter): save through `flow_update`; on success redirect,
       on refusal show the page again with each error next to its field.
    2. Any other op (add, remove, move a row) changes the rows without saving; htmx asks
       for the builder alone, a browser without JavaScript gets the whole page.
    """
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    if request.method == "GET":
        return _render_flow_page(request, flow, BuilderState.from_definition(flow.name, flow.draft))
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot change flows.")
    state = BuilderState.from_post(request.POST)
    op = request.POST.get("op", "save")
    if op != "save":
        state.apply(op)
        if request.htmx:
            return render(request, "flows/_builder.html", _builder_context(request, flow, state, unsaved=True))
        return _render_flow_page(request, flow, state, unsaved=True)
    name = state.name.strip()
    if not name:
        state.attach_errors({"name": ["Give the flow a name."]})
    else:
        try:
            services.flow_update(
                flow=flow, name=name, variables=state.variables_definition(), steps=state.steps_definition()
            )
        except services.FlowRefused as refused:
            state.attach_errors(refused.errors or {"form": [refused.detail]})
        else:
            messages.success(request, "Draft saved. Send yourself a test, or publish it when it is ready.")
            return redirect("flow_detail", env=flow.environment.slug, flow_id=flow.pk)
    return _render_flow_page(request, flow, state, unsaved=True, status=400)


@require_POST
@environment_page(Role.EDITOR)
def flow_preview(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The cards of the posted (unsaved) draft, rendered with the variables' defaults."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    state = BuilderState.from_post(request.POST)
    return render(request, "flows/_preview.html", {"flow": flow, "preview": state.preview_timeline()})


def _builder_context(request: WorkbenchRequest, flow: Flow, state: BuilderState, *, unsaved: bool) -> dict[str, Any]:
    editable = can_edit(request) and flow.status != FlowStatus.ARCHIVED
    return {
        "flow": flow,
        "state": state,
        "editable": editable,
        "unsaved": unsaved,
        "wait_units": WAIT_UNITS,
        "preview": state.preview_timeline(),
        "limits": BUILDER_LIMITS,
        "new_rows": {"variable": new_variable_row(), "card": new_step_row("card"), "wait": new_step_row("wait")},
    }


def _render_flow_page(
    request: WorkbenchRequest, flow: Flow, state: BuilderState, *, unsaved: bool = False, status: int = 200
) -> HttpResponse:
    context = {
        **flow_tab_context(request, flow, tab="builder"),
        **_builder_context(request, flow, state, unsaved=unsaved),
    }
    return render(request, "flows/flow_detail.html", context, status=status)


def flow_api_trigger(request: WorkbenchRequest, flow: Flow) -> dict[str, Any]:
    """The flow's API trigger, for the triggers tab: every flow has one, it cannot be removed,
    and it needs only the flow's id (flows never imports the triggers app, which shows it).

    Returns the absolute live and test start URLs, the token URL and a curl example whose
    body holds the draft's variables (their defaults, or `<name>`).
    """
    environment = flow.environment
    start_url = request.build_absolute_uri(f"/api/v1/{environment.slug}/action-flow/{flow.pk}/start")
    test_url = request.build_absolute_uri(f"/api/v1/{environment.slug}/action-flow/{flow.pk}/test")
    token_url = request.build_absolute_uri(reverse("oauth2_provider:token"))
    example_variables = {
        variable["name"]: variable["default"] if variable.get("default") is not None else f"<{variable['name']}>"
        for variable in flow.draft.get("variables", [])
    }
    body = json.dumps({"targetUserIds": ["<userId>"], "variables": example_variables}, ensure_ascii=False)
    curl = (
        "# 1. A token for an API credential with the events role (valid one hour)\n"
        'TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials '
        f"{shlex.quote(token_url)} \\\n"
        "  | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n\n"
        "# 2. Start the flow (use the /test URL to reach test users only)\n"
        f"curl -X POST {shlex.quote(start_url)} \\\n"
        '  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )
    return {"start_url": start_url, "test_url": test_url, "token_url": token_url, "curl": curl}


# --- The testing tab ----------------------------------------------------------------------


@require_GET
@environment_page()
def flow_testing(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    return _render_testing(request, flow)


def _render_testing(
    request: WorkbenchRequest,
    flow: Flow,
    form: SendTestForm | None = None,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        **flow_tab_context(request, flow, tab="testing"),
        "send_test": _send_test_context(request, flow, form),
        "send_error": error,
    }
    return render(request, "flows/flow_testing.html", context, status=status)


def _send_test_context(request: WorkbenchRequest, flow: Flow, form: SendTestForm | None = None) -> dict[str, Any]:
    test_users = list(testuser_list(environment=_environment(request)))
    own = next((t for t in test_users if t.membership_id == current_membership(request).pk), None)
    if form is None:
        form = SendTestForm(
            initial={"user_ids": [own.user_id] if own else []},
            test_user_ids=[t.user_id for t in test_users],
            variables=flow.draft.get("variables", []),
        )
    # A form sent back keeps the member's choice, even a refused one.
    chosen = form["user_ids"].value() or []
    return {"form": form, "test_users": test_users, "own": own, "chosen": chosen}


# --- The activity tab -------------------------------------------------------------------


@require_GET
@environment_page()
def flow_activity(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Recent invocations and the flow's totals; the analytics tab draws them over time."""
    environment = _environment(request)
    flow = selectors.flow_get(environment=environment, flow_id=flow_id)
    stats = selectors.flow_stats(flow=flow)
    context = {
        **flow_tab_context(request, flow, tab="activity"),
        "stats": stats,
        "totals": _totals(stats),
        "recent_invocations": selectors.invocation_list(environment=environment, flow=flow)[:RECENT_INVOCATIONS],
        "analytics_url": _flow_url("flow_analytics", flow),
    }
    return render(request, "flows/flow_activity.html", context)


def _totals(stats: selectors.FlowStats) -> list[tuple[str, int, int | None]]:
    """The five figures of the activity tab: (label, live, test or None when test data is hidden)."""
    figures = [
        ("Invocations", "invocations"),
        ("Runs", "runs"),
        ("Completed", "runs_completed"),
        ("Failed", "runs_failed"),
        ("Cards published", "cards"),
    ]
    return [
        (label, getattr(stats.live, name), getattr(stats.test, name) if stats.test else None) for label, name in figures
    ]


# --- Publish, archive, send a test ------------------------------------------------------


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_publish(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """GET: the difference between the live version and the draft, to confirm (the partial
    alone when the confirmation dialog asks with htmx). POST: publish the saved draft."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    error, status = None, 200
    if request.method == "POST":
        start_members = request.POST.get("trigger_existing_segment_members") == "on"
        try:
            result = services.flow_publish(flow=flow, by=_user(request), trigger_existing_segment_members=start_members)
        except services.FlowRefused as refused:
            error, status = refused.detail, refused.status
        else:
            messages.success(request, _published_message(result, start_members))
            return redirect("flow_detail", env=flow.environment.slug, flow_id=flow.pk)
    latest = services.flow_latest_version(flow=flow)
    # Customers already in the segments of `entered` triggers (told by the triggers app).
    preview = hooks.PublishPreview()
    if flow.status != FlowStatus.ARCHIVED:
        hooks.publish_previewed.announce(flow=flow, preview=preview)
    before = latest.definition if latest else None
    context = {
        "flow": flow,
        "latest": latest,
        "next_number": latest.number + 1 if latest else 1,
        "nothing_to_publish": latest is not None and latest.definition == flow.draft,
        "diff": versions.definition_diff(before, flow.draft),
        "json_lines": versions.json_line_diff(before, flow.draft),
        "error": error,
        "existing_members": preview.existing_segment_members,
    }
    template = "flows/_publish_confirm.html" if request.htmx else "flows/flow_publish.html"
    return render(request, template, context, status=status)


def _published_message(result: services.PublishResult, start_members: bool) -> str:
    """What publishing did, said after it: the version, and the segment members it started."""
    message = f"Version {result.version.number} published. Live starts now use it."
    if not start_members or not result.existing_segment_members:
        return message
    started, queued = result.existing_segment_members_started, result.existing_segment_members_queued
    if queued:
        return f"{message} {queued:,} customers already in the segment are being started in the background."
    if started:
        return f"{message} Started it for {started:,} customer{'s' if started != 1 else ''} already in the segment."
    return f"{message} No customer already in the segment was started (each one starts at most once)."


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_archive(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    if request.method == "POST":
        services.flow_archive(flow=flow)
        messages.success(request, f"“{flow.name}” is archived; it starts nothing any more.")
        return redirect("flow_detail", env=flow.environment.slug, flow_id=flow.pk)
    template = "flows/_archive_confirm.html" if request.htmx else "flows/flow_archive.html"
    return render(request, template, {"flow": flow})


@require_http_methods(["GET", "POST"])
@environment_page(Role.OWNER)
def flow_delete(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Deleting removes the flow with its history; the page says what goes before it is done."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    if request.method == "POST":
        name = flow.name
        services.flow_delete(flow=flow)
        messages.success(request, f"“{name}” and everything it recorded are deleted.")
        return redirect("flow_list", env=_environment(request).slug)
    removed = selectors.flow_deletion_preview(flow=flow)
    template = "flows/_delete_confirm.html" if request.htmx else "flows/flow_delete.html"
    return render(request, template, {"flow": flow, "removed": removed})


def _refusal_text(refused: services.FlowRefused) -> str:
    """A refused start as one sentence: its detail, then each field's problem."""
    details = [message for errors in (refused.errors or {}).values() for message in errors]
    return " ".join([refused.detail, *details])


@require_POST
@environment_page(Role.EDITOR)
def flow_send_test(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Start the saved draft as a test for the chosen test users, then open the invocation;
    a refusal shows the testing tab again with each problem at its field."""
    environment = _environment(request)
    flow = selectors.flow_get(environment=environment, flow_id=flow_id)
    form = SendTestForm(
        request.POST,
        test_user_ids=[t.user_id for t in testuser_list(environment=environment)],
        variables=flow.draft.get("variables", []),
    )
    if not form.is_valid():
        return _render_testing(request, flow, form, status=400)
    try:
        outcome = services.flow_test_send(flow=flow, start_request=form.start_request(), by=request.membership.user)
    except services.FlowRefused as refused:
        return _render_testing(request, flow, form, error=_refusal_text(refused), status=refused.status)
    messages.success(request, f"Test sent to {', '.join(form.cleaned_data['user_ids'])}.")
    return redirect("flow_invocation_detail", env=environment.slug, invocation_id=outcome.invocation_id)


# --- Invocations ------------------------------------------------------------------------


@require_GET
@environment_page()
def flow_invocations(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    environment = _environment(request)
    flow = selectors.flow_get(environment=environment, flow_id=flow_id)
    paginator = Paginator(selectors.invocation_list(environment=environment, flow=flow), INVOCATIONS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    context = {**flow_tab_context(request, flow, tab="activity"), "page": page}
    return render(request, "flows/invocation_list.html", context)


@require_GET
@environment_page()
def flow_invocation_detail(request: WorkbenchRequest, invocation_id: int) -> HttpResponse:
    invocation = selectors.invocation_get(environment=_environment(request), invocation_id=invocation_id)
    context = {
        "invocation": invocation,
        "source": analytics.source_label(invocation.source),
        "runs": list(invocation.runs.all()),
        "cards": [_card_view(card) for card in invocation.cards.all()],
        "request_json": json.dumps(invocation.request, indent=2, ensure_ascii=False),
        "variables_json": json.dumps(invocation.variables, indent=2, ensure_ascii=False),
    }
    return render(request, "flows/invocation_detail.html", context)


# --- The feed preview -------------------------------------------------------------------


@require_GET
@environment_page()
def flow_feed(request: WorkbenchRequest) -> HttpResponse:
    """A user's cards the way an app shows them; by default the member's own test user."""
    environment = _environment(request)
    user_id = request.GET.get("user", "").strip()
    own = testuser_list(environment=environment).filter(membership=current_membership(request)).first()
    if not user_id and own is not None:
        user_id = own.user_id
    test = {"true": True, "false": False}.get(request.GET.get("test", "").lower())
    cards = []
    if user_id:
        cards = [_card_view(card) for card in selectors.card_feed(environment=environment, user_id=user_id, test=test)]
    context = {
        "feed_user": user_id,
        "test": test,
        "cards": cards[:FEED_LENGTH],
        "own": own,
        "is_test_user": bool(user_id) and testuser_list(environment=environment).filter(user_id=user_id).exists(),
    }
    return render(request, "flows/feed.html", context)


def _card_view(card: Card) -> dict[str, Any]:
    """A card with hrefs only for web and app links (a variable could hold javascript:)."""
    return {
        "card": card,
        "title": card.title,
        "body": card.body,
        "test": card.test,
        "published_at": card.published_at,
        "actions": [{**action, "href": safe_href(action.get("url", ""))} for action in card.actions],
    }


# --- The environment's analytics and test data settings (owners) -------------------------


@require_GET
@environment_page(Role.OWNER)
def flow_settings(request: WorkbenchRequest) -> HttpResponse:
    return render(request, "flows/settings.html", {"test_data": _test_data_counts(_environment(request))})


@require_POST
@environment_page(Role.OWNER)
def flow_analytics_setting(request: WorkbenchRequest) -> HttpResponse:
    environment = _environment(request)
    include = request.POST.get("include_test_data") == "on"
    services.environment_analytics_setting_set(environment=environment, include_test_data=include)
    if include:
        messages.success(request, "Analytics now show test data too, apart from live data.")
    else:
        messages.success(request, "Analytics now show live data only.")
    return redirect("flow_settings", env=environment.slug)


@require_http_methods(["GET", "POST"])
@environment_page(Role.OWNER)
def flow_test_data_delete(request: WorkbenchRequest) -> HttpResponse:
    """GET: what would be deleted, to confirm. POST: delete it."""
    environment = _environment(request)
    if request.method == "POST":
        deleted = services.environment_test_data_delete(environment=environment)
        messages.success(
            request,
            f"Deleted {deleted.invocations} test invocation(s), {deleted.cards} test card(s) "
            f"and {deleted.events} test analytics event(s).",
        )
        return redirect("flow_settings", env=environment.slug)
    template = "flows/_test_data_delete_confirm.html" if request.htmx else "flows/test_data_delete.html"
    return render(request, template, {"test_data": _test_data_counts(environment)})


def _test_data_counts(environment: Environment) -> dict[str, int]:
    return selectors.environment_test_data_counts(environment=environment)


# --- Analytics over time: a flow's tab, the environment's page, the overview's activity ---

# The modes a page may show (`?mode=`), when the environment counts test data at all.
ANALYTICS_MODES: dict[str, tuple[str, ...]] = {
    "both": (Mode.LIVE.value, Mode.TEST.value),
    "live": (Mode.LIVE.value,),
    "test": (Mode.TEST.value,),
}
ANALYTICS_MODE_LABELS = {"both": "Live and test", "live": "Live", "test": "Test"}
ACTIVITY_DAYS = 7


def _analytics_modes(request: WorkbenchRequest) -> tuple[str, list[str]]:
    """The chosen `?mode=` and its modes; live only while the environment leaves test data
    out of analytics (its owners' setting)."""
    if not _environment(request).analytics_include_test_data:
        return "live", [Mode.LIVE.value]
    choice = request.GET.get("mode", "both")
    if choice not in ANALYTICS_MODES:
        choice = "both"
    return choice, list(ANALYTICS_MODES[choice])


def _analytics_context(
    request: WorkbenchRequest, form: analytics.PeriodForm, series: analytics.Series | None, *, page_url: str
) -> dict[str, Any]:
    """What `flows/_analytics_body.html` shows: the period picker, the mode switch, the totals,
    a chart per measure and the numbers by day (or the form's errors, with no series)."""
    mode, modes = _analytics_modes(request)
    include_test = _environment(request).analytics_include_test_data
    period = series.period if series is not None else analytics.Period.last_days(analytics.DEFAULT_DAYS)
    # Links keep a chosen mode; "both" is the default, and without test data there is no choice.
    mode_query = f"&mode={mode}" if include_test and mode != "both" else ""
    context: dict[str, Any] = {
        "period_form": form,
        "series": series,
        "period": period,
        "modes": modes,
        "today": form.today,
        "include_test": include_test,
        "time_zone": analytics.TIME_ZONE_NAME,
        "measures": analytics.MEASURES,
        "charted_measures": [m for m in analytics.MEASURES if m.key != "completed"],
        "presets": [
            {"days": days, "url": f"{page_url}?days={days}{mode_query}", "current": period.preset == days}
            for days in analytics.PRESET_DAYS
        ],
        "mode_options": [
            {"label": label, "url": f"{page_url}?{period.query()}&mode={key}", "current": key == mode}
            for key, label in ANALYTICS_MODE_LABELS.items()
        ],
        "mode": mode,
        "mode_query": mode_query,
    }
    if series is not None:
        context |= {
            "empty": series.is_empty(modes),
            "chart": analytics.chart_data(series, modes),
            "totals": [
                {"measure": m, "values": [{"mode": mode, "value": series.total(mode).of(m.key)} for mode in modes]}
                for m in analytics.MEASURES
            ],
            "day_rows": [
                {"day": day.day, "values": [day.mode(mode).of(m.key) for m in analytics.MEASURES for mode in modes]}
                for day in reversed(series.days)
            ],
        }
    return context


def _period_from(request: WorkbenchRequest) -> tuple[analytics.PeriodForm, analytics.Period | None]:
    form = analytics.PeriodForm(request.GET)
    return form, form.period() if form.is_valid() else None


def _csv_download(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _period_refused(form: analytics.PeriodForm) -> HttpResponse:
    errors = [str(error) for field_errors in form.errors.values() for error in field_errors]
    return HttpResponse(" ".join(errors), status=400, content_type="text/plain; charset=utf-8")


@require_GET
@environment_page()
def flow_analytics(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The flow's analytics tab: its figures per day over a period, live and test apart."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    form, period = _period_from(request)
    series = analytics.flow_series(flow=flow, period=period) if period is not None else None
    page_url = reverse("flow_analytics", args=(flow.environment.slug, flow.pk))
    context = {
        **flow_tab_context(request, flow, tab="analytics"),
        **_analytics_context(request, form, series, page_url=page_url),
        "csv_url": reverse("flow_analytics_csv", args=(flow.environment.slug, flow.pk)),
    }
    return render(request, "flows/analytics_flow.html", context, status=200 if series is not None else 400)


@require_GET
@environment_page()
def flow_analytics_csv(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The flow's figures per day as CSV (`?from=&to=` or `?days=`), each measure per mode."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    form, period = _period_from(request)
    if period is None:
        return _period_refused(form)
    _mode, modes = _analytics_modes(request)
    series = analytics.flow_series(flow=flow, period=period)
    filename = f"{flow.environment.slug}-flow-{flow.pk}-{period.first}-to-{period.last}.csv"
    return _csv_download(analytics.series_csv(series, modes), filename)


@require_GET
@environment_page()
def environment_analytics(request: WorkbenchRequest) -> HttpResponse:
    """Every flow's figures per day over a period, and each flow's totals."""
    environment = _environment(request)
    form, period = _period_from(request)
    series = analytics.environment_series(environment=environment, period=period) if period is not None else None
    page_url = reverse("environment_analytics", args=(environment.slug,))
    context = _analytics_context(request, form, series, page_url=page_url)
    context["csv_url"] = reverse("environment_analytics_csv", args=(environment.slug,))
    if series is not None:
        modes = context["modes"]
        totals = analytics.flow_totals(environment=environment, period=series.period, modes=modes)
        context["flow_rows"] = [
            {
                "item": item,
                "cells": [
                    [{"mode": mode, "value": item.total(mode).of(m.key)} for mode in modes] for m in analytics.MEASURES
                ],
            }
            for item in totals
        ]
    return render(request, "flows/analytics_environment.html", context, status=200 if series is not None else 400)


@require_GET
@environment_page()
def environment_analytics_csv(request: WorkbenchRequest) -> HttpResponse:
    """The environment's figures per day as CSV, or with `?by=flow` each flow's totals."""
    environment = _environment(request)
    form, period = _period_from(request)
    if period is None:
        return _period_refused(form)
    _mode, modes = _analytics_modes(request)
    if request.GET.get("by") == "flow":
        totals = analytics.flow_totals(environment=environment, period=period, modes=modes)
        filename = f"{environment.slug}-flows-{period.first}-to-{period.last}.csv"
        return _csv_download(analytics.flow_totals_csv(totals, period, modes), filename)
    series = analytics.environment_series(environment=environment, period=period)
    filename = f"{environment.slug}-analytics-{period.first}-to-{period.last}.csv"
    return _csv_download(analytics.series_csv(series, modes), filename)


@require_GET
@environment_page()
def environment_activity(request: WorkbenchRequest) -> HttpResponse:
    """The overview's recent activity, a fragment the environment's home page loads with htmx
    (customers, which serves that page, does not import flows): the latest invocations, the
    last 7 days of invocations and the latest failed runs."""
    environment = _environment(request)
    if not request.htmx:
        return redirect("environment_home", env=environment.slug)
    _mode, modes = _analytics_modes(request)
    series = analytics.environment_series(environment=environment, period=analytics.Period.last_days(ACTIVITY_DAYS))
    invocations = analytics.recent_invocations(environment=environment)
    context = {
        "invocations": [
            {"invocation": invocation, "source": analytics.source_label(invocation.source)}
            for invocation in invocations
        ],
        "failed_runs": analytics.recent_failed_runs(environment=environment),
        "series": series,
        "modes": modes,
        "week": [{"mode": mode, "invocations": series.total(mode).invocations} for mode in modes],
        "chart": analytics.chart_data(series, modes),
        "activity_days": ACTIVITY_DAYS,
    }
    return render(request, "flows/_activity_overview.html", context)


# --- Versions: the history, one version, restoring it into the draft ----------------------


@dataclass(frozen=True)
class VersionEntry:
    """A version as the history shows it: with its difference to the version before it."""

    version: FlowVersion
    diff: versions.DefinitionDiff
    live: bool
    is_draft: bool  # the draft is the same as this version: restoring it would change nothing


def _version_entries(flow: Flow, history: list[FlowVersion]) -> list[VersionEntry]:
    """`history` newest first; each entry's diff is against the next older version."""
    live_number = flow.published_version if flow.status == FlowStatus.PUBLISHED else None
    entries = []
    for index, version in enumerate(history):
        older = history[index + 1] if index + 1 < len(history) else None
        diff = versions.definition_diff(older.definition if older else None, version.definition)
        entries.append(
            VersionEntry(
                version=version,
                diff=diff,
                live=version.number == live_number,
                is_draft=version.definition == flow.draft,
            )
        )
    return entries


@require_GET
@environment_page()
def flow_versions(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The versions tab: every published version, newest first, each with who published it,
    when, and what changed since the one before; above them, the draft's unpublished changes."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    history = list(selectors.flow_version_list(flow=flow))
    latest = history[0] if history else None
    draft_diff = versions.definition_diff(latest.definition, flow.draft) if latest else None
    context = {
        **flow_tab_context(request, flow, tab="versions"),
        "entries": _version_entries(flow, history),
        "draft_diff": draft_diff if draft_diff is not None and not draft_diff.is_empty else None,
        "latest": latest,
    }
    return render(request, "flows/versions.html", context)


@require_GET
@environment_page()
def flow_version_detail(request: WorkbenchRequest, flow_id: int, number: int) -> HttpResponse:
    """One version: its cards as the preview shows them, and its difference to the one before."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    version = selectors.flow_version_get(flow=flow, number=number)
    older = selectors.flow_version_list(flow=flow).filter(number__lt=number).first()
    before = older.definition if older else None
    entry = _version_entries(flow, [version, older] if older else [version])[0]
    context = {
        **flow_tab_context(request, flow, tab="versions"),
        "entry": entry,
        "older": older,
        "json_lines": versions.json_line_diff(before, version.definition),
        "preview": BuilderState.from_definition(flow.name, version.definition).preview_timeline(),
    }
    return render(request, "flows/version_detail.html", context)


@require_POST
@environment_page(Role.EDITOR)
def flow_version_restore(request: WorkbenchRequest, flow_id: int, number: int) -> HttpResponse:
    """Copy a version into the draft (the live version stays live until the next publish),
    then open the builder on it."""
    flow = selectors.flow_get(environment=_environment(request), flow_id=flow_id)
    version = selectors.flow_version_get(flow=flow, number=number)
    try:
        result = services.flow_draft_restore(flow=flow, version_number=version.number, by=_user(request))
    except services.FlowRefused as refused:
        messages.error(request, refused.detail)
        return redirect("flow_version_detail", env=flow.environment.slug, flow_id=flow.pk, number=version.number)
    if not result.changed:
        messages.info(request, f"The draft already is version {version.number}; nothing changed.")
    else:
        messages.success(request, f"Version {version.number} restored into the draft; publish to make it live.")
    return redirect("flow_detail", env=flow.environment.slug, flow_id=flow.pk)


# --- One customer's flow activity, for the customer profile (customers cannot import flows) --

CUSTOMER_RUNS_SHOWN = 20
CUSTOMER_CARDS_SHOWN = 10


@require_GET
@environment_page()
def customer_flow_activity(request: WorkbenchRequest, user_id: str) -> HttpResponse:
    """The fragment the customer profile loads: the user's runs and cards, live and test apart,
    and for a test user a "Send a test" form (editors); `?flow=` picks the flow to send."""
    flow_id = request.GET.get("flow", "")
    return _render_customer_activity(request, user_id, flow_id=flow_id)


@require_POST
@environment_page(Role.EDITOR)
def customer_send_test(request: WorkbenchRequest, user_id: str) -> HttpResponse:
    """Start the chosen flow's saved draft as a test for this test user, as the flow's testing
    tab does. htmx gets the activity fragment back (the new run in it, or the problems at their
    fields); a plain form post goes back to the profile."""
    environment = _environment(request)
    flow = selectors.flow_get(environment=environment, flow_id=request.POST.get("flow", ""))
    test_user_ids = [t.user_id for t in testuser_list(environment=environment).filter(user_id=user_id)]
    form = SendTestForm(request.POST, test_user_ids=test_user_ids, variables=flow.draft.get("variables", []))
    error = ""
    if form.is_valid():
        try:
            outcome = services.flow_test_send(flow=flow, start_request=form.start_request(), by=request.membership.user)
        except services.FlowRefused as refused:
            error = _refusal_text(refused)
        else:
            sent = {"flow": flow, "invocation_id": outcome.invocation_id}
            if request.htmx:
                return _render_customer_activity(request, user_id, flow_id=str(flow.pk), sent=sent)
            messages.success(request, f"Test of “{flow.name}” sent to {user_id}.")
            return redirect("customer_detail", env=environment.slug, user_id=user_id)
    else:
        error = " ".join(str(message) for messages_ in form.errors.values() for message in messages_)
    if request.htmx:
        return _render_customer_activity(request, user_id, flow_id=str(flow.pk), form=form, error=error)
    messages.error(request, f"Test not sent. {error}")
    return redirect(reverse("customer_detail", kwargs={"env": environment.slug, "user_id": user_id}) + "#activity")


def _render_customer_activity(
    request: WorkbenchRequest,
    user_id: str,
    *,
    flow_id: str = "",
    form: SendTestForm | None = None,
    error: str = "",
    sent: dict[str, Any] | None = None,
) -> HttpResponse:
    environment = _environment(request)
    is_test_user = testuser_list(environment=environment).filter(user_id=user_id).exists()
    modes = []
    for test, label in ((False, "Live"), (True, "Test")):
        runs = selectors.run_list_for_user(environment=environment, user_id=user_id, test=test)
        cards = selectors.card_feed(environment=environment, user_id=user_id, test=test).select_related("flow")
        modes.append(
            {
                "test": test,
                "label": label,
                "runs": list(runs[:CUSTOMER_RUNS_SHOWN]),
                "cards": [_card_view(card) for card in cards[:CUSTOMER_CARDS_SHOWN]],
            }
        )
    context: dict[str, Any] = {
        "activity_user_id": user_id,
        "modes": modes,
        "is_test_user": is_test_user,
        "runs_shown": CUSTOMER_RUNS_SHOWN,
        "cards_shown": CUSTOMER_CARDS_SHOWN,
        "sent": sent,
        "send_error": error,
    }
    if is_test_user and can_edit(request):
        flows = [flow for flow in selectors.flow_list(environment=environment) if flow.status != FlowStatus.ARCHIVED]
        chosen = next((flow for flow in flows if str(flow.pk) == flow_id), None)
        if chosen is not None and (form is None or sent is not None):
            form = SendTestForm(
                initial={"user_ids": [user_id]}, test_user_ids=[user_id], variables=chosen.draft.get("variables", [])
            )
        context.update({"send_flows": flows, "send_flow": chosen, "send_form": form})
    return render(request, "flows/_customer_activity.html", context)
