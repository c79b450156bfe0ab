"""Django admin for triggers."""

from __future__ import annotations

from django.contrib import admin

from .models import Trigger


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "mode", "flow", "environment", "paused_reason", "updated_at")
    list_filter = ("type", "mode", "environment")
    search_fields = ("flow__name", "paused_reason")
    list_select_related = ("flow", "environment")
    raw_id_fields = ("environment", "flow", "created_by")
    readonly_fields = ("created_at", "updated_at")
