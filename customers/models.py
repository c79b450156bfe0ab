"""Customers (the end users of our customers' apps) and the test users of an environment."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now

from workbench.models import Environment, Membership

# Profile fields that hold one optional string each (SPEC section 1).
PROFILE_TEXT_FIELDS = ("name", "email", "phone", "city", "country", "region", "timezone")
# Activity fields: when the customer was created and last seen, per platform.
ACTIVITY_FIELDS = (
    "created_at",
    "first_seen_at",
    "last_seen_at",
    "last_seen_ios_at",
    "last_seen_android_at",
    "last_seen_web_at",
)


class Customer(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="customers")
    user_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, null=True, blank=True)
    email = models.CharField(max_length=320, null=True, blank=True)
    phone = models.CharField(max_length=64, null=True, blank=True)
    city = models.CharField(max_length=255, null=True, blank=True)
    country = models.CharField(max_length=255, null=True, blank=True)
    region = models.CharField(max_length=255, null=True, blank=True)
    timezone = models.CharField(max_length=64, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_ios_at = models.DateTimeField(null=True, blank=True)
    last_seen_android_at = models.DateTimeField(null=True, blank=True)
    last_seen_web_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "user_id"], name="one_customer_per_user_id"),
        ]
        indexes = [
            models.Index(fields=["environment", "email"]),
            models.Index(fields=["environment", "name"]),
            models.Index(fields=["environment", "-updated_at"]),
            # Segments' time-relative rules re-check only the customers whose timestamp crossed a
            # boundary since the last check: an index range on the two timestamps rules use most.
            # The per-platform lastSeen fields and custom dates are filtered without one.
            models.Index(fields=["environment", "last_seen_at"]),
            models.Index(fields=["environment", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.user_id


class TestUser(models.Model):
    """A userId allowed to receive test sends in one environment.

    Either a member's own test user (membership set: the id the member uses in the app
    to see their own tests) or an external test user created by hand.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="test_users")
    user_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    membership = models.OneToOneField(
        Membership, on_delete=models.CASCADE, null=True, blank=True, related_name="test_user"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "user_id"], name="one_test_user_per_user_id"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} (test user)"


class Event(models.Model):
    """A custom event sent through the Events API (SPEC section 5), append-only.

    Segments' event tests read `EventDailyCount` when they have no property filter, and these
    rows (through the (environment, user_id, name, occurred_at) index) when they have one.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="events", db_index=False)
    user_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=now)
    message_id = models.CharField(max_length=100, null=True, blank=True)
    # The flow whose run caused it, and how deep in a chain of starts (the recursion guard).
    source_flow_id = models.BigIntegerField(null=True, blank=True)
    chain_depth = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "user_id", "name", "occurred_at"]),
            models.Index(fields=["environment", "name", "-occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.user_id}"


class EventMessageKey(models.Model):
    """A messageId seen in the last 24 hours: a repeat is a duplicate (pruned after a day)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "message_id"], name="one_event_per_message_id"),
        ]

    def __str__(self) -> str:
        return self.message_id


class EventDailyCount(models.Model):
    """How many events of one name a customer had on one UTC day: what windowed event tests read."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+", db_index=False)
    user_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # On PostgreSQL its index also carries `count` (migration 0003): a windowed event
            # test over a million customers then reads the index alone (7 s → 1 s). Declared
            # plainly here because Django drops a constraint with `include` on SQLite entirely.
            models.UniqueConstraint(
                fields=["environment", "name", "user_id", "day"], name="one_event_count_per_customer_name_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.name} {self.day}: {self.count}"
