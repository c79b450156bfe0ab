from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import ApiCredential, Environment, Membership, WorkerHeartbeat
from .services import credential_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "manual_send_limit", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "environment", "role", "created_at")
    list_filter = ("role", "environment")
    search_fields = ("user__username", "user__email", "environment__slug")
    list_select_related = ("user", "environment")
    raw_id_fields = ("user",)


@admin.register(ApiCredential)
class ApiCredentialAdmin(admin.ModelAdmin):
    """Credentials are issued in the Workbench or the API (the secret is shown once there);
    here they are inspected and revoked."""

    list_display = ("client_id", "environment", "role", "label", "created_at", "created_by", "revoked_at")
    list_filter = ("role", "environment", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("client_id", "label", "environment__slug")
    list_select_related = ("environment", "created_by")
    readonly_fields = [field.name for field in ApiCredential._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected credentials (their tokens stop working at once)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiCredential]) -> None:
        count = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            credential_revoke(credential=credential, by=request.user)  # type: ignore[arg-type]
            count += 1
        self.message_user(request, f"Revoked {count} credential(s).", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "last_seen_at")
    readonly_fields = ("hostname", "last_seen_at")
