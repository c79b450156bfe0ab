"""Segments, their membership ledger, and the marks that bring customers back for evaluation."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from workbench.models import Environment


class SegmentStatus(models.TextChoices):
    COMPUTING = "computing", "Computing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Segment(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    # {"match": "all"|"any", "conditions": [...]} as cleaned by segments.rules.rules_clean.
    rules = models.JSONField()
    status = models.CharField(max_length=10, choices=SegmentStatus.choices, default=SegmentStatus.COMPUTING)
    member_count = models.PositiveIntegerField(default=0)
    last_computed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Bumped by every edit of the rules; a full evaluation computes one version, and a finished
    # evaluation of an older version does not mark the segment ready.
    rules_version = models.PositiveIntegerField(default=1)
    # The lease of the worker running a full evaluation (instead of an "is computing" flag): a
    # worker that dies leaves a lease that runs out, and the sweep starts the evaluation again.
    lease_token = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The rules the ledger was last brought fully in line with (a full evaluation, or an edit's
    # shortcut): an edit that only narrows or only widens them re-evaluates part of the customers.
    evaluated_rules = models.JSONField(null=True, blank=True)
    # Time-relative rules: the moment up to which boundary crossings have been re-checked.
    time_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """The ledger: one row per segment and customer who was ever a member.

    It changes state only in the transaction that also announces the transition (the
    segment-entered/exited analytics event and any trigger start), so each real change of
    membership is recorded exactly once. `sequence` counts the row's transitions.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    user_id = models.CharField(max_length=255)
    is_member = models.BooleanField(default=True)
    entered_at = models.DateTimeField(default=now)
    exited_at = models.DateTimeField(null=True, blank=True)
    sequence = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "user_id"], name="one_membership_row_per_segment_customer"),
        ]
        indexes = [
            models.Index(fields=["environment", "user_id"]),
            models.Index(fields=["segment", "is_member", "user_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {'in' if self.is_member else 'out of'} {self.segment_id}"


class SegmentSize(models.Model):
    """A point of the segment's size chart: its member count at a moment."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes", db_index=False)
    measured_at = models.DateTimeField(default=now)
    member_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["measured_at"]
        indexes = [models.Index(fields=["segment", "measured_at"])]

    def __str__(self) -> str:
        return f"{self.segment_id} at {self.measured_at}: {self.member_count}"


class CustomerMark(models.Model):
    """A customer whose data changed since segments last looked (the incremental path's queue).

    Written in the transaction of the change (through customers' hooks); a worker claims marks
    with SELECT ... FOR UPDATE SKIP LOCKED, re-evaluates the segments whose rules reference what
    changed, and deletes the marks it handled. `fields` says what changed ('*' for everything,
    'tags', a profile field, 'customFields.<key>', 'event:<name>').
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    user_id = models.CharField(max_length=255)
    fields = models.JSONField(default=list)
    marked_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["marked_at"])]

    def __str__(self) -> str:
        return f"{self.user_id} ({', '.join(self.fields)})"
