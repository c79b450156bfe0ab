"""Segments in the admin: read the ledger, never write it (membership changes only through the
ledger's transaction, which also records the entered/exited event)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Segment, SegmentMembership


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Segment)
class SegmentAdmin(ReadOnlyAdmin):
    """Segments are created and changed in the Workbench or the API, where their rules are
    checked and their members re-evaluated; here they are only read."""

    list_display = ["name", "environment", "status", "member_count", "last_computed_at"]
    list_filter = ["environment", "status"]
    search_fields = ["name"]
    list_select_related = ["environment"]
    readonly_fields = [
        "environment",
        "name",
        "rules",
        "status",
        "member_count",
        "last_computed_at",
        "last_error",
        "rules_version",
        "created_at",
        "updated_at",
        "created_by",
    ]
    exclude = ["lease_token", "lease_until", "time_checked_at"]


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(ReadOnlyAdmin):
    list_display = ["user_id", "segment", "is_member", "entered_at", "exited_at", "sequence"]
    list_filter = ["is_member", "segment__environment"]
    search_fields = ["user_id", "segment__name"]
    list_select_related = ["segment"]
    # The ledger can be large: no count of every row on each page, and no segment dropdown.
    show_full_result_count = False
    raw_id_fields = ["segment"]
