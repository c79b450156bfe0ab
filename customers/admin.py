from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.results import Result

from workbench.models import Environment

from .models import Customer, Event, TestUser
from .resources import PROFILE_COLUMNS, TAG_SEPARATOR, CustomerResource


class CustomerImportForm(ImportForm):
    """The upload, and the environment the file's customers belong to (never a column)."""

    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("name"),
        empty_label="Choose an environment…",
        help_text="Every row of the file is a customer of this environment.",
    )
    field_order = ["environment", "resource", "import_file", "format"]


class CustomerConfirmImportForm(ConfirmImportForm):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), widget=forms.HiddenInput())


@admin.register(Customer)
class CustomerAdmin(ImportExportModelAdmin):
    resource_classes = [CustomerResource]
    formats = [CSV]
    import_form_class = CustomerImportForm
    confirm_form_class = CustomerConfirmImportForm
    import_template_name = "customers/admin_import.html"
    # Row problems are shown as messages; a traceback helps nobody who imports a spreadsheet.
    import_error_display = ("message",)
    list_display = ("user_id", "environment", "name", "email", "country", "last_seen_at", "updated_at")
    list_filter = ("environment", "country", "created_at", "last_seen_at")
    search_fields = ("user_id", "name", "email", "phone")
    list_select_related = ("environment",)
    date_hierarchy = "created_at"
    readonly_fields = ("updated_at",)

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        resource_kwargs: dict[str, Any] = super().get_import_resource_kwargs(request, **kwargs)
        form = kwargs.get("form")
        if form is not None and form.is_bound and form.is_valid():
            resource_kwargs["environment"] = form.cleaned_data["environment"]
        return resource_kwargs

    def get_confirm_form_initial(self, request: HttpRequest, import_form: Any) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["environment"] = import_form.cleaned_data["environment"].pk
        return initial

    def get_import_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_import_context_data(**kwargs)
        context.update({"api_columns": list(PROFILE_COLUMNS), "tag_separator": TAG_SEPARATOR})
        return context

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """The preview; when some rows have problems, the others may still be imported.

        import-export offers the confirmation only for a file without any problem; one bad
        value must not refuse the whole file, so it is offered whenever a row is valid.
        """
        response: HttpResponse = super().import_action(request, **kwargs)
        context = response.context_data if isinstance(response, TemplateResponse) else None
        result: Result | None = (context or {}).get("result")
        if context is None or result is None:
            return response
        context["environment"] = context["form"].cleaned_data["environment"]
        if not result.has_errors() and result.has_validation_errors() and result.valid_rows():
            context["confirm_form"] = self.create_confirm_form(request, import_form=context["form"])
        return response

    def add_success_message(self, result: Result, request: HttpRequest) -> None:
        super().add_success_message(result, request)
        if result.invalid_rows:
            # Lines as a spreadsheet numbers them: the header is line 1.
            lines = ", ".join(str(row.number + 1) for row in result.invalid_rows)
            count = len(result.invalid_rows)
            rows = f"{count} row{'s' if count > 1 else ''}"
            messages.warning(request, f"{rows} with problems not imported (line{'s' if count > 1 else ''} {lines}).")


@admin.register(TestUser)
class TestUserAdmin(admin.ModelAdmin):
    list_display = ("user_id", "name", "environment", "membership", "created_at")
    list_filter = ("environment",)
    search_fields = ("user_id", "name")
    list_select_related = ("environment", "membership__user")
    raw_id_fields = ("membership",)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Custom events as they arrived, read-only: they are an append-only record that segments
    and triggers have already acted on, so editing one would rewrite history."""

    list_display = ("name", "user_id", "environment", "occurred_at", "received_at", "message_id")
    list_filter = ("environment", "occurred_at")
    search_fields = ("user_id", "name")
    list_select_related = ("environment",)
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")
    # The admin's count of a large table is a sequential scan: show "more" instead.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
