from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .errors import Refused
from .models import ApiCredential, Environment, Membership, Role, WorkerHeartbeat
from .services import credential_revoke, member_remove, owners_remaining_check


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    """The environment keeps an owner: the same rule as the Workbench's members page."""

    def clean(self) -> None:
        super().clean()
        if self.instance.pk is None:
            return
        edited: list[tuple[int | None, str | None]] = []
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            removed = form.cleaned_data.get("DELETE")
            edited.append((form.instance.pk, None if removed else form.cleaned_data.get("role")))
        try:
            owners_remaining_check(environment=self.instance, memberships=edited)
        except Refused as refused:
            raise forms.ValidationError(refused.detail) from refused


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    raw_id_fields = ("user",)


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("environment", "user", "role")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stored = self.instance
        if stored.pk is None or stored.role != Role.OWNER or cleaned.get("role") == Role.OWNER:
            return cleaned
        try:
            owners_remaining_check(environment=stored.environment, memberships=[(stored.pk, cleaned.get("role"))])
        except Refused as refused:
            raise forms.ValidationError(refused.detail) from refused
        return cleaned


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
    form = MembershipAdminForm

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        self._remove(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        self._remove(request, list(queryset))

    def _remove(self, request: HttpRequest, memberships: list[Membership]) -> None:
        """Through the service, which keeps each environment's last owner."""
        for membership in memberships:
            try:
                member_remove(membership=membership)
            except Refused as refused:
                self.message_user(request, refused.detail, messages.ERROR)


@admin.register(ApiCredential)
class ApiCredentialAdmin(admin.ModelAdmin):
    """Credentials are issued in the Workbench or the API (the secret is shown once there);
    here they are inspected and revoked."""

    list_display = (
        "client_id",
        "environment",
        "role",
        "label",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    )
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
