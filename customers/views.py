"""Workbench pages: the environment's home (the customers dashboard), customers list and profile,
test users."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from workbench import selectors as workbench_selectors
from workbench.models import Role
from workbench.shell import WorkbenchRequest, environment_page

from . import selectors, services
from .forms import MyTestUserForm, TestUserForm

CUSTOMERS_PER_PAGE = 50
# The profile page lists this many of the customer's most recent events.
RECENT_EVENTS = 50
# Properties longer than this (as compact JSON) are cut, with the whole text in a tooltip.
PROPERTIES_SHOWN = 160


@dataclass(frozen=True)
class EventRow:
    name: str
    occurred_at: datetime
    properties: str  # compact JSON, "" for none
    properties_cut: bool


def _event_row(name: str, occurred_at: datetime, properties: dict[str, Any]) -> EventRow:
    text = json.dumps(properties, ensure_ascii=False, separators=(", ", ": ")) if properties else ""
    return EventRow(name, occurred_at, text, len(text) > PROPERTIES_SHOWN)


@environment_page()
def environment_home(request: WorkbenchRequest) -> HttpResponse:
    """The environment's first page: how many customers, test users and credentials it has,
    the getting-started steps still to do, and its recent activity, which the page loads from
    flows with htmx (`environment_activity`: customers does not import flows)."""
    environment = request.environment
    context = {
        "customer_count": selectors.customer_list(environment=environment).count(),
        "test_user_count": selectors.testuser_list(environment=environment).count(),
        "credential_count": workbench_selectors.credential_list(environment=environment).count(),
    }
    return render(request, "customers/environment_home.html", context)


@environment_page()
def customer_list(request: WorkbenchRequest) -> HttpResponse:
    environment = request.environment
    search = request.GET.get("q", "")
    paginator = Paginator(selectors.customer_list(environment=environment, search=search), CUSTOMERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    context = {"page": page, "search": search}
    # htmx asks for the table alone while the user types in the search box; a history restore
    # (back button after the snapshot cache was evicted) needs the whole page.
    htmx = request.htmx
    partial = bool(htmx) and not htmx.history_restore_request
    template = "customers/_customer_table.html" if partial else "customers/customer_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@environment_page()
def customer_detail(request: WorkbenchRequest, user_id: str) -> HttpResponse:
    environment = request.environment
    customer = selectors.customer_get(environment=environment, user_id=user_id)
    is_test_user = user_id in selectors.testuser_ids(environment=environment)
    recent = selectors.event_list_for_user(environment=environment, user_id=user_id).values_list(
        "name", "occurred_at", "properties"
    )[:RECENT_EVENTS]
    context = {
        "customer": customer,
        "is_test_user": is_test_user,
        "events": [_event_row(*values) for values in recent],
        "events_shown": RECENT_EVENTS,
        "properties_shown": PROPERTIES_SHOWN,
    }
    return render(request, "customers/customer_detail.html", context)


@environment_page()
def testuser_list(request: WorkbenchRequest) -> HttpResponse:
    return _render_test_users(request, TestUserForm(), status=200)


def _render_test_users(request: WorkbenchRequest, form: TestUserForm, status: int) -> HttpResponse:
    environment = request.environment
    membership = request.membership
    own = selectors.testuser_list(environment=environment).filter(membership=membership).first()
    context = {
        "test_users": selectors.testuser_list(environment=environment),
        "form": form,
        "my_form": MyTestUserForm(initial={"user_id": own.user_id if own else ""}),
    }
    return render(request, "customers/test_users.html", context, status=status)


@require_POST
@environment_page(Role.EDITOR)
def testuser_create(request: WorkbenchRequest) -> HttpResponse:
    environment = request.environment
    form = TestUserForm(request.POST)
    if form.is_valid():
        user_id = form.cleaned_data["user_id"].strip()
        if user_id in selectors.testuser_ids(environment=environment):
            form.add_error("user_id", "This userId is already a test user.")
        else:
            services.testuser_create(environment=environment, user_id=user_id, name=form.cleaned_data["name"])
            messages.success(request, f"{user_id} can now receive tests.")
            return redirect("test_user_list", env=environment.slug)
    return _render_test_users(request, form, status=400)


@require_POST
@environment_page(Role.EDITOR)
def testuser_delete(request: WorkbenchRequest, test_user_id: int) -> HttpResponse:
    environment = request.environment
    test_user = selectors.testuser_get(environment=environment, test_user_id=test_user_id)
    services.testuser_delete(test_user=test_user)
    messages.success(request, f"{test_user.user_id} no longer receives tests.")
    return redirect("test_user_list", env=environment.slug)


@require_POST
@environment_page(Role.EDITOR)
def my_test_user_set(request: WorkbenchRequest) -> HttpResponse:
    """Set the id at which the member receives their own tests (editors and owners: viewers change nothing)."""
    environment = request.environment
    form = MyTestUserForm(request.POST)
    if form.is_valid():
        try:
            services.member_test_user_set(
                membership=request.membership,
                user_id=form.cleaned_data["user_id"].strip(),
            )
        except ValidationError:
            messages.error(request, "That userId is already a test user of this environment.")
        else:
            messages.success(request, "Your test user id was saved.")
    return redirect("test_user_list", env=environment.slug)
