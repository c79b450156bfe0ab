from __future__ import annotations

from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV

from .models import Customer, TestUser
from .resources import CustomerResource


@admin.register(Customer)
class CustomerAdmin(ImportExportModelAdmin):
    resource_classes = [CustomerResource]
    formats = [CSV]
    list_display = ("user_id", "environment", "name", "email", "country", "last_seen_at", "updated_at")
    list_filter = ("environment", "country", "created_at", "last_seen_at")
    search_fields = ("user_id", "name", "email", "phone")
    list_select_related = ("environment",)
    date_hierarchy = "created_at"
    readonly_fields = ("updated_at",)


@admin.register(TestUser)
class TestUserAdmin(admin.ModelAdmin):
    list_display = ("user_id", "name", "environment", "membership", "created_at")
    list_filter = ("environment",)
    search_fields = ("user_id", "name")
    list_select_related = ("environment", "membership__user")
    raw_id_fields = ("membership",)
