"""Writes for environments, memberships and API credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from .errors import Refused
from .models import ApiCredential, Environment, Membership, Role, WorkerHeartbeat


def environment_create(*, slug: str, name: str) -> Environment:
    environment = Environment(slug=slug, name=name)
    environment.full_clean()
    environment.save()
    return environment


def membership_set(*, environment: Environment, user: User, role: str) -> Membership:
    """Make `user` a member of `environment` with `role` (changing the role if already one).

    For set-up (seeding, commands, tests); the Workbench's members page uses the services
    below, which also keep the environment's last owner.
    """
    membership, _ = Membership.objects.update_or_create(environment=environment, user=user, defaults={"role": role})
    return membership


LAST_OWNER_DETAIL = (
    "{user} is the last owner of {environment}. Make another member an owner first: "
    "an environment without an owner could not manage its members or credentials."
)


def _user_find(identifier: str) -> User:
    """The active user whose username or email is `identifier` (case-insensitive)."""
    identifier = identifier.strip()
    users = get_user_model().objects.filter(is_active=True)
    matches = list(users.filter(username__iexact=identifier)[:2]) or list(
        users.filter(email__iexact=identifier).exclude(email="")[:2]
    )
    if not matches:
        raise Refused(
            404,
            "user_not_found",
            f"No user is called “{identifier}”. Members are added from existing accounts; "
            "ask an administrator to create the account first.",
            {"identifier": ["No user has this username or email."]},
        )
    if len(matches) > 1:
        raise Refused(
            409,
            "user_ambiguous",
            f"Several accounts have the email {identifier}; add the member by username.",
            {"identifier": ["Several accounts have this email; use the username."]},
        )
    return matches[0]


def member_add(*, environment: Environment, identifier: str, role: str) -> Membership:
    """Make an existing user (found by username or email) a member with `role`.

    A user who is already a member is refused rather than silently given another role.
    """
    user = _user_find(identifier)
    with transaction.atomic():
        if Membership.objects.filter(environment=environment, user=user).exists():
            raise Refused(
                409,
                "already_member",
                f"{user.get_username()} is already a member of {environment.name}; change their role in the list.",
                {"identifier": ["Already a member."]},
            )
        membership = Membership(environment=environment, user=user, role=Role(role))
        membership.full_clean(exclude=["environment", "user"])
        membership.save()
    return membership


def _refuse_losing_the_last_owner(locked: Membership) -> None:
    """Refuse when `locked` (a row locked by the caller) is the environment's only owner.

    The owners' rows are locked too, so two owners demoting each other at the same moment
    cannot both succeed and leave the environment with none.
    """
    if locked.role != Role.OWNER:
        return
    owners = list(
        Membership.objects.select_for_update()
        .filter(environment_id=locked.environment_id, role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if owners == [locked.pk]:
        detail = LAST_OWNER_DETAIL.format(user=locked.user.get_username(), environment=locked.environment.name)
        raise Refused(409, "last_owner", detail)


def _lock(membership: Membership) -> Membership:
    return Membership.objects.select_for_update().select_related("user", "environment").get(pk=membership.pk)


def member_role_change(*, membership: Membership, role: str) -> Membership:
    """Give a member another role; the environment's last owner keeps being an owner."""
    role = Role(role)
    with transaction.atomic():
        locked = _lock(membership)
        if locked.role == role:
            return locked
        _refuse_losing_the_last_owner(locked)
        locked.role = role
        locked.save(update_fields=["role"])
    return locked


def member_remove(*, membership: Membership) -> None:
    """Remove a member from the environment (their account stays); never the last owner."""
    with transaction.atomic():
        locked = _lock(membership)
        _refuse_losing_the_last_owner(locked)
        locked.delete()


def owners_remaining_check(*, environment: Environment, memberships: list[tuple[int | None, str | None]]) -> None:
    """For bulk edits (the admin's inline): refuse when the edited rows leave no owner.

    `memberships` lists (pk, new role or None when removed) for every edited row; rows not
    listed keep their role.
    """
    owners = Membership.objects.filter(environment=environment, role=Role.OWNER)
    if not owners.exists():
        return  # an environment being set up has no owner to lose yet
    edited = [pk for pk, _role in memberships if pk is not None]
    untouched_owner = owners.exclude(pk__in=edited).exists()
    owner_after_edit = any(role == Role.OWNER for _pk, role in memberships)
    if not untouched_owner and not owner_after_edit:
        raise Refused(409, "last_owner", "Keep at least one owner in the environment.")


@dataclass(frozen=True)
class IssuedCredential:
    credential: ApiCredential
    client_secret: str  # the only moment the raw secret exists outside the client


def credential_create(
    *, environment: Environment, role: str, label: str = "", by: User | None = None
) -> IssuedCredential:
    """Issue a client-credentials OAuth2 client for one environment and role.

    The secret is generated here, stored hashed by the OAuth2 application, and returned
    once to be shown to whoever asked.
    """
    secret = generate_client_secret()
    with transaction.atomic():
        application = Application.objects.create(
            name=f"{environment.slug}:{role}:{label}"[:255],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
            skip_authorization=True,
        )
        credential = ApiCredential.objects.create(
            environment=environment,
            role=role,
            label=label,
            client_id=application.client_id,
            application=application,
            created_by=by,
        )
    return IssuedCredential(credential=credential, client_secret=secret)


def credential_revoke(*, credential: ApiCredential, by: User | None = None) -> ApiCredential:
    """Revoke a credential: its OAuth2 application and every token it holds are deleted at once."""
    with transaction.atomic():
        locked = ApiCredential.objects.select_for_update().get(pk=credential.pk)
        if locked.revoked_at is not None:
            return locked
        if locked.application_id is not None:
            Application.objects.filter(pk=locked.application_id).delete()
        locked.application = None
        locked.revoked_at = timezone.now()
        locked.revoked_by = by
        locked.save(update_fields=["application", "revoked_at", "revoked_by"])
    return locked


# How stale a credential's last_used_at may be: the API writes it at most this often.
LAST_USED_PRECISION = timedelta(seconds=60)


def credential_use_record(*, credential: ApiCredential, at: datetime | None = None, always: bool = False) -> None:
    """Record that the credential was used (a token issued to it, or an API call with one).

    An API call pays no write when the value it read with its token is under a minute old;
    otherwise one conditional UPDATE, which concurrent calls of the same credential also pass
    through at most once a minute (whoever finds the value fresh changes nothing).
    `always` is for token issuance, a write already.
    """
    now = at or timezone.now()
    stale_before = now - LAST_USED_PRECISION
    if not always and credential.last_used_at is not None and credential.last_used_at >= stale_before:
        return
    rows = ApiCredential.objects.filter(pk=credential.pk)
    if not always:
        rows = rows.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before))
    rows.update(last_used_at=now)
    credential.last_used_at = now


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"last_seen_at": timezone.now()}
    )
    return heartbeat
