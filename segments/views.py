"""Workbench pages for segments: the list, the rule builder (new and edit, with a live count and
the dry run of an edit), a segment's page (status, size over time, members), delete, and the
fragment of a customer's segments that the customer page loads.

Thin edges: reads through `selectors`, writes through `services`, rules checked by the same
validator as the API (`forms.check_rules` → `rules.rules_clean`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.timezone import now
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workbench.errors import Refused
from workbench.models import Role
from workbench.shell import WorkbenchRequest, can_edit, environment_page

from . import rules_schema, selectors, services
from .forms import SegmentForm, check_rules, rules_json
from .models import Segment, SegmentStatus
from .rules import rules_describe

MEMBERS_PER_PAGE = 50
SAMPLE_SIZE = 20
# The size chart shows the last 90 days: long enough to see a trend, short enough to read.
CHART_DAYS = 90

# The profile fields of SPEC section 1 that rules can test, with the kind of value each holds
# (the builder offers the operators and inputs that fit it).
DATE_FIELDS = {
    "createdAt": "Created",
    "firstSeenAt": "First seen",
    "lastSeenAt": "Last seen",
    "lastSeenIosAt": "Last seen on iOS",
    "lastSeenAndroidAt": "Last seen on Android",
    "lastSeenWebAt": "Last seen on web",
}
TEXT_FIELDS = {
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "city": "City",
    "country": "Country",
    "region": "Region",
    "timezone": "Time zone",
}


def builder_config(*, environment: Any, segment: Segment | None) -> dict[str, Any]:
    """What segment_builder.js needs besides the rules: the fields and the other segments."""
    labels = {**TEXT_FIELDS, **DATE_FIELDS}
    fields = [
        {"key": key, "label": labels[key], "type": "datetime" if key in DATE_FIELDS else "text"}
        for key in rules_schema.PROFILE_FIELDS
    ]
    others = selectors.segment_list(environment=environment)
    if segment is not None:
        others = others.exclude(pk=segment.pk)
    return {
        "fields": fields,
        "segments": [{"id": other.pk, "name": other.name} for other in others],
    }


def _segment_names(environment: Any) -> dict[int, str]:
    return dict(selectors.segment_list(environment=environment).values_list("id", "name"))


def _status_context(segment: Segment) -> dict[str, Any]:
    names = _segment_names(segment.environment)
    return {"segment": segment, "summary": rules_describe(segment.rules, segment_names=names)}


# --- The list -------------------------------------------------------------------------------


@require_GET
@environment_page()
def segment_list(request: WorkbenchRequest) -> HttpResponse:
    listed = list(selectors.segment_list(environment=request.environment))
    names = {segment.pk: segment.name for segment in listed}
    segments = [
        {"segment": segment, "summary": rules_describe(segment.rules, segment_names=names)} for segment in listed
    ]
    computing = any(segment.status == SegmentStatus.COMPUTING for segment in listed)
    context = {"segments": segments, "computing": computing, "can_edit": can_edit(request)}
    # While a segment computes, the table reloads itself (htmx asks for the table alone).
    htmx = request.htmx
    partial = bool(htmx) and not htmx.history_restore_request
    response = render(request, "segments/_segment_table.html" if partial else "segments/segment_list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- New and edit ---------------------------------------------------------------------------


def _render_builder(
    request: WorkbenchRequest, form: SegmentForm, *, segment: Segment | None, status: int = 200
) -> HttpResponse:
    context = {
        "form": form,
        "segment": segment,
        "rules_value": rules_json(form.rules_state()),
        "rule_errors": form.rule_errors,
        "builder_config": builder_config(environment=request.environment, segment=segment),
    }
    return render(request, "segments/segment_form.html", context, status=status)


def _members_note(segment: Segment) -> str:
    """What the page says of the members right after a save: the evaluation runs after the
    commit, in a worker (computing) or, without a broker, before the page is drawn."""
    segment.refresh_from_db()
    if segment.status == SegmentStatus.COMPUTING:
        return "Its members are being computed; this page updates when they are ready."
    if segment.status == SegmentStatus.FAILED:
        return "Computing its members failed: see below."
    return f"It has {segment.member_count} member{'' if segment.member_count == 1 else 's'}."


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def segment_new(request: WorkbenchRequest) -> HttpResponse:
    environment = request.environment
    form = SegmentForm(request.POST or None, environment_id=environment.pk)
    if request.method == "POST" and form.is_valid():
        segment = services.segment_create(
            environment=environment,
            name=form.cleaned_data["name"],
            rules=form.cleaned_data["rules"],
            by=request.membership.user,
        )
        messages.success(request, f"“{segment.name}” was created. {_members_note(segment)}")
        return redirect("segment_detail", env=environment.slug, segment_id=segment.pk)
    return _render_builder(request, form, segment=None, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def segment_edit(request: WorkbenchRequest, segment_id: int) -> HttpResponse:
    """Edit a segment in two steps when its rules change.

    1. `op=review` (the builder's button, also Enter): check the form; new rules show the dry
       run (who would enter, exit and stay) with the form's values carried in hidden fields.
       A change of name alone saves at once.
    2. `op=save` (the dry run's button): save; the segment is evaluated again in the background.
    3. `op=back`: the builder again, with the rules as they were being edited.
    """
    environment = request.environment
    segment = selectors.segment_get(environment=environment, segment_id=segment_id)
    initial = {"name": segment.name, "rules": segment.rules}
    if request.method == "GET":
        return _render_builder(request, SegmentForm(initial=initial, environment_id=environment.pk), segment=segment)
    op = request.POST.get("op", "review")
    form = SegmentForm(request.POST, environment_id=environment.pk, segment_id=segment.pk)
    if op == "back":
        unbound = SegmentForm(
            initial={"name": request.POST.get("name", ""), "rules": form.rules_state()},
            environment_id=environment.pk,
            segment_id=segment.pk,
        )
        return _render_builder(request, unbound, segment=segment)
    if not form.is_valid():
        return _render_builder(request, form, segment=segment, status=400)
    name, rules = form.cleaned_data["name"], form.cleaned_data["rules"]
    rules_changed = rules != segment.rules
    # The same rules saved again on a failed segment retry its evaluation (the service does so).
    evaluate = rules_changed or segment.status == SegmentStatus.FAILED
    if op == "save" or not rules_changed:
        segment = services.segment_update(segment=segment, name=name, rules=rules if evaluate else None)
        note = f" {_members_note(segment)}" if evaluate else ""
        messages.success(request, f"“{name}” was saved.{note}")
        return redirect("segment_detail", env=environment.slug, segment_id=segment.pk)
    dry_run = selectors.segment_dry_run(segment=segment, rules=rules, sample_size=SAMPLE_SIZE)
    context = {
        "segment": segment,
        "name": name,
        "rules": rules_json(rules),
        "summary": rules_describe(rules, segment_names=_segment_names(environment)),
        "before": rules_describe(segment.rules, segment_names=_segment_names(environment)),
        "dry_run": dry_run,
        "after_count": dry_run.enter + dry_run.stay,
    }
    return render(request, "segments/segment_review.html", context)


@require_POST
@environment_page(Role.EDITOR)
def segment_rules_preview(request: WorkbenchRequest) -> HttpResponse:
    """The builder's live count: how many customers the unsaved rules match, and a sample.
    Rules that cannot be checked answer their errors by path, which the builder places."""
    environment = request.environment
    segment_id = request.POST.get("segment") or None
    segment = selectors.segment_get(environment=environment, segment_id=int(segment_id)) if segment_id else None
    rules, errors = check_rules(
        request.POST.get("rules", ""), environment_id=environment.pk, segment_id=segment.pk if segment else None
    )
    context: dict[str, Any] = {"errors": errors, "empty": False}
    if not errors:
        context["empty"] = not rules.get("conditions")
        context["preview"] = selectors.matching_count_and_sample(
            environment=environment, rules=rules, sample_size=SAMPLE_SIZE
        )
    return render(request, "segments/_preview.html", context)


# --- A segment's page -----------------------------------------------------------------------


@require_GET
@environment_page()
def segment_detail(request: WorkbenchRequest, segment_id: int) -> HttpResponse:
    segment = selectors.segment_get(environment=request.environment, segment_id=segment_id)
    htmx = request.htmx
    partial = bool(htmx) and not htmx.history_restore_request
    if partial and request.GET.get("part") == "status":
        # The page polls its status while the segment computes; once done, the whole page
        # (members, chart) is out of date, so htmx reloads it.
        response = render(request, "segments/_segment_status.html", _status_context(segment))
        if segment.status != SegmentStatus.COMPUTING:
            response["HX-Refresh"] = "true"
        return response
    search = request.GET.get("q", "").strip()
    paginator = Paginator(selectors.segment_members(segment=segment, search=search), MEMBERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    context = {**_status_context(segment), "page": page, "search": search}
    if partial:
        response = render(request, "segments/_members.html", context)
    else:
        sizes = selectors.segment_sizes(segment=segment, since=now() - timedelta(days=CHART_DAYS))
        context["chart"] = _size_chart(segment, list(sizes))
        context["can_edit"] = can_edit(request)
        response = render(request, "segments/segment_detail.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _size_chart(segment: Segment, sizes: list[Any]) -> dict[str, Any]:
    """The chart's data block: one point per measure, and today's count as the last point."""
    points = [(size.measured_at, size.member_count) for size in sizes]
    if segment.last_computed_at and (not points or points[-1][0] < segment.last_computed_at):
        points.append((segment.last_computed_at, segment.member_count))
    return {
        "labels": [moment.strftime("%d %b %H:%M") for moment, _count in points],
        "values": [count for _moment, count in points],
    }


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def segment_delete(request: WorkbenchRequest, segment_id: int) -> HttpResponse:
    """GET: what deleting means, to confirm (the partial alone in the dialog). POST: delete, or
    say why not (a trigger or another segment uses it)."""
    environment = request.environment
    segment = selectors.segment_get(environment=environment, segment_id=segment_id)
    error, status = None, 200
    if request.method == "POST":
        try:
            services.segment_delete(segment=segment)
        except Refused as refused:
            error, status = refused.detail, refused.status
        else:
            messages.success(request, f"“{segment.name}” was deleted.")
            return redirect("segment_list", env=environment.slug)
    template = "segments/_delete_confirm.html" if request.htmx else "segments/segment_delete.html"
    return render(request, template, {"segment": segment, "error": error}, status=status)


# --- The customer page's fragment -----------------------------------------------------------


@require_GET
@environment_page()
def customer_segments(request: WorkbenchRequest, user_id: str) -> HttpResponse:
    """The segments a customer is in now, with when they entered (loaded by the customer page)."""
    memberships = selectors.customer_segments(environment=request.environment, user_id=user_id)
    return render(request, "segments/_customer_segments.html", {"memberships": memberships, "user_id": user_id})
