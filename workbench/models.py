"""Environments (tenants), their members, and their API credentials."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models


class Role(models.TextChoices):
    """A member's role in one environment. Owners also manage credentials."""

    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.OWNER: 2}

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1 to 50 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)


class Environment(models.Model):
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    manual_send_limit = models.PositiveIntegerField(
        default=settings.DEFAULT_MANUAL_SEND_LIMIT, validators=[MinValueValidator(1)]
    )
    # Whether analytics figures count test invocations, runs and cards with live ones.
    analytics_include_test_data = models.BooleanField(default=False)
    # How long webhook request logs are kept (held requests are kept until handled).
    request_log_retention_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Membership(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["environment", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.environment.slug} as {self.role}"

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]


class CredentialRole(models.TextChoices):
    """An API credential's single role; each is one OAuth2 scope."""

    EVENTS = "events", "Events: start flows, send events and customer data"
    WORKBENCH = "workbench", "Workbench: read and change configuration"
    AUTH = "auth", "Auth: manage credentials"


class ApiCredential(models.Model):
    """One OAuth2 client (client credentials grant) bound to one environment and role.

    The secret lives hashed in the OAuth2 application; revoking deletes the application,
    and with it every token it was issued, so they stop working at once. The row stays
    for the audit trail.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="credentials")
    role = models.CharField(max_length=20, choices=CredentialRole.choices)
    client_id = models.CharField(max_length=100, unique=True)
    label = models.CharField(max_length=200, blank=True)
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="credential",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # When a token was last issued to it or it last called the API, to the minute: the API
    # writes it at most once a minute per credential (services.credential_use_record).
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.role}, {self.environment.slug})"


class WorkerHeartbeat(models.Model):
    """The last time each Celery worker proved it takes work from the broker.

    Written by a periodic task, so a stale row means the broker, beat or that worker is down.
    """

    hostname = models.CharField(max_length=255, unique=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
