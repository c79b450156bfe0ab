"""Triggers: what starts a flow. Every flow has exactly one `api` trigger."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from flows.models import Flow
from workbench.models import Environment


class TriggerType(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    SEGMENT = "segment", "Segment"
    EVENT = "event", "Event"
    SFMC = "sfmc", "Salesforce Marketing Cloud"
    MARKETO = "marketo", "Marketo"


class TriggerMode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"
    DISABLED = "disabled", "Disabled"
    PAUSED = "paused", "Paused"


class Trigger(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="triggers")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="triggers")
    type = models.CharField(max_length=10, choices=TriggerType.choices)
    # The api trigger's mode is per request (/start is live, /test is test); it shows "live".
    mode = models.CharField(max_length=10, choices=TriggerMode.choices, default=TriggerMode.TEST)
    paused_reason = models.TextField(blank=True)
    # Type-specific configuration (sections 4 and 5 of the SPEC).
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["flow", "id"]
        constraints = [
            models.UniqueConstraint(fields=["flow"], condition=Q(type="api"), name="one_api_trigger_per_flow"),
        ]

    def __str__(self) -> str:
        return f"{self.type} trigger of {self.flow.name}"
