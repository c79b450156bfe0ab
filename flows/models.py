"""Action flows, their published versions, invocations, runs, cards and analytics events."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from workbench.models import Environment

from .definitions import Definition


def empty_definition() -> Definition:
    return {"variables": [], "steps": []}


class FlowStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Mode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"


class Flow(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=FlowStatus.choices, default=FlowStatus.DRAFT)
    # The draft definition: {"variables": [{name, default, required}], "steps": [...]}.
    draft = models.JSONField(default=empty_definition)
    published_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["environment", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class FlowVersion(models.Model):
    """An immutable, numbered snapshot of a flow's definition, made by publishing."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["flow", "-number"]
        constraints = [models.UniqueConstraint(fields=["flow", "number"], name="one_version_number_per_flow")]

    def __str__(self) -> str:
        return f"{self.flow.name} v{self.number}"


class StartStatus(models.TextChoices):
    """What one start of a start request came to (SPEC section 2): not a stored column."""

    ACCEPTED = "accepted", "Accepted"  # a new invocation
    DUPLICATE = "duplicate", "Duplicate"  # its key was taken with the same content: the original's result


class InvocationStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"  # durable; runs not yet created
    RUNNING = "running", "Running"  # runs created and executing
    COMPLETED = "completed", "Completed"  # every run finished (completed or failed)


class Invocation(models.Model):
    """One accepted start of one flow; unique per flow, mode and flowInvocationId."""

    # No single-column indexes on the foreign keys: the composite indexes below start with them,
    # and every start pays for each index it updates (see WRITTEN_PER_START_INDEXES in the tests).
    # No database constraints either: a constraint makes each insert lock its environment's and
    # flow's rows (FOR KEY SHARE), and concurrent starts of one flow then share those locks as
    # multixacts, a fifth of PostgreSQL's CPU per webhook under load (measured). Deletes still
    # cascade, in Django; the fan-out drops an invocation whose flow was deleted while it was
    # being accepted (see UNCONSTRAINED_FOREIGN_KEYS in the tests).
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="invocations", db_index=False, db_constraint=False
    )
    flow = models.ForeignKey(
        Flow, on_delete=models.CASCADE, related_name="invocations", db_index=False, db_constraint=False
    )
    mode = models.CharField(max_length=4, choices=Mode.choices)
    flow_invocation_id = models.CharField(max_length=255)
    # Who started it: api, webhook, segment, event, sfmc, marketo, workbench, csv, dashboard, test-sender.
    source = models.CharField(max_length=20)
    # The member who made a manual start (Workbench send, CSV, dashboard, test sender).
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    # The trigger's id when a trigger started it (a plain id: flows never imports triggers).
    trigger_id = models.BigIntegerField(null=True, blank=True)
    # Its place in a chain of flows starting flows (SPEC 5 "Recursion guard"): a start from an
    # API call, a webhook, a segment change or an Events API event is 1; a start caused by an
    # analytics event of a depth-d invocation is d + 1. Starts beyond MAX_CHAIN_DEPTH are refused.
    chain_depth = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=InvocationStatus.choices, default=InvocationStatus.ACCEPTED)
    # A hash of the canonical start request, to tell an identical repeat from a conflicting one.
    content_hash = models.CharField(max_length=64)
    request = models.JSONField()  # the canonical start request as accepted
    definition = models.JSONField()  # the definition the runs execute (draft snapshot or version)
    version_number = models.PositiveIntegerField(null=True, blank=True)  # None for test starts
    variables = models.JSONField(default=dict)  # resolved: given values over defaults
    notification_detail = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    card_options = models.JSONField(default=dict)
    target_user_ids = models.JSONField(default=list)  # who gets a run
    ignored_user_ids = models.JSONField(default=list)  # test starts: ids that are not test users
    created_at = models.DateTimeField(default=timezone.now)
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "mode", "flow_invocation_id"], name="one_invocation_per_key_flow_and_mode"
            )
        ]
        indexes = [
            models.Index(fields=["environment", "flow_invocation_id"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["flow", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.flow_invocation_id} ({self.mode})"

    @property
    def is_test(self) -> bool:
        return self.mode == Mode.TEST


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    WAITING = "waiting", "Waiting"  # paused on a wait step until resume_at
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class FlowRun(models.Model):
    """One target user's run through an invocation's steps."""

    # The indexes below lead with these foreign keys, so they need none of their own: every
    # fan-out writes a row per target user.
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    invocation = models.ForeignKey(Invocation, on_delete=models.CASCADE, related_name="runs", db_index=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    user_id = models.CharField(max_length=255)
    test = models.BooleanField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    step_index = models.PositiveIntegerField(default=0)  # the next step to execute
    resume_at = models.DateTimeField(null=True, blank=True)  # when a waiting run is due
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invocation", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["invocation", "user_id"], name="one_run_per_invocation_and_user")
        ]
        indexes = [
            models.Index(fields=["status", "resume_at"]),
            models.Index(fields=["status", "updated_at"]),
            models.Index(fields=["flow", "test", "status"]),
            models.Index(fields=["environment", "user_id", "-created_at"]),  # a customer's runs
        ]

    def __str__(self) -> str:
        return f"run of {self.user_id} ({self.status})"


class Card(models.Model):
    """A card published to one user's feed by one send_card step of one run."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="cards")
    invocation = models.ForeignKey(Invocation, on_delete=models.CASCADE, related_name="cards")
    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="cards")
    flow_invocation_id = models.CharField(max_length=255)  # copied, so a feed needs no join
    step_index = models.PositiveIntegerField()
    user_id = models.CharField(max_length=255)
    title = models.TextField()
    body = models.TextField(blank=True)
    actions = models.JSONField(default=list)
    test = models.BooleanField()
    version_number = models.PositiveIntegerField(null=True, blank=True)
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "step_index"], name="one_card_per_run_step")]
        indexes = [models.Index(fields=["environment", "user_id", "-published_at"])]

    def __str__(self) -> str:
        return f"{self.title} → {self.user_id}"


class AnalyticsEvent(models.Model):
    """An append-only analytics record (SPEC section 1)."""

    # The composite indexes below start with the foreign keys, so they need none of their own,
    # and no database constraints, as Invocation's (see UNCONSTRAINED_FOREIGN_KEYS in the tests).
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="analytics_events", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=100)
    user_id = models.CharField(max_length=255, blank=True)
    # Append-only: deleting a flow keeps its events (their flowId becomes null).
    flow = models.ForeignKey(
        Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False, db_constraint=False
    )
    flow_invocation_id = models.CharField(max_length=255, blank=True)
    test = models.BooleanField(default=False)
    properties = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "name", "occurred_at"]),
            models.Index(fields=["flow", "name", "test"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.user_id}"
