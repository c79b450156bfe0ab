"""Django admin for flows: inspect flows, versions, invocations, runs and cards.

Analytics events are append-only: the admin shows them and nothing else.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import AnalyticsEvent, Card, Flow, FlowRun, FlowVersion, Invocation


class FlowVersionInline(admin.TabularInline):
    model = FlowVersion
    extra = 0
    fields = ("number", "published_at", "published_by")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("name", "environment", "status", "published_version", "updated_at")
    list_filter = ("status", "environment")
    search_fields = ("name", "environment__slug")
    list_select_related = ("environment",)
    raw_id_fields = ("created_by",)
    readonly_fields = ("published_version", "created_at", "updated_at")
    date_hierarchy = "created_at"
    inlines = [FlowVersionInline]


@admin.register(FlowVersion)
class FlowVersionAdmin(admin.ModelAdmin):
    """Versions are immutable snapshots made by publishing."""

    list_display = ("flow", "number", "published_at", "published_by")
    list_filter = ("flow__environment",)
    search_fields = ("flow__name",)
    list_select_related = ("flow", "published_by")
    raw_id_fields = ("flow", "published_by")
    readonly_fields = ("flow", "number", "definition", "published_at", "published_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Invocation)
class InvocationAdmin(admin.ModelAdmin):
    list_display = ("flow_invocation_id", "flow", "mode", "source", "status", "created_at")
    list_filter = ("mode", "status", "source", "environment")
    search_fields = ("flow_invocation_id",)
    list_select_related = ("flow",)
    raw_id_fields = ("environment", "flow")
    date_hierarchy = "created_at"
    readonly_fields = ("content_hash", "created_at", "fanned_out_at", "completed_at")


@admin.register(FlowRun)
class FlowRunAdmin(admin.ModelAdmin):
    list_display = ("user_id", "flow", "invocation", "test", "status", "step_index", "resume_at", "updated_at")
    list_filter = ("status", "test", "environment")
    search_fields = ("user_id", "invocation__flow_invocation_id")
    list_select_related = ("flow", "invocation")
    raw_id_fields = ("environment", "invocation", "flow")


@admin.register(Card)
class CardAdmin(admin.ModelAdmin):
    list_display = ("title", "user_id", "flow", "test", "version_number", "published_at")
    list_filter = ("test", "environment")
    search_fields = ("user_id", "title", "flow_invocation_id")
    list_select_related = ("flow",)
    raw_id_fields = ("environment", "flow", "invocation", "run")
    date_hierarchy = "published_at"


@admin.register(AnalyticsEvent)
class AnalyticsEventAdmin(admin.ModelAdmin):
    """Append-only: no one adds, changes or deletes an analytics event here."""

    list_display = ("name", "user_id", "flow", "flow_invocation_id", "test", "occurred_at")
    list_filter = ("name", "test", "environment")
    search_fields = ("user_id", "flow_invocation_id", "name")
    list_select_related = ("flow",)
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
