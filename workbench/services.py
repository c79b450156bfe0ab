"""Writes for environments, memberships and API credentials."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from .models import ApiCredential, Environment, Membership, WorkerHeartbeat


def environment_create(*, slug: str, name: str) -> Environment:
    environment = Environment(slug=slug, name=name)
    environment.full_clean()
    environment.save()
    return environment


def membership_set(*, environment: Environment, user: User, role: str) -> Membership:
    """Make `user` a member of `environment` with `role` (changing the role if already one)."""
    membership, _ = Membership.objects.update_or_create(environment=environment, user=user, defaults={"role": role})
    return membership


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


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"last_seen_at": timezone.now()}
    )
    return heartbeat
