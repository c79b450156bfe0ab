"""Reads for environments, memberships and API credentials, scoped to an environment."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from .models import ROLE_RANK, ApiCredential, Environment, Membership, Role


def membership_list_for_user(*, user: User | AnonymousUser) -> QuerySet[Membership]:
    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user=user).select_related("environment").order_by("environment__name")


def membership_get(*, user: User | AnonymousUser, environment_slug: str) -> Membership:
    """The user's membership of the environment; 404 when there is none (or no such slug)."""
    membership = membership_list_for_user(user=user).filter(environment__slug=environment_slug).first()
    if membership is None:
        raise Http404("No such environment")
    return membership


def member_list(*, environment: Environment) -> list[Membership]:
    """The environment's members, owners first, then editors and viewers, by username."""
    members = Membership.objects.filter(environment=environment).select_related("user")
    return sorted(members, key=lambda m: (-ROLE_RANK[Role(m.role)], m.user.get_username().lower()))


def member_get(*, environment: Environment, membership_id: int) -> Membership:
    """One member of the environment; 404 for another environment's membership."""
    membership = (
        Membership.objects.filter(environment=environment, pk=membership_id)
        .select_related("user", "environment")
        .first()
    )
    if membership is None:
        raise Http404("No such member")
    return membership


def credential_list(*, environment: Environment) -> QuerySet[ApiCredential]:
    """The environment's active credentials, newest first."""
    return ApiCredential.objects.filter(environment=environment, revoked_at__isnull=True).select_related("created_by")


def credential_history(*, environment: Environment) -> list[ApiCredential]:
    """Every credential the environment ever had for the Workbench page: active ones first
    (newest first), then revoked ones (most recently revoked first), kept for the audit trail."""
    credentials = ApiCredential.objects.filter(environment=environment).select_related("created_by", "revoked_by")
    active = [credential for credential in credentials if credential.revoked_at is None]
    revoked = [credential for credential in credentials if credential.revoked_at is not None]
    revoked.sort(key=lambda credential: credential.revoked_at or credential.created_at, reverse=True)
    return active + revoked


def credential_get(*, environment: Environment, client_id: str) -> ApiCredential:
    credential = credential_list(environment=environment).filter(client_id=client_id).first()
    if credential is None:
        raise Http404("No such credential")
    return credential
