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
