"""Workbench pages: home, environment switcher, API credentials."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import selectors, services
from .forms import CredentialCreateForm
from .models import Role
from .shell import WorkbenchRequest, current_membership, environment_page


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Open the first environment the user belongs to, or explain that there is none."""
    membership = selectors.membership_list_for_user(user=request.user).first()
    if membership is None:
        return render(request, "workbench/no_environment.html")
    return redirect("environment_home", env=membership.environment.slug)


@login_required
def switch_environment(request: HttpRequest) -> HttpResponse:
    """Go to the same section of another environment the user is a member of."""
    slug = request.GET.get("env", "")
    section = request.GET.get("section", "environment_home")
    membership = selectors.membership_get(user=request.user, environment_slug=slug)
    allowed_sections = {
        "environment_home", "customer_list", "credential_list", "test_user_list", "flow_list", "flow_feed",
        "flow_settings",
    }  # fmt: skip
    # A page about one object (a customer) has no twin in the other environment: open its list.
    # A page about one object of this environment maps to its list in the other one.
    if section == "customer_detail":
        section = "customer_list"
    elif section.startswith("flow_") and section not in allowed_sections:
        section = "flow_list"
    target = section if section in allowed_sections else "environment_home"
    return redirect(reverse(target, kwargs={"env": membership.environment.slug}))


@environment_page(Role.OWNER)
def credential_list(request: WorkbenchRequest) -> HttpResponse:
    return _render_credentials(request, CredentialCreateForm(), status=200)


def _render_credentials(request: WorkbenchRequest, form: CredentialCreateForm, status: int) -> HttpResponse:
    environment = request.environment
    context = {
        "credentials": selectors.credential_list(environment=environment),
        "form": form,
        "token_url": request.build_absolute_uri(reverse("oauth2_provider:token")),
        "api_base": request.build_absolute_uri(f"/api/v1/{environment.slug}/"),
    }
    return render(request, "workbench/credentials.html", context, status=status)


@require_POST
@environment_page(Role.OWNER)
def credential_create(request: WorkbenchRequest) -> HttpResponse:
    environment = request.environment
    form = CredentialCreateForm(request.POST)
    if not form.is_valid():
        return _render_credentials(request, form, status=400)
    used_nonces: list[str] = request.session.get("used_credential_nonces", [])
    nonce = form.cleaned_data["nonce"]
    if nonce and nonce in used_nonces:
        messages.info(request, "That credential was already created; its secret is shown only once.")
        return redirect("credential_list", env=environment.slug)
    if nonce:
        request.session["used_credential_nonces"] = [*used_nonces[-19:], nonce]
    issued = services.credential_create(
        environment=environment,
        role=form.cleaned_data["role"],
        label=form.cleaned_data["label"],
        by=current_membership(request).user,
    )
    # The secret is rendered into this one response and never stored in clear.
    context = {
        "credential": issued.credential,
        "client_secret": issued.client_secret,
        "token_url": request.build_absolute_uri(reverse("oauth2_provider:token")),
    }
    return render(request, "workbench/credential_created.html", context)


@require_POST
@environment_page(Role.OWNER)
def credential_revoke(request: WorkbenchRequest, client_id: str) -> HttpResponse:
    environment = request.environment
    credential = selectors.credential_get(environment=environment, client_id=client_id)
    services.credential_revoke(credential=credential, by=current_membership(request).user)
    messages.success(request, f"Credential {credential.client_id} was revoked; its tokens no longer work.")
    return redirect("credential_list", env=environment.slug)
