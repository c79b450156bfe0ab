"""CSV import and export of customers in Django admin (django-import-export)."""

from __future__ import annotations

from typing import Any

from import_export import fields, resources, widgets

from workbench.models import Environment

from .models import ACTIVITY_FIELDS, PROFILE_TEXT_FIELDS, Customer
from .services import customers_upsert

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """Prefix a quote to text a spreadsheet would run as a formula; other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class TagsWidget(widgets.Widget):
    """Tags as one cell, separated by `|` (as in CSV bulk sends)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> list[str]:
        if not value:
            return []
        return [tag.strip() for tag in str(value).split("|") if tag.strip()]

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "|".join(value or [])


class CustomerResource(resources.ModelResource):
    environment = fields.Field(
        attribute="environment",
        column_name="environment",
        widget=widgets.ForeignKeyWidget(Environment, field="slug"),
    )
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    custom_fields = fields.Field(attribute="custom_fields", column_name="custom_fields", widget=widgets.JSONWidget())

    class Meta:
        model = Customer
        import_id_fields = ("environment", "user_id")
        fields = ("environment", "user_id", *PROFILE_TEXT_FIELDS, "tags", "custom_fields", *ACTIVITY_FIELDS)
        export_order = fields
        skip_unchanged = True
        report_skipped = True

    def export_field(self, field: fields.Field, instance: Any, **kwargs: Any) -> Any:
        return neutralise_formula(super().export_field(field, instance, **kwargs))

    def save_instance(self, instance: Customer, is_create: bool, row: Any, **kwargs: Any) -> None:
        """Write through the upsert service, like every other way profiles arrive."""
        if self._meta.use_bulk or kwargs.get("dry_run"):
            return super().save_instance(instance, is_create, row, **kwargs)
        profile: dict[str, Any] = {"user_id": instance.user_id}
        for name in (*PROFILE_TEXT_FIELDS, *ACTIVITY_FIELDS, "tags"):
            profile[name] = getattr(instance, name)
        # Whole replacement from a spreadsheet: keys missing from the cell are removed.
        current = Customer.objects.filter(environment=instance.environment, user_id=instance.user_id).first()
        replaced = dict.fromkeys(current.custom_fields if current else {}, None)
        profile["custom_fields"] = {**replaced, **(instance.custom_fields or {})}
        customers_upsert(environment=instance.environment, profiles=[profile])
        saved = Customer.objects.get(environment=instance.environment, user_id=instance.user_id)
        instance.pk = saved.pk
