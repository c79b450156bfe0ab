"""Django admin for triggers, their mode history and webhook request logs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import CsvTask, MarketoBatch, MarketoCallback, Trigger, TriggerModeChange, WebhookRequest


class ModeChangeInline(admin.TabularInline):
    model = TriggerModeChange
    extra = 0
    can_delete = False
    readonly_fields = ("from_mode", "to_mode", "reason", "changed_by", "changed_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "type", "mode", "flow", "environment", "paused_reason", "updated_at")
    list_filter = ("type", "mode", "environment")
    search_fields = ("name", "flow__name", "paused_reason", "token")
    list_select_related = ("flow", "environment")
    raw_id_fields = ("environment", "flow", "created_by")
    # The mode changes in the Workbench or the API only, where going live is checked (the flow
    # must be published) and every change is recorded with who made it.
    readonly_fields = (
        "mode",
        "paused_reason",
        "created_at",
        "updated_at",
        "token",
        "capture_until",
        "mode_before_pause",
    )
    inlines = [ModeChangeInline]


@admin.register(WebhookRequest)
class WebhookRequestAdmin(admin.ModelAdmin):
    """The request log is evidence: read it here, replay it in the Workbench."""

    list_display = ("received_at", "trigger", "method", "source_ip", "outcome", "status_code", "code", "held_state")
    list_filter = ("outcome", "held_state", "status_code", "environment")
    search_fields = ("flow_invocation_id", "source_ip", "code")
    list_select_related = ("trigger__flow",)
    date_hierarchy = "received_at"
    readonly_fields = [field.name for field in WebhookRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CsvTask)
class CsvTaskAdmin(admin.ModelAdmin):
    """Read-only: a task changes through its services (confirm, cancel) and its worker only."""

    list_display = (
        "id",
        "flow",
        "mode",
        "status",
        "rows_total",
        "rows_done",
        "rows_failed",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "mode", "environment")
    search_fields = ("file_name", "flow__name")
    list_select_related = ("flow", "created_by")
    exclude = ("lease_token",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MarketoBatch)
class MarketoBatchAdmin(admin.ModelAdmin):
    """Read-only: a batch is Marketo's, processed by its worker. Marketo's callback key is not shown."""

    list_display = ("id", "trigger", "received_at", "lead_count", "munchkin_id", "campaign_id", "processed_at")
    list_filter = ("processed_at",)
    search_fields = ("munchkin_id", "campaign_id")
    list_select_related = ("trigger__flow",)
    date_hierarchy = "received_at"
    exclude = ("api_callback_key", "token")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MarketoCallback)
class MarketoCallbackAdmin(admin.ModelAdmin):
    """Read-only: a callback changes through its worker only (attempts, backoff, lease)."""

    list_display = ("id", "trigger", "batch", "part", "status", "attempts", "lead_count", "failed_count", "last_status")
    list_filter = ("status",)
    list_select_related = ("trigger__flow", "batch")
    readonly_fields = [field.name for field in MarketoCallback._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
