"""Workbench pages for webhook triggers, under /e/<env>/triggers/.

The flow page loads its triggers panel from here (`flows` never imports `triggers`); each
webhook trigger has one setup page (URL, mode, sample, mapping with a live preview, a test
card, security, delete) and a request log. Views are thin: they read through `selectors`,
write through `services` and `webhook_actions`, and render the whole page or the partial an htmx
request asks for; the page includes the same partials.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers.models import TestUser
from flows import selectors as flow_selectors
from flows.models import Flow, FlowStatus, Invocation, Mode
from flows.views import flow_api_trigger, flow_tab_context
from segments import selectors as segment_selectors
from segments.forms import EMPTY_RULES, check_rules, rules_json
from segments.models import Segment
from segments.rules import rules_describe
from segments.views import builder_config as segment_builder_config
from workbench.errors import Invalid, Refused
from workbench.models import Environment, Role
from workbench.shell import WorkbenchRequest, can_edit, current_membership, environment_page

from . import (
    csv_tasks,
    event_triggers,
    intake,
    manual_sends,
    marketo,
    segment_triggers,
    selectors,
    services,
    sfmc,
    webhook_actions,
)
from .forms import (
    MAPPING_TYPES,
    CsvUploadForm,
    DashboardSendForm,
    EventTriggerForm,
    ManualSendLimitForm,
    MappingState,
    SampleForm,
    SecurityForm,
    SegmentTriggerForm,
    TestSenderForm,
    TriggerNameForm,
    parse_json_text,
    pretty_json,
)
from .kinds import TRIGGER_KINDS, addable_kinds, kind_of
from .mapping import sample_values
from .models import (
    CsvTask,
    CsvTaskStatus,
    ManualSendStatus,
    RequestOutcome,
    Trigger,
    TriggerMode,
    TriggerType,
    WebhookRequest,
)
from .signatures import SIGNATURE_PRESETS

REQUESTS_PER_PAGE = 50
# The signature presets the form offers, in its order (SPEC section 4, "Signature").
SIGNATURE_PRESET_NAMES = ("stripe", "github", "slack", "shopify", "standard-webhooks")
FORM_PRESETS = {name: SIGNATURE_PRESETS[name] for name in SIGNATURE_PRESET_NAMES}
# How long a sample value is shown beside its path in the property picker.
SAMPLE_VALUE_LENGTH = 40


def _environment(request: WorkbenchRequest) -> Environment:
    return request.environment


def _user(request: WorkbenchRequest) -> Any:
    return current_membership(request).user


def _htmx(request: WorkbenchRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _webhook(request: WorkbenchRequest, trigger_id: int) -> Trigger:
    trigger = selectors.trigger_get(environment=_environment(request), trigger_id=trigger_id)
    if trigger.type != TriggerType.WEBHOOK:
        raise Http404("Not a webhook trigger")
    return trigger


# Triggers a member adds (every kind but the built-in API trigger), those with a mapping, and
# those with a request log.
ADDED_TYPES = (TriggerType.WEBHOOK, TriggerType.SEGMENT, TriggerType.EVENT, TriggerType.SFMC, TriggerType.MARKETO)
MAPPED_TYPES = (TriggerType.WEBHOOK, TriggerType.EVENT, TriggerType.SFMC, TriggerType.MARKETO)
LOGGED_TYPES = (TriggerType.WEBHOOK, TriggerType.SFMC, TriggerType.MARKETO)


def _trigger_of(request: WorkbenchRequest, trigger_id: int, types: tuple[str, ...]) -> Trigger:
    trigger = selectors.trigger_get(environment=_environment(request), trigger_id=trigger_id)
    if trigger.type not in types:
        raise Http404("No such page for this kind of trigger")
    return trigger


def _sample_of(trigger: Trigger) -> Any:
    """What the mapping is tried on: a webhook's sample, or the newest event of an event trigger's name."""
    if trigger.type == TriggerType.EVENT:
        return event_triggers.sample_body(trigger=trigger)
    if trigger.type == TriggerType.MARKETO:  # the last lead, else an example lead of its fields
        return marketo.sample_body(trigger=trigger) or marketo.example_lead(marketo.marketo_config(trigger))
    return trigger.sample


def _setup_url(trigger: Trigger) -> str:
    return reverse("trigger_detail", kwargs={"env": trigger.environment.slug, "trigger_id": trigger.pk})


# --- The flow's triggers tab ----------------------------------------------------------------


def _flow(request: WorkbenchRequest, flow_id: int) -> Flow:
    return flow_selectors.flow_get(environment=_environment(request), flow_id=flow_id)


def _triggers_url(flow: Flow) -> str:
    return reverse("flow_triggers", kwargs={"env": flow.environment.slug, "flow_id": flow.pk})


def _go_live_blocker(flow: Flow) -> str:
    """Why no trigger of this flow can be switched to live now, said for the page; "" when it can."""
    refusal = services.live_refusal(flow_id=flow.pk)
    return refusal.detail if refusal is not None else ""


def _start_of_today() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


@require_GET
@environment_page()
def flow_triggers(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The flow's triggers tab: every trigger with its mode and state at a glance, the API
    trigger's URLs and example, and "Add trigger" with every kind the product has."""
    flow = _flow(request, flow_id)
    triggers = list(selectors.trigger_overview_list(flow=flow, since=_start_of_today()))
    context = {
        **flow_tab_context(request, flow, tab="triggers"),
        "triggers": [
            {
                "trigger": trigger,
                "kind": kind_of(trigger.type),
                "last_outcome_label": _outcome_label(getattr(trigger, "last_outcome", None)),
                "last_request_ago": _ago(getattr(trigger, "last_request_at", None)),
            }
            for trigger in triggers
        ],
        "webhook_count": sum(1 for trigger in triggers if trigger.type == TriggerType.WEBHOOK),
        "added_count": sum(1 for trigger in triggers if trigger.type != TriggerType.API),
        "addable_kinds": addable_kinds(),
        "builtin_kinds": [kind for kind in TRIGGER_KINDS if not kind.addable],
        "api": flow_api_trigger(request, flow),
        "archived": flow.status == FlowStatus.ARCHIVED,
        "go_live_blocker": _go_live_blocker(flow),
    }
    return render(request, "triggers/flow_triggers.html", context)


def _ago(moment: datetime | None) -> str:
    """ "just now", "5 minutes ago", "2 days ago"; "" for never."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


def _outcome_label(outcome: str | None) -> str:
    """An annotated outcome (`trigger_overview_list`) as the page says it."""
    return RequestOutcome(outcome).label if outcome else ""


@require_GET
@environment_page()
def flow_triggers_live_summary(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """The flow header's line saying which triggers are live (loaded with htmx: flows never
    imports triggers)."""
    flow = _flow(request, flow_id)
    context = {
        "flow": flow,
        "live": list(selectors.live_trigger_list(flow=flow)),
        "paused": list(selectors.paused_trigger_list(flow=flow)),
        "triggers_url": _triggers_url(flow),
    }
    return render(request, "triggers/_live_summary.html", context)


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_trigger_new_webhook(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Add a webhook trigger: name it, then set it up on its own page (in test mode)."""
    flow = _flow(request, flow_id)
    form = TriggerNameForm(request.POST or None)
    if flow.status == FlowStatus.ARCHIVED:
        messages.error(request, "Archived flows start nothing; they cannot get new triggers.")
        return redirect(_triggers_url(flow))
    if request.method == "POST" and form.is_valid():
        try:
            trigger = services.webhook_trigger_create(flow=flow, by=_user(request), name=form.cleaned_data["name"])
        except services.TriggerRefused as refusal:
            messages.error(request, refusal.detail)
            return redirect(_triggers_url(flow))
        messages.success(
            request,
            f"{trigger.display_name} added, in test mode. Give it a sample, map it to a start request, "
            "then send a test card.",
        )
        return redirect(_setup_url(trigger))
    context = {**flow_tab_context(request, flow, tab="triggers"), "form": form, "kind": kind_of(TriggerType.WEBHOOK)}
    return render(request, "triggers/webhook_new.html", context, status=400 if form.errors else 200)


@require_GET
@environment_page()
def trigger_panel(request: WorkbenchRequest) -> HttpResponse:
    """The old /triggers/?flow=<id> panel: the flow's triggers tab replaced it."""
    flow = flow_selectors.flow_get(environment=_environment(request), flow_id=request.GET.get("flow", ""))
    return redirect(_triggers_url(flow))


# --- The setup page -------------------------------------------------------------------------


def _flow_variables(trigger: Trigger) -> list[dict[str, Any]]:
    return list(trigger.flow.draft.get("variables", []))


def _editable(request: WorkbenchRequest, trigger: Trigger) -> bool:
    """Editors change the configuration; a live trigger's only after choosing to edit it live."""
    if not can_edit(request):
        return False
    return trigger.mode != TriggerMode.LIVE or request.GET.get("edit") == "live" or "edit_live" in request.POST


def _properties(trigger: Trigger) -> list[dict[str, str]]:
    """The sample's paths, each with its value there, shortened, to pick from."""
    sample = _sample_of(trigger)
    if sample is None:
        return []
    return [{"path": path, "value": _sample_value(value)} for path, value in sample_values(sample)]


def _sample_value(value: Any) -> str:
    if isinstance(value, dict):
        return f"{{…}} {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"[…] {len(value)} item{'s' if len(value) != 1 else ''}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SAMPLE_VALUE_LENGTH else text[: SAMPLE_VALUE_LENGTH - 1] + "…"


def _mapping_preview(trigger: Trigger, mapping: dict[str, Any]) -> dict[str, Any]:
    if trigger.type == TriggerType.EVENT:
        return event_triggers.event_mapping_preview(trigger=trigger, mapping=mapping)
    if trigger.type == TriggerType.SFMC:
        return sfmc.sfmc_mapping_preview(trigger=trigger, mapping=mapping)
    if trigger.type == TriggerType.MARKETO:
        return marketo.marketo_mapping_preview(trigger=trigger, mapping=mapping)
    return webhook_actions.mapping_preview(trigger=trigger, mapping=mapping)


def _mapping_context(trigger: Trigger, state: MappingState, *, acted: bool = False) -> dict[str, Any]:
    preview = _mapping_preview(trigger, state.mapping())
    return {
        "state": state,
        "mapping_types": MAPPING_TYPES,
        "properties": _properties(trigger),
        "preview": _preview_view(trigger, preview, acted=acted or _mapping_chosen(trigger)),
    }


def _mapping_chosen(trigger: Trigger) -> bool:
    """Whether a member set this trigger's mapping: until then, its problems are next steps."""
    default = event_triggers.DEFAULT_EVENT_MAPPING if trigger.type == TriggerType.EVENT else services.DEFAULT_MAPPING
    if trigger.type == TriggerType.MARKETO:
        default = marketo.DEFAULT_MARKETO_MAPPING
    return trigger.config.get("mapping", default) != default


def _preview_view(trigger: Trigger, preview: dict[str, Any], *, acted: bool) -> dict[str, Any]:
    """The preview as the page shows it. Problems are problems once the member acted (edited
    the mapping, previewed, saved); before that, and without a sample, they are guidance."""
    output = preview.get("output")
    errors = preview.get("errors") or []
    if _sample_of(trigger) is None:
        guide = "no_event" if trigger.type == TriggerType.EVENT else "no_sample"
        return {"output": None, "errors": [], "guide": guide, "todo": []}
    if errors and not acted:
        return {"output": None, "errors": [], "guide": "map_sample", "todo": errors}
    return {"output": pretty_json(output) if output is not None else None, "errors": errors, "guide": "", "todo": []}


def _security_form(trigger: Trigger) -> SecurityForm:
    security = trigger.config.get("security") or {}
    return SecurityForm(
        initial=SecurityForm.initial_for(security, services.SECRET_MASK, FORM_PRESETS), **_security_form_kwargs(trigger)
    )


def _security_form_kwargs(trigger: Trigger) -> dict[str, Any]:
    signature = (trigger.config.get("security") or {}).get("signature")
    return {"presets": FORM_PRESETS, "secret_saved": bool(signature)}


def _capture_context(trigger: Trigger, since: datetime | None = None) -> dict[str, Any]:
    """Whether the trigger waits for a sample, caught one since `since`, or stopped waiting."""
    now = timezone.now()
    if trigger.capture_until is not None and trigger.capture_until > now:
        armed_at = trigger.capture_until - services.CAPTURE_WINDOW
        return {"state": "waiting", "until": trigger.capture_until, "since": f"{armed_at.timestamp():.6f}"}
    if since is None:
        return {"state": "idle"}
    captured = (
        selectors.webhook_request_list(trigger=trigger)
        .filter(outcome=RequestOutcome.SAMPLE_CAPTURED, received_at__gte=since)
        .first()
    )
    if captured is not None:
        return {"state": "captured", "request": captured}
    return {"state": "expired"}


def _setup_context(
    request: WorkbenchRequest,
    trigger: Trigger,
    *,
    state: MappingState | None = None,
    sample_form: SampleForm | None = None,
    security_form: SecurityForm | None = None,
    test_result: dict[str, Any] | None = None,
    mapping_acted: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    editable = _editable(request, trigger)
    if sample_form is None:
        sample_form = _sample_form(trigger)
    if state is None:
        state = MappingState.from_config(trigger.config, _flow_variables(trigger))
    return {
        "trigger": trigger,
        "flow": trigger.flow,
        "url": request.build_absolute_uri(f"/hooks/{trigger.token}"),
        "editable": editable,
        "edit_live": editable and trigger.mode == TriggerMode.LIVE,
        "modes": [(mode, label) for mode, label in TriggerMode.choices if mode in services.MEMBER_MODES],
        "go_live_blocker": _go_live_blocker(trigger.flow),
        "held": selectors.held_count(trigger=trigger),
        "history": selectors.mode_change_list(trigger=trigger)[:20],
        "sample_json": pretty_json(trigger.sample) if trigger.sample is not None else None,
        "no_sample": trigger.sample is None,
        "sample_form": sample_form,
        "capture": _capture_context(trigger),
        "security_form": security_form or _security_form(trigger),
        "test_result": test_result,
        "recent_rows": _log_rows(request, trigger, list(selectors.webhook_request_list(trigger=trigger)[:5])),
        **_mapping_context(trigger, state, acted=mapping_acted),
        **extra,
    }


def _render_setup(request: WorkbenchRequest, trigger: Trigger, *, status: int = 200, **parts: Any) -> HttpResponse:
    """The whole setup page, inside the flow page's frame (its triggers tab)."""
    context = {
        **flow_tab_context(request, trigger.flow, tab="triggers"),
        "name_form": parts.pop("name_form", None) or TriggerNameForm(initial={"name": trigger.name}),
        "kind": kind_of(trigger.type),
        **_setup_context(request, trigger, **parts),
    }
    return render(request, "triggers/trigger_detail.html", context, status=status)


def _refuse_live_edit(request: WorkbenchRequest, trigger: Trigger) -> HttpResponse | None:
    """A live trigger's configuration changes only when the member chose to edit it live."""
    if trigger.mode == TriggerMode.LIVE and "edit_live" not in request.POST:
        messages.error(
            request, "This trigger is live. Switch it to test before changing it, or choose to edit it live."
        )
        return redirect(_setup_url(trigger))
    return None


@require_http_methods(["GET", "POST"])
@environment_page()
def trigger_detail(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """The setup page. A POST (editors) saves the mapping and the shape check, or fills in a
    script preset (`op=preset`) without saving. Segment and event triggers have pages of their own."""
    trigger = _trigger_of(request, trigger_id, ADDED_TYPES)
    if trigger.type in (TriggerType.SEGMENT, TriggerType.EVENT):
        return _automatic_detail(request, trigger)
    if trigger.type == TriggerType.SFMC:
        return _sfmc_detail(request, trigger)
    if trigger.type == TriggerType.MARKETO:
        return _marketo_detail(request, trigger)
    if request.method == "GET":
        return _render_setup(request, trigger)
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot change triggers.")
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    return _save_mapping(
        request,
        trigger,
        _setup_context,
        _render_setup,
        lambda state: services.webhook_trigger_update(
            trigger=trigger, by=_user(request), mapping=state.mapping(), shape_check=state.shape_check
        ),
    )


# A kind of trigger's page context and whole page (the setup page of a webhook, an event or
# segment trigger's, SFMC's, Marketo's), which take the mapping builder's state as a part.
PageContext = Callable[..., dict[str, Any]]
PageRender = Callable[..., HttpResponse]


def _save_mapping(
    request: WorkbenchRequest,
    trigger: Trigger,
    context: PageContext,
    page: PageRender,
    save: Callable[[MappingState], object],
    saved: str = "Mapping saved. Send a test card to see it end to end.",
) -> HttpResponse:
    """The mapping builder's POST, for every kind of trigger that maps: a preset fills in
    the script; rows that check out are saved by `save` (the kind's service), whose refusal
    shows at the rows; otherwise the builder comes back with its errors (400)."""
    state = MappingState.from_post(request.POST, trigger.config, _flow_variables(trigger))

    def render_mapping(status: int) -> HttpResponse:
        """The builder's fragment to htmx, the kind's whole page otherwise."""
        if _htmx(request):
            parts = context(request, trigger, state=state, mapping_acted=True)
            return render(request, "triggers/_mapping.html", parts, status=status)
        return page(request, trigger, state=state, mapping_acted=True, status=status)

    if request.POST.get("op") == "preset":
        state.apply_preset(request.POST.get("script_preset", ""))
        return render_mapping(200)
    if state.check_rows():
        try:
            save(state)
        except services.TriggerRefused as refusal:
            state.attach_errors(refusal.errors or {"mapping": [refusal.detail]})
        else:
            messages.success(request, saved)
            return redirect(_setup_url(trigger) + "#mapping")
    return render_mapping(400 if state.error_count else 200)


@require_POST
@environment_page(Role.EDITOR)
def trigger_preview(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """What the sample maps to with the posted (unsaved) mapping, and every problem."""
    trigger = _trigger_of(request, trigger_id, MAPPED_TYPES)
    state = MappingState.from_post(request.POST, trigger.config, _flow_variables(trigger))
    preview = _mapping_preview(trigger, state.mapping())
    context = {"trigger": trigger, "preview": _preview_view(trigger, preview, acted=True)}
    return render(request, "triggers/_preview.html", context)


@require_POST
@environment_page(Role.EDITOR)
def trigger_mode(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _trigger_of(request, trigger_id, ADDED_TYPES)
    mode = request.POST.get("mode", "")
    try:
        services.trigger_mode_set(trigger=trigger, mode=mode, by=_user(request))
    except services.TriggerRefused as refusal:
        messages.error(request, refusal.detail)
    else:
        messages.success(request, _MODE_MESSAGES.get(mode, "Mode changed."))
    return redirect(_setup_url(trigger))


@require_POST
@environment_page(Role.EDITOR)
def trigger_name(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """Rename the trigger (any mode: the name changes nothing for its senders)."""
    trigger = _trigger_of(request, trigger_id, ADDED_TYPES)
    form = TriggerNameForm(request.POST)
    if form.is_valid():
        services.trigger_rename(trigger=trigger, name=form.cleaned_data["name"])
        messages.success(request, f"Renamed: {trigger.display_name}.")
        return redirect(_setup_url(trigger))
    if trigger.type != TriggerType.WEBHOOK:
        messages.error(request, "; ".join(str(error) for error in form.errors.get("name", ["The name is not valid."])))
        return redirect(_setup_url(trigger))
    return _render_setup(request, trigger, name_form=form, status=400)


_MODE_MESSAGES: dict[str, str] = {
    TriggerMode.TEST: "The trigger is in test mode: requests start test invocations, delivered to test users only.",
    TriggerMode.LIVE: "The trigger is live: requests start the published flow for real customers.",
    TriggerMode.DISABLED: "The trigger is disabled: requests are refused (403 trigger_disabled).",
}


@require_POST
@environment_page(Role.EDITOR)
def trigger_reactivate(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _webhook(request, trigger_id)
    try:
        trigger = services.trigger_reactivate(trigger=trigger, by=_user(request))
    except services.TriggerRefused as refusal:
        messages.error(request, refusal.detail)
    else:
        held = selectors.held_count(trigger=trigger)
        suffix = f" {held} held request{'s' if held != 1 else ''} wait: replay or discard them." if held else ""
        messages.success(request, f"Reactivated in {trigger.mode} mode.{suffix}")
    return redirect(_setup_url(trigger))


@require_POST
@environment_page(Role.EDITOR)
def trigger_held_replay(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _webhook(request, trigger_id)
    try:
        results = webhook_actions.held_requests_replay(trigger=trigger)
    except services.TriggerRefused as refusal:
        messages.error(request, refusal.detail)
    else:
        accepted = sum(1 for result in results if result.status in (200, 202))
        refused = len(results) - accepted
        summary = f"Replayed {len(results)} held request{'s' if len(results) != 1 else ''}: {accepted} accepted"
        summary += f", {refused} refused (see the request log)." if refused else "."
        (messages.warning if refused else messages.success)(request, summary)
    return redirect(_setup_url(trigger))


@require_POST
@environment_page(Role.EDITOR)
def trigger_held_discard(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _webhook(request, trigger_id)
    discarded = webhook_actions.held_requests_discard(trigger=trigger)
    messages.success(
        request, f"Discarded {discarded} held request{'s' if discarded != 1 else ''}; they stay in the request log."
    )
    return redirect(_setup_url(trigger))


@require_POST
@environment_page(Role.EDITOR)
def trigger_delete(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _trigger_of(request, trigger_id, ADDED_TYPES)
    flow, name = trigger.flow, trigger.display_name
    try:
        services.trigger_delete(trigger=trigger)
    except services.TriggerRefused as refusal:
        messages.error(request, refusal.detail)
        return redirect(_setup_url(trigger))
    gone = "its URL answers 404 from now on" if trigger.type == TriggerType.WEBHOOK else "it starts nothing from now on"
    messages.success(request, f"{name} was deleted; {gone}.")
    return redirect(_triggers_url(flow))


# --- The sample -----------------------------------------------------------------------------


@require_POST
@environment_page(Role.EDITOR)
def trigger_sample(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """Save a pasted sample."""
    trigger = _webhook(request, trigger_id)
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    form = SampleForm(request.POST)
    if form.is_valid():
        services.webhook_trigger_update(
            trigger=trigger, by=_user(request), sample=form.cleaned_data["sample"], sample_given=True
        )
        messages.success(request, "Sample saved. Its fields are now offered in the mapping.")
        return redirect(_setup_url(trigger) + "#mapping")
    return _render_setup(request, trigger, sample_form=form, status=400)


@require_POST
@environment_page(Role.EDITOR)
def trigger_capture(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """Arm capture: the next request to the URL becomes the sample (for 15 minutes)."""
    trigger = _webhook(request, trigger_id)
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    trigger = services.trigger_capture_arm(trigger=trigger)
    if _htmx(request):
        context = {"trigger": trigger, "capture": _capture_context(trigger), **_capture_editing(request, trigger)}
        return render(request, "triggers/_capture.html", context)
    messages.success(request, "Waiting for the next request to the URL; it becomes the sample.")
    return redirect(_setup_url(trigger) + "#sample")


@require_GET
@environment_page()
def trigger_capture_status(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """The capture partial, polled every 2 s while armed. Once a request is captured it also
    swaps in the new sample and the mappable properties, and tells the mapping to preview."""
    trigger = _webhook(request, trigger_id)
    try:
        since = datetime.fromtimestamp(float(request.GET.get("since", "")), tz=UTC)
    except ValueError:
        since = None
    capture = _capture_context(trigger, since)
    context = {
        "trigger": trigger,
        "capture": capture,
        "sample_json": pretty_json(trigger.sample) if trigger.sample is not None else None,
        "properties": _properties(trigger),
        "out_of_band": capture["state"] == "captured",
        "sample_form": _sample_form(trigger),
        **_capture_editing(request, trigger),
    }
    response = render(request, "triggers/_capture.html", context)
    if capture["state"] == "captured":
        response["HX-Trigger"] = "sample-changed"
    return response


def _sample_form(trigger: Trigger) -> SampleForm:
    """The paste form, holding the current sample to edit."""
    return SampleForm(initial={"sample": pretty_json(trigger.sample)} if trigger.sample is not None else {})


def _capture_editing(request: WorkbenchRequest, trigger: Trigger) -> dict[str, bool]:
    # Only a member who chose to edit a live trigger could arm its capture.
    return {"editable": can_edit(request), "edit_live": can_edit(request) and trigger.mode == TriggerMode.LIVE}


# --- Send a test card -----------------------------------------------------------------------


@require_POST
@environment_page(Role.EDITOR)
def trigger_send_test(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """Run the sample through the saved mapping as a test start, and say where its cards are."""
    trigger = _trigger_of(request, trigger_id, MAPPED_TYPES)
    if trigger.type == TriggerType.EVENT:
        answer = event_triggers.event_sample_send_test(trigger=trigger)
    elif trigger.type == TriggerType.SFMC:
        answer = sfmc.sfmc_sample_send_test(trigger=trigger)
    else:
        answer = webhook_actions.sample_send_test(trigger=trigger)
    result = _test_result(request, trigger, answer)
    if _htmx(request):
        context = {"trigger": trigger, "test_result": result, "no_sample": _sample_of(trigger) is None}
        return render(request, "triggers/_send_test.html", context)
    status = 200 if result["ok"] else 400
    if trigger.type == TriggerType.EVENT:
        return _render_automatic(request, trigger, test_result=result, status=status)
    if trigger.type == TriggerType.SFMC:
        return _render_sfmc(request, trigger, test_result=result, status=status)
    return _render_setup(request, trigger, test_result=result, status=status)


def _test_result(request: WorkbenchRequest, trigger: Trigger, answer: intake.Answer) -> dict[str, Any]:
    ok = answer.status in (200, 202)
    result: dict[str, Any] = {"ok": ok, "status": answer.status, "body": pretty_json(answer.body)}
    if not ok:
        result["detail"] = answer.body.get("detail", "")
        result["errors"] = _flat_errors(answer.body.get("errors"))
        return result
    result["duplicate"] = answer.body.get("status") == "duplicate"
    result["flow_invocation_id"] = answer.flow_invocation_id
    invocation = (
        flow_selectors.invocations_by_key(
            environment=_environment(request), flow_invocation_id=answer.flow_invocation_id
        )
        .filter(flow=trigger.flow, mode=Mode.TEST)
        .first()
    )
    result["invocation"] = invocation
    if invocation is not None:
        result["delivered"] = [
            user_id for user_id in invocation.target_user_ids if user_id not in invocation.ignored_user_ids
        ]
        result["ignored"] = list(invocation.ignored_user_ids)
    return result


def _invocation_of(
    request: WorkbenchRequest, trigger: Trigger, flow_invocation_id: str, mode: str
) -> Invocation | None:
    invocations = flow_selectors.invocations_by_key(
        environment=_environment(request), flow_invocation_id=flow_invocation_id
    )
    return invocations.filter(flow=trigger.flow, mode=mode).first()


def _flat_errors(errors: Any) -> list[str]:
    if isinstance(errors, dict):
        return [f"{key}: {message}" for key, values in errors.items() for message in _as_list(values)]
    return [str(error) for error in _as_list(errors)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- Security -------------------------------------------------------------------------------


@require_POST
@environment_page(Role.EDITOR)
def trigger_security(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    """Save the allowlist and the signature, or fill in a signature preset's fields (`op=preset`,
    not saved)."""
    trigger = _webhook(request, trigger_id)
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    kwargs = _security_form_kwargs(trigger)
    if request.POST.get("op") == "preset":
        preset = request.POST.get("signature_preset", "")
        form = SecurityForm.with_preset(request.POST, preset, mask=services.SECRET_MASK, **kwargs)
        label = FORM_PRESETS[preset]["label"] if preset in FORM_PRESETS else ""
        return _render_security(request, trigger, form, preset=label)
    form = SecurityForm(request.POST, **kwargs)
    if form.is_valid():
        try:
            services.webhook_trigger_update(
                trigger=trigger, by=_user(request), security=form.security(services.SECRET_MASK)
            )
        except services.TriggerRefused as refusal:
            form.attach_errors(refusal.errors or {"security": [refusal.detail]})
        else:
            messages.success(request, "Security settings saved.")
            return redirect(_setup_url(trigger) + "#security")
    return _render_security(request, trigger, form, status=400)


def _render_security(
    request: WorkbenchRequest, trigger: Trigger, form: SecurityForm, *, preset: str = "", status: int = 200
) -> HttpResponse:
    if _htmx(request):
        context = {**_setup_context(request, trigger, security_form=form), "preset_filled": preset}
        return render(request, "triggers/_security.html", context, status=status)
    return _render_setup(request, trigger, security_form=form, status=status, preset_filled=preset)


# --- The request log ------------------------------------------------------------------------


def _invocation_links(
    request: WorkbenchRequest, trigger: Trigger, entries: list[WebhookRequest]
) -> dict[tuple[str, str], int]:
    """(flowInvocationId, mode) → invocation pk, for the log entries that started something."""
    keys = {entry.flow_invocation_id for entry in entries if entry.flow_invocation_id}
    if not keys:
        return {}
    invocations = flow_selectors.invocation_list(environment=_environment(request), flow=trigger.flow).filter(
        flow_invocation_id__in=keys
    )
    return {(invocation.flow_invocation_id, invocation.mode): invocation.pk for invocation in invocations}


def _log_rows(request: WorkbenchRequest, trigger: Trigger, entries: list[WebhookRequest]) -> list[dict[str, Any]]:
    links = _invocation_links(request, trigger, entries)
    return [{"entry": entry, "invocation_pk": links.get((entry.flow_invocation_id, entry.mode))} for entry in entries]


@require_GET
@environment_page()
def request_list(request: WorkbenchRequest, trigger_id: int) -> HttpResponse:
    trigger = _trigger_of(request, trigger_id, LOGGED_TYPES)
    paginator = Paginator(selectors.webhook_request_list(trigger=trigger), REQUESTS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    rows = _log_rows(request, trigger, list(page.object_list))
    if trigger.type == TriggerType.SFMC:
        rows = [{**row, "call": sfmc.logged_call(row["entry"])} for row in rows]
    context = {"trigger": trigger, "flow": trigger.flow, "page": page, "rows": rows}
    return render(request, "triggers/request_list.html", context)


@require_http_methods(["GET", "POST"])
@environment_page()
def request_detail(request: WorkbenchRequest, trigger_id: int, request_id: int) -> HttpResponse:
    """One logged request. A POST (editors) replays it through the current mapping (not SFMC calls)."""
    trigger = _trigger_of(request, trigger_id, LOGGED_TYPES)
    if request.method == "POST" and trigger.type == TriggerType.SFMC:
        raise Http404("Journey Builder's calls are not replayed")
    logged = selectors.webhook_request_get(trigger=trigger, request_id=request_id)
    replay = None
    status = 200
    if request.method == "POST":
        if not can_edit(request):
            raise PermissionDenied("Viewers cannot replay requests.")
        try:
            answer = webhook_actions.request_replay(trigger=trigger, logged=logged)
        except services.TriggerRefused as refusal:
            replay = {"ok": False, "status": refusal.status, "detail": refusal.detail, "errors": []}
        else:
            replay = _replay_result(request, trigger, answer)
        status = 200 if replay["ok"] else 400
        if _htmx(request):
            context = {"trigger": trigger, "logged": logged, "replay": replay}
            return render(request, "triggers/_replay_result.html", context, status=status)
    body, problem = parse_json_text(logged.body)
    links = _invocation_links(request, trigger, [logged])
    context = {
        "trigger": trigger,
        "flow": trigger.flow,
        "logged": logged,
        "body": pretty_json(body) if problem is None else logged.body,
        "body_is_json": problem is None,
        "errors_json": pretty_json(logged.errors) if logged.errors is not None else None,
        "invocation_pk": links.get((logged.flow_invocation_id, logged.mode)),
        "replays": selectors.webhook_request_list(trigger=trigger).filter(replay_of=logged),
        "replay": replay,
        "jwt_as_sent": sfmc.jwt_as_sent(logged.body) if trigger.type == TriggerType.SFMC else None,
    }
    return render(request, "triggers/request_detail.html", context, status=status)


def _replay_result(request: WorkbenchRequest, trigger: Trigger, answer: intake.Answer) -> dict[str, Any]:
    ok = answer.status in (200, 202)
    result: dict[str, Any] = {"ok": ok, "status": answer.status, "body": json.dumps(answer.body, indent=2)}
    if ok:
        result["invocation"] = _invocation_of(request, trigger, answer.flow_invocation_id, answer.mode)
        result["flow_invocation_id"] = answer.flow_invocation_id
    else:
        result["detail"] = answer.body.get("detail", "")
        result["errors"] = _flat_errors(answer.body.get("errors"))
    return result


# --- Segment and event triggers ---------------------------------------------------------------


def _segment_options(environment: Environment) -> list[tuple[int, str]]:
    """The environment's segments as the form offers them, each with its member count."""
    return [
        (segment.pk, f"{segment.name} ({segment.member_count:,} member{'s' if segment.member_count != 1 else ''})")
        for segment in selectors.segment_choices(environment=environment)
    ]


def _mode_from(form: Any) -> str:
    return str(form.cleaned_data.get("mode") or TriggerMode.TEST)


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_trigger_new_segment(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Add a segment trigger: the segment, entered or exited, re-entry, and the mode."""
    flow = _flow(request, flow_id)
    if flow.status == FlowStatus.ARCHIVED:
        messages.error(request, "Archived flows start nothing; they cannot get new triggers.")
        return redirect(_triggers_url(flow))
    segments = _segment_options(_environment(request))
    form = SegmentTriggerForm(request.POST or None, segments=segments)
    if request.method == "POST" and form.is_valid():
        try:
            trigger = segment_triggers.segment_trigger_create(
                flow=flow,
                by=_user(request),
                name=form.cleaned_data["name"],
                segment_id=form.cleaned_data["segment"],
                on=form.cleaned_data["on"],
                reentry=form.cleaned_data["reentry"],
                mode=_mode_from(form),
            )
        except services.TriggerRefused as refusal:
            _attach(form, refusal, {"segmentId": "segment", "on": "on", "reentry": "reentry"})
        else:
            messages.success(request, f"{trigger.display_name} added, in {trigger.mode} mode.")
            return redirect(_setup_url(trigger))
    context = {
        **flow_tab_context(request, flow, tab="triggers"),
        "form": form,
        "kind": kind_of(TriggerType.SEGMENT),
        "has_segments": bool(segments),
        "go_live_blocker": _go_live_blocker(flow),
    }
    return render(request, "triggers/segment_new.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_trigger_new_event(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Add an event trigger: the event's name and filters; the mapping is set on its page."""
    flow = _flow(request, flow_id)
    if flow.status == FlowStatus.ARCHIVED:
        messages.error(request, "Archived flows start nothing; they cannot get new triggers.")
        return redirect(_triggers_url(flow))
    form = EventTriggerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            trigger = event_triggers.event_trigger_create(
                flow=flow,
                by=_user(request),
                name=form.cleaned_data["name"],
                event_name=form.cleaned_data["event_name"],
                where=form.cleaned_data["where"],
                mode=_mode_from(form),
            )
        except services.TriggerRefused as refusal:
            _attach_event(form, refusal)
        else:
            messages.success(
                request,
                f"{trigger.display_name} added, in {trigger.mode} mode. Check its mapping against the newest "
                "event, then send a test card.",
            )
            return redirect(_setup_url(trigger))
    context = {
        **flow_tab_context(request, flow, tab="triggers"),
        "form": form,
        "kind": kind_of(TriggerType.EVENT),
        "known_events": selectors.event_names(environment=_environment(request)),
        "go_live_blocker": _go_live_blocker(flow),
    }
    return render(request, "triggers/event_new.html", context, status=400 if form.errors else 200)


def _attach(form: Any, refusal: services.TriggerRefused, fields: dict[str, str]) -> None:
    """A refusal on the form: its errors on their fields (by API name), else its detail on top."""
    if not refusal.errors:
        form.add_error(None, refusal.detail)
        return
    for key, problems in refusal.errors.items():
        for problem in problems:
            form.add_error(fields.get(key), problem)


def _attach_event(form: EventTriggerForm, refusal: services.TriggerRefused) -> None:
    if refusal.errors:
        form.attach_errors(refusal.errors)
    else:
        form.add_error(None, refusal.detail)


def _automatic_detail(request: WorkbenchRequest, trigger: Trigger) -> HttpResponse:
    """A segment or event trigger's page. A POST (editors) saves its settings (`op=config`) or,
    for an event trigger, its mapping (or fills in a script preset, `op=preset`)."""
    if request.method == "GET":
        return _render_automatic(request, trigger)
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot change triggers.")
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    if request.POST.get("op") == "config":
        return _save_config(request, trigger)
    if trigger.type != TriggerType.EVENT:
        raise Http404("Segment triggers have no mapping")
    return _save_mapping(
        request,
        trigger,
        _automatic_context,
        _render_automatic,
        lambda state: event_triggers.event_trigger_update(trigger=trigger, by=_user(request), mapping=state.mapping()),
    )


def _save_config(request: WorkbenchRequest, trigger: Trigger) -> HttpResponse:
    """Save a segment trigger's segment, on and re-entry, or an event trigger's name and filters."""
    if trigger.type == TriggerType.SEGMENT:
        segment_form = SegmentTriggerForm(
            request.POST, segments=_segment_options(_environment(request)), with_mode=False
        )
        if segment_form.is_valid():
            try:
                segment_triggers.segment_trigger_update(
                    trigger=trigger,
                    by=_user(request),
                    segment_id=segment_form.cleaned_data["segment"],
                    on=segment_form.cleaned_data["on"],
                    reentry=segment_form.cleaned_data["reentry"],
                )
            except services.TriggerRefused as refusal:
                _attach(segment_form, refusal, {"segmentId": "segment", "on": "on", "reentry": "reentry"})
            else:
                messages.success(request, "Saved.")
                return redirect(_setup_url(trigger))
        return _render_automatic(request, trigger, config_form=segment_form, status=400)
    event_form = EventTriggerForm(request.POST, with_mode=False)
    if event_form.is_valid():
        try:
            event_triggers.event_trigger_update(
                trigger=trigger,
                by=_user(request),
                event_name=event_form.cleaned_data["event_name"],
                where=event_form.cleaned_data["where"],
            )
        except services.TriggerRefused as refusal:
            _attach_event(event_form, refusal)
        else:
            messages.success(request, "Saved.")
            return redirect(_setup_url(trigger))
    return _render_automatic(request, trigger, config_form=event_form, status=400)


def _config_form(request: WorkbenchRequest, trigger: Trigger) -> SegmentTriggerForm | EventTriggerForm:
    if trigger.type == TriggerType.SEGMENT:
        config = trigger.segment_config
        return SegmentTriggerForm(
            initial={"segment": config.get("segmentId"), "on": config.get("on"), "reentry": config.get("reentry")},
            segments=_segment_options(_environment(request)),
            with_mode=False,
        )
    event = trigger.event_config
    where = event.get("where") or []
    return EventTriggerForm(
        initial={"event_name": event.get("eventName"), "where": json.dumps(where) if where else ""}, with_mode=False
    )


def _automatic_context(
    request: WorkbenchRequest,
    trigger: Trigger,
    *,
    state: MappingState | None = None,
    mapping_acted: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    editable = _editable(request, trigger)
    context: dict[str, Any] = {
        "trigger": trigger,
        "flow": trigger.flow,
        "editable": editable,
        "edit_live": editable and trigger.mode == TriggerMode.LIVE,
        "modes": [(mode, label) for mode, label in TriggerMode.choices if mode in services.MEMBER_MODES],
        "go_live_blocker": _go_live_blocker(trigger.flow),
        "history": selectors.mode_change_list(trigger=trigger)[:20],
        "recent_starts": list(selectors.trigger_invocations(trigger=trigger)[:10]),
        **extra,
    }
    if trigger.type == TriggerType.SEGMENT:
        context["segment"] = selectors.segment_find(
            environment_id=trigger.environment_id, segment_id=trigger.segment_config.get("segmentId")
        )
        return context
    sample = event_triggers.sample_event(trigger=trigger)
    context.update(
        sample_event=sample,
        sample_json=pretty_json(event_triggers.event_body(sample)) if sample is not None else None,
        no_sample=sample is None,
        events_url=request.build_absolute_uri(f"/api/v1/{trigger.environment.slug}/events"),
        example_event=json.dumps(
            [{"userId": "tester-1", "name": trigger.event_config["eventName"], "properties": {"plan": "pro"}}]
        ),
    )
    if state is None:
        state = MappingState.from_config(trigger.config, _flow_variables(trigger))
    context.update(_mapping_context(trigger, state, acted=mapping_acted))
    return context


def _render_automatic(
    request: WorkbenchRequest, trigger: Trigger, *, status: int = 200, config_form: Any = None, **parts: Any
) -> HttpResponse:
    """A segment or event trigger's whole page, inside the flow page's frame (its triggers tab)."""
    context = {
        **flow_tab_context(request, trigger.flow, tab="triggers"),
        "name_form": _automatic_name_form(trigger),
        "config_form": config_form or _config_form(request, trigger),
        "kind": kind_of(trigger.type),
        **_automatic_context(request, trigger, **parts),
    }
    return render(request, "triggers/automatic_detail.html", context, status=status)


def _automatic_name_form(trigger: Trigger) -> TriggerNameForm:
    form = TriggerNameForm(initial={"name": trigger.name})
    example = "Welcome new VIPs" if trigger.type == TriggerType.SEGMENT else "Thank upgraders"
    form.fields["name"].widget.attrs["placeholder"] = f"e.g. {example}"
    return form


# --- Manual starts: the customers dashboard's send (SPEC section 6) -------------------------


def _send_form(request: WorkbenchRequest, data: Any = None) -> DashboardSendForm:
    environment = _environment(request)
    segments = [(segment.pk, segment.name) for segment in segment_selectors.segment_list(environment=environment)]
    flows = [(flow.pk, flow.name) for flow in manual_sends.dashboard_flow_list(environment=environment)]
    return DashboardSendForm(data, segments=segments, flows=flows, initial={"source": "rules", "pick": "all"})


@dataclass
class _AudienceChoice:
    """What the dashboard form says about who to send to, once checked."""

    rules: dict[str, Any] | None = None
    segment: Segment | None = None
    rule_errors: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""


def _audience_choice(request: WorkbenchRequest, form: DashboardSendForm) -> _AudienceChoice:
    """The rules (checked by the segments' validator) or the saved segment the form names."""
    environment = _environment(request)
    data = form.data
    if data.get("source") == "segment":
        segment_id = data.get("segment") or ""
        if not segment_id:
            return _AudienceChoice()
        segment = segment_selectors.segment_get(environment=environment, segment_id=segment_id)
        return _AudienceChoice(segment=segment, description=f"Members of the segment “{segment.name}”")
    rules, errors = check_rules(data.get("rules", ""), environment_id=environment.pk)
    if errors:
        return _AudienceChoice(rule_errors=errors)
    names = dict(segment_selectors.segment_list(environment=environment).values_list("id", "name"))
    summary = rules_describe(rules, segment_names=names)
    return _AudienceChoice(rules=rules, description=f"Customers who match: {summary}")


def _sends_context(request: WorkbenchRequest) -> dict[str, Any]:
    environment = _environment(request)
    return {
        "limit": environment.manual_send_limit,
        "recent_sends": list(manual_sends.manual_send_list(environment=environment)[:10]),
        "is_owner": current_membership(request).has_role(Role.OWNER),
        "can_edit": can_edit(request),
    }


def _render_dashboard(
    request: WorkbenchRequest, *, limit_form: ManualSendLimitForm | None = None, status: int = 200
) -> HttpResponse:
    environment = _environment(request)
    form = _send_form(request)
    context = {
        **_sends_context(request),
        "form": form,
        "rules_value": rules_json(EMPTY_RULES),
        "no_errors": {},
        "builder_config": segment_builder_config(environment=environment, segment=None),
        "flows_available": manual_sends.dashboard_flow_list(environment=environment).exists(),
        "limit_form": limit_form or ManualSendLimitForm(initial={"manual_send_limit": environment.manual_send_limit}),
    }
    return render(request, "triggers/dashboard.html", context, status=status)


@require_GET
@environment_page()
def customer_send(request: WorkbenchRequest) -> HttpResponse:
    """The customers dashboard: filter customers (the segment rule builder, or a saved segment),
    see how many match, pick all or some, and send a published flow to them."""
    return _render_dashboard(request)


@require_POST
@environment_page()
def customer_send_audience(request: WorkbenchRequest) -> HttpResponse:
    """The dashboard's live count (the builder asks on each edit): how many match, against the
    limit, and the first customers with a box each. Rule errors go back to the builder by path."""
    form = _send_form(request, request.POST)
    choice = _audience_choice(request, form)
    context: dict[str, Any] = {**_sends_context(request), "errors": choice.rule_errors, "audience": None}
    if not choice.rule_errors and (choice.rules is not None or choice.segment is not None):
        audience = manual_sends.dashboard_audience(
            environment=_environment(request),
            rules=choice.rules,
            segment=choice.segment,
            sample_size=manual_sends.AUDIENCE_SAMPLE,
        )
        context.update(
            audience=audience,
            over_limit=audience.count > _environment(request).manual_send_limit,
            segment=choice.segment,
            empty_rules=choice.rules is not None and not choice.rules.get("conditions"),
        )
    return render(request, "triggers/_dashboard_audience.html", context)


VARIABLE_FIELD = "variable."


def _given_variables(data: Any) -> dict[str, str]:
    """The send's variable values from the review form (fields `variable.<name>`)."""
    return {name.removeprefix(VARIABLE_FIELD): value for name, value in data.items() if name.startswith(VARIABLE_FIELD)}


def _review(request: WorkbenchRequest, form: DashboardSendForm, *, final: bool = False) -> dict[str, Any]:
    """The preview before a send: the flow, who (how many, how chosen), its variables, the
    limit, and why it would be refused, if it would. A variable still without a value only
    refuses the `final` step: the preview asks for it."""
    environment = _environment(request)
    review: dict[str, Any] = {"form": form, "limit": environment.manual_send_limit, "refusal": "", "status": 400}
    if not form.is_valid():
        review["refusal"] = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return review
    choice = _audience_choice(request, form)
    if choice.rule_errors:
        review["refusal"] = "Some conditions need attention: see the messages next to them."
        return review
    flow = flow_selectors.flow_get(environment=environment, flow_id=form.cleaned_data["flow"])
    audience = manual_sends.dashboard_audience(
        environment=environment, rules=choice.rules, segment=choice.segment, sample_size=manual_sends.AUDIENCE_SAMPLE
    )
    chosen = form.cleaned_data["user_ids"] if form.cleaned_data.get("pick") == "some" else None
    count = len(chosen) if chosen is not None else audience.count
    given = _given_variables(request.POST)
    try:
        variables = manual_sends.send_variables_clean(flow=flow, given=given)
        variable_errors: dict[str, list[str]] = {}
    except Invalid as invalid:
        variables, variable_errors = {}, invalid.errors
    nobody = Refused(400, "empty_audience", "Nobody matches this filter: there is nobody to send to.")
    refusal = (
        manual_sends.send_refusal(flow=flow, variables=variables)
        or manual_sends.over_limit_refusal(environment=environment, count=count)
        or (nobody if count == 0 else None)
    )
    missing = refusal is not None and refusal.code == "missing_variables"
    if variable_errors and final:
        refusal = Refused(
            400, "invalid_request", " ".join(m for messages in variable_errors.values() for m in messages)
        )
    elif missing and not final:
        refusal = None  # the preview asks for the values
    review.update(
        flow=flow,
        count=count,
        description=choice.description,
        chosen=chosen,
        variables=manual_sends.send_variables(flow=flow, given=given),
        variable_errors=variable_errors,
        typed_variables=variables,
        hidden=[
            (name, item)
            for name, items in request.POST.lists()
            if name != "csrfmiddlewaretoken" and not name.startswith(VARIABLE_FIELD)
            for item in items
        ],
        refusal=refusal.detail if refusal is not None else "",
        status=refusal.status if refusal is not None else 200,
    )
    return review


@require_POST
@environment_page(Role.EDITOR)
def customer_send_review(request: WorkbenchRequest) -> HttpResponse:
    """The confirmation before a send (in the dialog under htmx, else a page): nothing starts
    until "Send" is pressed there."""
    review = _review(request, _send_form(request, request.POST))
    if _htmx(request):
        # 200 even for a refusal: htmx swaps only 2xx answers, and the dialog shows the reason.
        return render(request, "triggers/_dashboard_review.html", review)
    return render(
        request, "triggers/dashboard_review.html", review, status=review["status"] if review["refusal"] else 200
    )


@require_POST
@environment_page(Role.EDITOR)
def customer_send_confirm(request: WorkbenchRequest) -> HttpResponse:
    """Make the send: its audience is fixed now, then it runs in the background."""
    environment = _environment(request)
    form = _send_form(request, request.POST)
    review = _review(request, form, final=True)
    if review["refusal"]:
        return render(request, "triggers/dashboard_review.html", review, status=review["status"])
    choice = _audience_choice(request, form)
    try:
        send = manual_sends.manual_send_create(
            environment=environment,
            flow=review["flow"],
            by=_user(request),
            rules=choice.rules,
            segment=choice.segment,
            chosen_user_ids=review["chosen"],
            description=choice.description,
            variables=review["typed_variables"],
        )
    except Refused as refused:
        review["refusal"] = refused.detail
        return render(request, "triggers/dashboard_review.html", review, status=refused.status)
    messages.success(request, f"Sending “{send.flow.name}” to {len(send.user_ids):,} customers.")
    return redirect("manual_send_detail", env=environment.slug, send_id=send.pk)


def _send_progress(send: Any) -> dict[str, Any]:
    total = len(send.user_ids)
    handled = send.started_count + send.failed_count
    return {
        "send": send,
        "total": total,
        "handled": handled,
        "percent": int(handled * 100 / total) if total else 100,
        "active": send.status in (ManualSendStatus.QUEUED, ManualSendStatus.RUNNING),
    }


@require_GET
@environment_page()
def manual_send_detail(request: WorkbenchRequest, send_id: int) -> HttpResponse:
    """A send's progress; the page polls its progress fragment while the send runs."""
    send = manual_sends.manual_send_get(environment=_environment(request), send_id=send_id)
    context = {**_send_progress(send), "can_edit": can_edit(request)}
    if _htmx(request):
        return render(request, "triggers/_manual_send_progress.html", context)
    return render(request, "triggers/manual_send_detail.html", context)


@require_POST
@environment_page(Role.EDITOR)
def manual_send_cancel(request: WorkbenchRequest, send_id: int) -> HttpResponse:
    send = manual_sends.manual_send_get(environment=_environment(request), send_id=send_id)
    send = manual_sends.manual_send_cancel(send=send)
    if send.status == ManualSendStatus.CANCELLED:
        messages.success(request, "Send cancelled: customers not started yet will not be started.")
    else:
        messages.error(request, f"This send is {send.get_status_display().lower()}; there is nothing to cancel.")
    return redirect("manual_send_detail", env=_environment(request).slug, send_id=send.pk)


@require_POST
@environment_page(Role.OWNER)
def manual_send_limit(request: WorkbenchRequest) -> HttpResponse:
    """An owner changes how many customers one manual send may reach."""
    environment = _environment(request)
    form = ManualSendLimitForm(request.POST)
    if form.is_valid():
        manual_sends.environment_manual_send_limit_set(
            environment=environment, limit=form.cleaned_data["manual_send_limit"]
        )
        messages.success(request, f"One send may now reach at most {environment.manual_send_limit:,} customers.")
        return redirect("customer_send", env=environment.slug)
    return _render_dashboard(request, limit_form=form, status=400)


# --- Manual starts: CSV bulk sends (SPEC section 6) -----------------------------------------

CSV_SAMPLE_ROWS = 5
CSV_ERRORS_SHOWN = 100


def _csv_upload_context(request: WorkbenchRequest, flow: Flow, form: CsvUploadForm, error: str = "") -> dict[str, Any]:
    published = flow.published_version is not None and flow.status != FlowStatus.ARCHIVED
    return {
        **flow_tab_context(request, flow, tab="csv"),
        "form": form,
        "error": error,
        "published": published,
        "archived": flow.status == FlowStatus.ARCHIVED,
        "tasks": list(selectors.csv_task_list(environment=_environment(request), flow=flow)[:20]),
        "variables": flow.draft.get("variables", []),
    }


@require_http_methods(["GET", "POST"])
@environment_page()
def flow_csv_new(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """ "Send with a CSV": upload a file (live or as a test); its dry run follows before anything
    starts. GET also lists this flow's past CSV sends."""
    flow = _flow(request, flow_id)
    if request.method == "GET":
        mode = Mode.LIVE if flow.published_version is not None else Mode.TEST
        form = CsvUploadForm(initial={"mode": request.GET.get("mode") or mode})
        return render(request, "triggers/csv_upload.html", _csv_upload_context(request, flow, form))
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot send flows.")
    form = CsvUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "triggers/csv_upload.html", _csv_upload_context(request, flow, form), status=400)
    upload = form.cleaned_data["file"]
    try:
        task = csv_tasks.csv_task_stage(
            flow=flow,
            mode=form.cleaned_data["mode"],
            upload=upload,
            file_name=upload.name or "upload.csv",
            by=_user(request),
            confirm=False,
        )
    except Refused as refused:
        context = _csv_upload_context(request, flow, form, error=_refusal_detail(refused))
        return render(request, "triggers/csv_upload.html", context, status=refused.status)
    return redirect("flow_csv_task", env=_environment(request).slug, task_id=task.pk)


def _refusal_detail(refused: Refused) -> str:
    """A refusal as one sentence, with the problems it lists (unknown columns and the like)."""
    details = [refused.detail]
    for problems in (refused.errors or {}).values():
        for problem in problems if isinstance(problems, list) else [problems]:
            if str(problem) not in refused.detail:
                details.append(str(problem))
    return " ".join(details)


@require_GET
@environment_page()
def csv_task_list(request: WorkbenchRequest) -> HttpResponse:
    """Every CSV send of the environment: who ran it, when, its counts and status."""
    paginator = Paginator(selectors.csv_task_list(environment=_environment(request)), REQUESTS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "triggers/csv_task_list.html", {"page": page})


def _csv_progress(task: CsvTask) -> dict[str, Any]:
    total = task.rows_total
    return {
        "task": task,
        "percent": int(task.rows_done * 100 / total) if total else 100,
        "active": task.status in (CsvTaskStatus.QUEUED, CsvTaskStatus.RUNNING),
        "errors": csv_tasks.csv_task_errors(task=task, limit=CSV_ERRORS_SHOWN),
    }


@require_GET
@environment_page()
def flow_csv_task(request: WorkbenchRequest, task_id: int) -> HttpResponse:
    """A CSV send: its dry run until confirmed (nothing starts before), then its progress, which
    the page polls (htmx asks for the progress fragment alone)."""
    task = selectors.csv_task_get(environment=_environment(request), task_id=task_id)
    context: dict[str, Any] = {"can_edit": can_edit(request), **_csv_progress(task)}
    if task.confirmed_at is None and task.status == CsvTaskStatus.QUEUED:
        context.update(_dry_run_context(task))
        if _htmx(request):
            return render(request, "triggers/_csv_dry_run.html", context)
        return render(request, "triggers/csv_dry_run.html", context)
    if _htmx(request):
        return render(request, "triggers/_csv_progress.html", context)
    return render(request, "triggers/csv_task_detail.html", context)


def _dry_run_context(task: CsvTask) -> dict[str, Any]:
    """The dry run a worker made (csv_tasks.csv_task_check), or how far it has got."""
    if task.dry_run is None:
        total = task.rows_total
        return {"checking": True, "check_percent": int(task.dry_run_rows * 100 / total) if total else 0}
    dry_run = csv_tasks.CsvDryRun.of_json(task.dry_run)
    return {
        "dry_run": dry_run,
        "rows_ok": dry_run.rows_total - dry_run.rows_failed,
        "sample": [
            {"row": start["row"], "json": _compact_start({k: v for k, v in start.items() if k != "row"})}
            for start in dry_run.sample[:CSV_SAMPLE_ROWS]
        ],
        "shown_errors": dry_run.errors[:CSV_ERRORS_SHOWN],
    }


def _compact_start(start: dict[str, Any]) -> str:
    """A start request on one line, without its empty parts (the dry run lists several)."""
    shown = {key: value for key, value in start.items() if value not in ({}, None)}
    return json.dumps(shown, ensure_ascii=False, separators=(", ", ": "))


@require_POST
@environment_page(Role.EDITOR)
def flow_csv_task_confirm(request: WorkbenchRequest, task_id: int) -> HttpResponse:
    task = selectors.csv_task_get(environment=_environment(request), task_id=task_id)
    if task.status != CsvTaskStatus.QUEUED:
        messages.error(request, f"This CSV send is {task.get_status_display().lower()}; it cannot be confirmed.")
    else:
        task = csv_tasks.csv_task_confirm(task=task, by=_user(request))
        messages.success(request, f"Sending {task.rows_total:,} rows of {task.file_name or 'the file'}.")
    return redirect("flow_csv_task", env=_environment(request).slug, task_id=task.pk)


@require_POST
@environment_page(Role.EDITOR)
def flow_csv_task_cancel(request: WorkbenchRequest, task_id: int) -> HttpResponse:
    task = selectors.csv_task_get(environment=_environment(request), task_id=task_id)
    was_confirmed = task.confirmed_at is not None
    task = csv_tasks.csv_task_cancel(task=task)
    if task.status != CsvTaskStatus.CANCELLED:
        messages.error(request, f"This CSV send is {task.get_status_display().lower()}; there is nothing to cancel.")
    elif was_confirmed:
        messages.success(request, "CSV send cancelled: rows not started yet will not be started.")
    else:
        messages.success(request, "CSV send discarded: nothing was started.")
    return redirect("flow_csv_task", env=_environment(request).slug, task_id=task.pk)


@require_GET
@environment_page()
def flow_csv_task_errors(request: WorkbenchRequest, task_id: int) -> HttpResponse:
    """The rows in error as a CSV file (row, message), safe to open in a spreadsheet."""
    task = selectors.csv_task_get(environment=_environment(request), task_id=task_id)
    response = StreamingHttpResponse(csv_tasks.csv_task_errors_csv(task=task), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="csv-send-{task.pk}-errors.csv"'
    # Streamed: a large file's report is never built whole (the decorator's type says HttpResponse).
    return cast(HttpResponse, response)


# --- Manual starts: the test sender (SPEC section 6) ----------------------------------------


TEST_SENDER_EXAMPLE = (
    '[\n  {"targetUserIds": ["%s"], "variables": {}},\n  {"targetUserIds": ["%s", "not-a-test-user"]}\n]'
)


@require_http_methods(["GET", "POST"])
@environment_page()
def flow_test_sender(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Send a batch of test starts (pasted JSON, or CSV rows with a CSV send's columns) to test
    users, and show per row what started, which ids were ignored (not test users) and what was
    refused."""
    flow = _flow(request, flow_id)
    test_users = list(TestUser.objects.filter(environment=_environment(request)).order_by("user_id"))
    example_ids = [user.user_id for user in test_users[:2]] or ["tester-1"]
    context: dict[str, Any] = {
        **flow_tab_context(request, flow, tab="testing"),
        "test_users": test_users,
        "archived": flow.status == FlowStatus.ARCHIVED,
        "example": TEST_SENDER_EXAMPLE % (example_ids[0], example_ids[-1]),
        "results": None,
        "error": "",
        "error_list": [],
    }
    if request.method == "GET":
        context["form"] = TestSenderForm()
        return render(request, "triggers/test_sender.html", context)
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot send tests.")
    form = TestSenderForm(request.POST, request.FILES)
    context["form"] = form
    if not form.is_valid():
        return render(request, "triggers/test_sender.html", context, status=400)
    try:
        if form.cleaned_data.get("json"):
            row_errors: list[manual_sends.TestRowResult] = []
            rows = manual_sends.test_sender_parse(form.cleaned_data["json"])
        else:
            upload = form.cleaned_data["file"]
            rows, row_errors = manual_sends.test_sender_csv_rows(
                flow=flow, upload=upload, file_name=upload.name or "tests.csv", by=_user(request)
            )
        results = manual_sends.test_sender_send(flow=flow, rows=rows, by=_user(request)) if rows else []
    except Invalid as invalid:
        context.update(error=invalid.detail, error_list=[f"{key}: {' '.join(v)}" for key, v in invalid.errors.items()])
        return render(request, "triggers/test_sender.html", context, status=400)
    except Refused as refused:
        context["error"] = _refusal_detail(refused)
        return render(request, "triggers/test_sender.html", context, status=refused.status)
    results = sorted([*results, *row_errors], key=lambda result: result.row)
    context.update(
        results=results,
        started=sum(1 for result in results if result.status == "accepted"),
        refused=sum(1 for result in results if result.errors),
    )
    return render(request, "triggers/test_sender.html", context)


# --- SFMC ---------------------------------------------------------------------------------------
# Salesforce Marketing Cloud (Journey Builder activity) triggers: the "new" page and the setup
# page (templates/triggers/sfmc_detail.html and its _sfmc_* partials); the service is triggers.sfmc.


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_trigger_new_sfmc(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Add a Marketing Cloud trigger: name it (the secret may come now or on its page)."""
    flow = _flow(request, flow_id)
    if flow.status == FlowStatus.ARCHIVED:
        messages.error(request, "Archived flows start nothing; they cannot get new triggers.")
        return redirect(_triggers_url(flow))
    form = TriggerNameForm(request.POST or None)
    errors: dict[str, list[str]] = {}
    if request.method == "POST" and form.is_valid():
        secret = request.POST.get("jwt_secret", "")
        try:
            trigger = sfmc.sfmc_trigger_create(
                flow=flow, by=_user(request), name=form.cleaned_data["name"], jwt_secret=secret or None
            )
        except services.TriggerRefused as refusal:
            errors = refusal.errors or {"": [refusal.detail]}
        else:
            messages.success(
                request,
                f"{trigger.display_name} added, in test mode. Paste its URL into a Journey Builder activity of an "
                "Installed Package, then the package's JWT signing secret here.",
            )
            return redirect(_setup_url(trigger))
    context = {
        **flow_tab_context(request, flow, tab="triggers"),
        "form": form,
        "secret_errors": errors.get("jwtSecret", []),
        "other_errors": [message for key, messages in errors.items() if key != "jwtSecret" for message in messages],
        "kind": kind_of(TriggerType.SFMC),
    }
    return render(request, "triggers/sfmc_new.html", context, status=400 if form.errors or errors else 200)


def _sfmc_detail(request: WorkbenchRequest, trigger: Trigger) -> HttpResponse:
    """The setup page. A POST (editors) saves the secret (`op=secret`), the in-arguments
    (`op=in_arguments`) or the mapping (or fills in a script preset, `op=preset`)."""
    if request.method == "GET":
        return _render_sfmc(request, trigger)
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot change triggers.")
    op = request.POST.get("op", "")
    if op == "secret":
        return _sfmc_save(request, trigger, "secret", jwt_secret=request.POST.get("jwt_secret", ""))
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    if op == "in_arguments":
        text = request.POST.get("in_arguments", "")
        try:
            in_arguments = sfmc.in_arguments_from_text(text)
        except Invalid as invalid:
            return _render_sfmc(request, trigger, in_arguments_text=text, errors=invalid.errors, status=400)
        return _sfmc_save(request, trigger, "in-arguments", in_arguments=in_arguments, text=text)
    return _save_mapping(
        request,
        trigger,
        _sfmc_context,
        _render_sfmc,
        lambda state: sfmc.sfmc_trigger_update(trigger=trigger, by=_user(request), mapping=state.mapping()),
    )


def _sfmc_save(request: WorkbenchRequest, trigger: Trigger, what: str, text: str = "", **changes: Any) -> HttpResponse:
    if what == "secret" and not changes.get("jwt_secret"):
        errors = {"jwtSecret": ["Paste the JWT signing secret of the Installed Package."]}
        return _render_sfmc(request, trigger, errors=errors, status=400)
    try:
        sfmc.sfmc_trigger_update(trigger=trigger, by=_user(request), **changes)
    except services.TriggerRefused as refusal:
        errors = refusal.errors or {"": [refusal.detail]}
        return _render_sfmc(request, trigger, in_arguments_text=text or None, errors=errors, status=400)
    if what == "secret":
        messages.success(request, "Secret saved. Journey Builder's calls signed with it are accepted from now on.")
        return redirect(_setup_url(trigger) + "#connect")
    messages.success(
        request, "In-arguments saved. Journey Builder reads them from config.json for newly added activities."
    )
    return redirect(_setup_url(trigger) + "#in-arguments")


def _sfmc_context(
    request: WorkbenchRequest,
    trigger: Trigger,
    *,
    state: MappingState | None = None,
    mapping_acted: bool = False,
    in_arguments_text: str | None = None,
    errors: dict[str, list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    editable = _editable(request, trigger)
    config = sfmc.sfmc_config(trigger)
    base_url = request.build_absolute_uri(sfmc.base_path(trigger))
    entries = list(selectors.webhook_request_list(trigger=trigger)[:10])
    if state is None:
        state = MappingState.from_config(trigger.config, _flow_variables(trigger))
    return {
        "trigger": trigger,
        "flow": trigger.flow,
        "base_url": base_url,
        "config_json_url": base_url + "config.json",
        "editable": editable,
        "edit_live": editable and trigger.mode == TriggerMode.LIVE,
        "modes": [(mode, label) for mode, label in TriggerMode.choices if mode in services.MEMBER_MODES],
        "go_live_blocker": _go_live_blocker(trigger.flow),
        "history": selectors.mode_change_list(trigger=trigger)[:20],
        "secret_saved": bool(config.get("jwtSecret")),
        "secret_mask": services.SECRET_MASK,
        "in_arguments_text": in_arguments_text
        if in_arguments_text is not None
        else sfmc.in_arguments_text(config.get("inArguments") or sfmc.DEFAULT_IN_ARGUMENTS),
        "errors": errors or {},
        "secret_errors": (errors or {}).get("jwtSecret", []),
        "in_arguments_errors": (errors or {}).get("inArguments", []),
        "other_errors": (errors or {}).get("", []),
        "sample_json": pretty_json(trigger.sample) if trigger.sample is not None else None,
        "no_sample": trigger.sample is None,
        "mapping_step": 3,
        "test_step": 4,
        "recent_calls": [
            {**row, "call": sfmc.logged_call(row["entry"])} for row in _log_rows(request, trigger, entries)
        ],
        **_mapping_context(trigger, state, acted=mapping_acted),
        **extra,
    }


def _render_sfmc(request: WorkbenchRequest, trigger: Trigger, *, status: int = 200, **parts: Any) -> HttpResponse:
    context = {
        **flow_tab_context(request, trigger.flow, tab="triggers"),
        "name_form": TriggerNameForm(initial={"name": trigger.name}),
        "kind": kind_of(trigger.type),
        **_sfmc_context(request, trigger, **parts),
    }
    return render(request, "triggers/sfmc_detail.html", context, status=status)


# --- end of SFMC ---


# --- Marketo ---------------------------------------------------------------------------------
# A Marketo Self-Service Flow Step trigger (SPEC section 7): its "new" page, and its page (the
# service URL and API key to install in Marketo, the lead field, the flow step's fields, the
# mapping with its preview on the last lead, modes, the request log with callback attempts).

MARKETO_KEY_SESSION = "marketo-api-key-{}"
MARKETO_FIELD_ROWS = 3  # empty rows offered below the flow step's fields


def _marketo_field_rows(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [{"name": f.get("name", ""), "label": f.get("label", ""), "type": f.get("type", "string")} for f in fields]
    return rows + [{"name": "", "label": "", "type": "string"} for _ in range(MARKETO_FIELD_ROWS)]


def _marketo_posted_fields(request: WorkbenchRequest) -> list[dict[str, Any]]:
    """The flow step's fields of the form's rows (rows without a name are left out)."""
    names = request.POST.getlist("field_name")
    labels = request.POST.getlist("field_label")
    types = request.POST.getlist("field_type")
    fields = []
    for index, name in enumerate(names):
        if not name.strip():
            continue
        field: dict[str, Any] = {"name": name.strip()}
        if index < len(labels) and labels[index].strip():
            field["label"] = labels[index].strip()
        if index < len(types) and types[index]:
            field["type"] = types[index]
        fields.append(field)
    return fields


def _marketo_show_key(request: WorkbenchRequest, trigger: Trigger, key: str) -> None:
    """Keep a new key for the next page only: it is shown once, never stored in clear."""
    request.session[MARKETO_KEY_SESSION.format(trigger.pk)] = key


def _marketo_errors(refusal: services.TriggerRefused) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key, problems in (refusal.errors or {"": [refusal.detail]}).items():
        own = key in ("leadUserIdField", "mapping") or key.startswith("flowFields")
        field = key.split(".", 1)[0] if own else "other"
        errors.setdefault(field, []).extend(f"{key}: {p}" if "." in key else p for p in problems)
    return errors


@require_http_methods(["GET", "POST"])
@environment_page(Role.EDITOR)
def flow_trigger_new_marketo(request: WorkbenchRequest, flow_id: int) -> HttpResponse:
    """Add a Marketo trigger: its name, the lead field and the flow step's fields (the flow's
    variables to start with). The API key is shown once, on the trigger's page."""
    flow = _flow(request, flow_id)
    if flow.status == FlowStatus.ARCHIVED:
        messages.error(request, "Archived flows start nothing; they cannot get new triggers.")
        return redirect(_triggers_url(flow))
    variables = flow.draft.get("variables", [])
    fields = [{"name": v["name"], "label": v["name"], "type": "string"} for v in variables if "name" in v]
    values = {"name": "", "lead_user_id_field": marketo.DEFAULT_LEAD_USER_ID_FIELD}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {
            "name": request.POST.get("name", ""),
            "lead_user_id_field": request.POST.get("lead_user_id_field", "").strip(),
        }
        fields = _marketo_posted_fields(request)
        try:
            created = marketo.marketo_trigger_create(
                flow=flow,
                by=_user(request),
                name=values["name"],
                lead_user_id_field=values["lead_user_id_field"] or None,
                flow_fields=fields,
            )
        except services.TriggerRefused as refusal:
            errors = _marketo_errors(refusal)
        else:
            _marketo_show_key(request, created.trigger, created.api_key)
            messages.success(request, f"{created.trigger.display_name} added, in test mode. Install it in Marketo now.")
            return redirect(_setup_url(created.trigger))
    context = {
        **flow_tab_context(request, flow, tab="triggers"),
        "kind": kind_of(TriggerType.MARKETO),
        "values": values,
        "field_rows": _marketo_field_rows(fields),
        "field_types": marketo.FIELD_TYPES,
        "errors": errors,
    }
    return render(request, "triggers/marketo_new.html", context, status=400 if errors else 200)


def _marketo_detail(request: WorkbenchRequest, trigger: Trigger) -> HttpResponse:
    """A Marketo trigger's page. A POST (editors) saves its settings (`op=config`), rotates its
    key (`op=rotate`), fills in a script preset (`op=preset`) or saves the mapping."""
    if request.method == "GET":
        return _render_marketo(request, trigger)
    if not can_edit(request):
        raise PermissionDenied("Viewers cannot change triggers.")
    op = request.POST.get("op")
    if op == "rotate":
        key = marketo.marketo_key_rotate(trigger=trigger)
        _marketo_show_key(request, trigger, key)
        messages.success(request, "New API key made. The old key stops working now: enter the new one in Marketo.")
        return redirect(_setup_url(trigger) + "#install")
    refused = _refuse_live_edit(request, trigger)
    if refused:
        return refused
    if op == "config":
        fields = _marketo_posted_fields(request)
        lead_field = request.POST.get("lead_user_id_field", "").strip()
        try:
            marketo.marketo_trigger_update(
                trigger=trigger, by=_user(request), lead_user_id_field=lead_field or None, flow_fields=fields
            )
        except services.TriggerRefused as refusal:
            settings_form = {"lead_user_id_field": lead_field, "fields": fields, "errors": _marketo_errors(refusal)}
            return _render_marketo(request, trigger, settings_form=settings_form, status=400)
        messages.success(request, "Saved. Marketo reads the new fields the next time its admin refreshes the service.")
        return redirect(_setup_url(trigger) + "#settings")
    return _save_mapping(
        request,
        trigger,
        _marketo_context,
        _render_marketo,
        lambda state: marketo.marketo_trigger_update(trigger=trigger, by=_user(request), mapping=state.mapping()),
        saved="Mapping saved. The next batch from Marketo uses it.",
    )


def _marketo_context(
    request: WorkbenchRequest,
    trigger: Trigger,
    *,
    state: MappingState | None = None,
    mapping_acted: bool = False,
    settings_form: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    config = marketo.marketo_config(trigger)
    editable = _editable(request, trigger)
    base = request.build_absolute_uri(marketo.base_path(trigger))
    if state is None:
        state = MappingState.from_config(trigger.config, _flow_variables(trigger))
    settings_form = settings_form or {
        "lead_user_id_field": config["leadUserIdField"],
        "fields": config["flowFields"],
        "errors": {},
    }
    entries = list(selectors.webhook_request_list(trigger=trigger)[:10])
    sample = marketo.sample_body(trigger=trigger)
    return {
        "trigger": trigger,
        "flow": trigger.flow,
        "editable": editable,
        "edit_live": editable and trigger.mode == TriggerMode.LIVE,
        "modes": [(mode, label) for mode, label in TriggerMode.choices if mode in services.MEMBER_MODES],
        "go_live_blocker": _go_live_blocker(trigger.flow),
        "history": selectors.mode_change_list(trigger=trigger)[:20],
        "service_url": f"{base}openapi.json",
        "install_url": "https://app.marketo.com/custAdmin/addServiceProvider?url=" + f"{base}openapi.json",
        "api_key": request.session.pop(MARKETO_KEY_SESSION.format(trigger.pk), None),
        "api_key_hint": config["apiKeyHint"],
        "config": config,
        "settings_form": settings_form,
        "field_rows": _marketo_field_rows(settings_form["fields"]),
        "field_types": marketo.FIELD_TYPES,
        "sample_json": pretty_json(sample) if sample is not None else None,
        "example_json": pretty_json(marketo.example_lead(config)),
        "recent_rows": _log_rows(request, trigger, entries),
        "callbacks": marketo.callback_counts(trigger=trigger),
        "mapping_step": 3,
        **_mapping_context(trigger, state, acted=mapping_acted),
        **extra,
    }


def _render_marketo(request: WorkbenchRequest, trigger: Trigger, *, status: int = 200, **parts: Any) -> HttpResponse:
    context = {
        **flow_tab_context(request, trigger.flow, tab="triggers"),
        "name_form": TriggerNameForm(initial={"name": trigger.name}),
        "kind": kind_of(trigger.type),
        **_marketo_context(request, trigger, **parts),
    }
    return render(request, "triggers/marketo_detail.html", context, status=status)


# --- end of Marketo ---
