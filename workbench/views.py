"""Workbench pages: home, environment switcher, members, API credentials."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from . import selectors, services
from .errors import Refused
from .forms import ROLE_DESCRIPTIONS, CredentialCreateForm, MemberAddForm, MemberRoleForm
from .models import Role
from .shell import WorkbenchRequest, current_membership, environment_page


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page links; send them to the real one."""
    return redirect(static("favicon.svg"), permanent=True)


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
        "flow_settings", "member_list", "segment_list",
    }  # fmt: skip
    # A page about one object (a customer) has no twin in the other environment: open its list.
    # A page about one object of this environment maps to its list in the other one.
    if section == "customer_detail":
        section = "customer_list"
    elif section.startswith("flow_") and section not in allowed_sections:
        section = "flow_list"
    elif section.startswith("segment_"):
        section = "segment_list"
    target = section if section in allowed_sections else "environment_home"
    return redirect(reverse(target, kwargs={"env": membership.environment.slug}))


@environment_page(Role.OWNER)
def credential_list(request: WorkbenchRequest) -> HttpResponse:
    return _render_credentials(request, CredentialCreateForm(), status=200)


def _render_credentials(request: WorkbenchRequest, form: CredentialCreateForm, status: int) -> HttpResponse:
    environment = request.environment
    context = {
        "credentials": selectors.credential_history(environment=environment),
        "a_minute_ago": timezone.now() - timedelta(minutes=1),
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


# --- Members ------------------------------------------------------------------------------


@require_GET
@environment_page()
def member_list(request: WorkbenchRequest) -> HttpResponse:
    """Every member sees who is in the environment (and whom to ask); owners manage it."""
    return _render_members(request, MemberAddForm(), status=200)


def _render_members(request: WorkbenchRequest, form: MemberAddForm, status: int) -> HttpResponse:
    members = selectors.member_list(environment=request.environment)
    owner_count = sum(1 for member in members if member.role == Role.OWNER)
    context = {
        "members": members,
        "last_owner_id": members[0].pk if owner_count == 1 else None,
        "form": form,
        "roles": [(role, label, ROLE_DESCRIPTIONS[Role(role)]) for role, label in Role.choices],
    }
    return render(request, "workbench/members.html", context, status=status)


@require_POST
@environment_page(Role.OWNER)
def member_add(request: WorkbenchRequest) -> HttpResponse:
    environment = request.environment
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _render_members(request, form, status=400)
    try:
        membership = services.member_add(
            environment=environment, identifier=form.cleaned_data["identifier"], role=form.cleaned_data["role"]
        )
    except Refused as refused:
        form.add_error("identifier", refused.detail)
        return _render_members(request, form, status=refused.status)
    username, role = membership.user.get_username(), membership.role
    messages.success(request, f"{username} is now {_article(role)} {role} of {environment.name}.")
    return redirect("member_list", env=environment.slug)


@require_POST
@environment_page(Role.OWNER)
def member_role_change(request: WorkbenchRequest, membership_id: int) -> HttpResponse:
    environment = request.environment
    membership = selectors.member_get(environment=environment, membership_id=membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, editor or viewer.")
        return redirect("member_list", env=environment.slug)
    try:
        changed = services.member_role_change(membership=membership, role=form.cleaned_data["role"])
    except Refused as refused:
        messages.error(request, refused.detail)
        return redirect("member_list", env=environment.slug)
    messages.success(request, f"{changed.user.get_username()} is now {_article(changed.role)} {changed.role}.")
    return redirect("member_list", env=environment.slug)


@require_http_methods(["GET", "POST"])
@environment_page(Role.OWNER)
def member_remove(request: WorkbenchRequest, membership_id: int) -> HttpResponse:
    """GET: what removing the member means, to confirm (the dialog's fragment when htmx asks).
    POST: remove them; an owner who removes themselves leaves the environment's pages."""
    environment = request.environment
    membership = selectors.member_get(environment=environment, membership_id=membership_id)
    is_self = membership.pk == current_membership(request).pk
    if request.method == "POST":
        try:
            services.member_remove(membership=membership)
        except Refused as refused:
            messages.error(request, refused.detail)
            return redirect("member_list", env=environment.slug)
        if is_self:
            messages.success(request, f"You left {environment.name}.")
            return redirect("home")
        messages.success(request, f"{membership.user.get_username()} is no longer a member of {environment.name}.")
        return redirect("member_list", env=environment.slug)
    owners = sum(1 for member in selectors.member_list(environment=environment) if member.role == Role.OWNER)
    context = {
        "member": membership,
        "is_self": is_self,
        "is_last_owner": membership.role == Role.OWNER and owners == 1,
    }
    template = "workbench/_member_remove.html" if request.htmx else "workbench/member_remove.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _article(role: str) -> str:
    return "an" if role in {Role.OWNER, Role.EDITOR} else "a"
