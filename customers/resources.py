"""CSV import and export of customers in Django admin (django-import-export).

The columns are the API's (SPEC sections 1 and 3): `userId`, `name`, `email`, `phone`, `city`,
`country`, `region`, `timezone`, `tags`, `customFields`, `createdAt`, `firstSeenAt`,
`lastSeenAt`, `lastSeenIosAt`, `lastSeenAndroidAt`, `lastSeenWebAt`, and `customFields.<key>`
for one custom field per column. The environment is chosen in the import form, never read from
the file. Each row is read as the API reads a profile:

- a cell turns into the JSON value the API would receive (`row_profile`): a blank cell is
  null, `tags` are separated by `|`, `customFields` is a JSON object, and a
  `customFields.<key>` cell is a number or a boolean when it reads as one, text otherwise;
- the API's own serializer validates it, so a row is refused for exactly what the API refuses,
  with the same messages, attached to that row and column;
- it is written by the same upsert service: columns present replace their values, columns
  absent keep theirs, custom fields merge key by key (null removes a key).

A row with a problem is reported and skipped; the other rows import.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import fields, resources, widgets
from import_export.results import Result, RowResult

from workbench.models import Environment

from .apis import CustomerProfileSerializer
from .models import Customer
from .services import customer_upsert

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TAG_SEPARATOR = "|"
CUSTOM_FIELD_PREFIX = "customFields."
# The API's profile fields, in the order of its documentation: column name -> model attribute.
PROFILE_COLUMNS: dict[str, str] = {
    "userId": "user_id",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "city": "city",
    "country": "country",
    "region": "region",
    "timezone": "timezone",
    "tags": "tags",
    "customFields": "custom_fields",
    "createdAt": "created_at",
    "firstSeenAt": "first_seen_at",
    "lastSeenAt": "last_seen_at",
    "lastSeenIosAt": "last_seen_ios_at",
    "lastSeenAndroidAt": "last_seen_android_at",
    "lastSeenWebAt": "last_seen_web_at",
}


def neutralise_formula(value: Any) -> Any:
    """Prefix a quote to text a spreadsheet would run as a formula; other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class TagsWidget(widgets.Widget):
    """Tags in one cell, separated by `|` (as in CSV bulk sends)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> list[str]:
        if not value:
            return []
        return [tag.strip() for tag in str(value).split(TAG_SEPARATOR) if tag.strip()]

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return TAG_SEPARATOR.join(value or [])


class MomentWidget(widgets.Widget):
    """A moment as the API writes it: ISO 8601 in UTC."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        if not isinstance(value, datetime):
            return ""
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RowProblem(ValueError):
    """A cell that cannot become the API's value; `column` names it."""

    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


def _cell(value: Any) -> str | None:
    """A cell's text; None for a blank cell (empty, only spaces, or missing)."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _custom_field_value(text: str) -> Any:
    """A `customFields.<key>` cell: a number or boolean when it reads as one, else the text."""
    stripped = text.strip()
    if stripped in {"true", "false"}:
        return stripped == "true"
    try:
        number = json.loads(stripped)
    except ValueError:
        return text
    return number if isinstance(number, (int, float)) and not isinstance(number, bool) else text


def row_profile(row: dict[str, Any]) -> dict[str, Any]:
    """The API profile (camelCase JSON) one CSV row stands for; raises RowProblem."""
    profile: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for column, raw in row.items():
        text = _cell(raw)
        if column == "tags":
            profile["tags"] = None if text is None else TagsWidget().clean(text)
        elif column == "customFields":
            if text is not None:
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError as error:
                    raise RowProblem(column, f"Not a JSON object: {error.msg} (character {error.pos + 1}).") from None
                if not isinstance(parsed, dict):
                    raise RowProblem(column, 'A JSON object is needed, such as {"plan": "premium"}.')
                custom.update(parsed)
        elif column.startswith(CUSTOM_FIELD_PREFIX):
            custom[column.removeprefix(CUSTOM_FIELD_PREFIX)] = None if text is None else _custom_field_value(text)
        elif column == "createdAt" and text is None:
            continue  # a profile always has a creation time: a blank cell keeps it
        elif column in PROFILE_COLUMNS:
            profile[column] = text
    if "customFields" in row or any(column.startswith(CUSTOM_FIELD_PREFIX) for column in row):
        profile["customFields"] = custom
    if profile.get("userId") is None:
        raise RowProblem("userId", "Every row needs a userId: it says which customer the row is.")
    return profile


def _flat_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as {"customFields.plan": ["..."]}."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flat_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and all(not isinstance(item, (dict, list)) for item in errors):
        return {prefix or NON_FIELD_ERRORS: [str(item) for item in errors]}
    if isinstance(errors, list):
        flat = {}
        for index, item in enumerate(errors):
            flat.update(_flat_errors(item, f"{prefix}.{index}"))
        return flat
    return {prefix or NON_FIELD_ERRORS: [str(errors)]}


def validated_profile(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the upsert service takes it, validated by the API's serializer.

    Raises Django's ValidationError keyed by column, which import-export shows per row.
    """
    try:
        profile = row_profile(row)
    except RowProblem as problem:
        raise ValidationError({problem.column: [problem.message]}) from None
    serializer = CustomerProfileSerializer(data=profile)
    if not serializer.is_valid():
        raise ValidationError(_flat_errors(serializer.errors))
    return dict(serializer.validated_data)


class CustomerResource(resources.ModelResource):
    """Customers by the API's column names; imports write through `customer_upsert`."""

    user_id = fields.Field(attribute="user_id", column_name="userId")
    name = fields.Field(attribute="name", column_name="name")
    email = fields.Field(attribute="email", column_name="email")
    phone = fields.Field(attribute="phone", column_name="phone")
    city = fields.Field(attribute="city", column_name="city")
    country = fields.Field(attribute="country", column_name="country")
    region = fields.Field(attribute="region", column_name="region")
    timezone = fields.Field(attribute="timezone", column_name="timezone")
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    custom_fields = fields.Field(attribute="custom_fields", column_name="customFields", widget=widgets.JSONWidget())
    created_at = fields.Field(attribute="created_at", column_name="createdAt", widget=MomentWidget())
    first_seen_at = fields.Field(attribute="first_seen_at", column_name="firstSeenAt", widget=MomentWidget())
    last_seen_at = fields.Field(attribute="last_seen_at", column_name="lastSeenAt", widget=MomentWidget())
    last_seen_ios_at = fields.Field(attribute="last_seen_ios_at", column_name="lastSeenIosAt", widget=MomentWidget())
    last_seen_android_at = fields.Field(
        attribute="last_seen_android_at", column_name="lastSeenAndroidAt", widget=MomentWidget()
    )
    last_seen_web_at = fields.Field(attribute="last_seen_web_at", column_name="lastSeenWebAt", widget=MomentWidget())

    class Meta:
        model = Customer
        fields = tuple(PROFILE_COLUMNS.values())
        export_order = fields
        import_id_fields = ("user_id",)
        report_skipped = True

    def __init__(self, environment: Environment | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.file_headers: list[str] = []

    # --- export -----------------------------------------------------------------------

    def export_field(self, field: fields.Field, instance: Any, **kwargs: Any) -> Any:
        return neutralise_formula(super().export_field(field, instance, **kwargs))

    # --- import -----------------------------------------------------------------------

    def import_data(self, dataset: Any, *args: Any, **kwargs: Any) -> Result:
        self.file_headers = [str(header) for header in dataset.headers or []]
        return super().import_data(dataset, *args, **kwargs)

    def get_diff_headers(self) -> list[str]:
        """The preview shows the file's own columns, so each row reads as it was written."""
        return self.file_headers or super().get_diff_headers()

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        """Refuse a file whose columns the API does not know (a typo would silently drop data)."""
        if self.environment is None:
            raise ValueError("Choose the environment the customers belong to.")
        headers = [str(header) for header in dataset.headers or []]
        unknown = [h for h in headers if h not in PROFILE_COLUMNS and not _is_custom_field_column(h)]
        if "userId" not in headers:
            raise ValueError("The file needs a userId column: it says which customer each row is.")
        if unknown:
            raise ValueError(
                f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"Columns are the API's: {', '.join(PROFILE_COLUMNS)}, or customFields.<name>."
            )

    def import_row(self, row: OrderedDict[str, Any], instance_loader: Any, **kwargs: Any) -> RowResult:
        """Validate the row as the API would; unless this is the preview, upsert it."""
        row_result = self.get_row_result_class()()
        row_result.diff = [_display(row.get(header)) for header in self.file_headers]
        try:
            profile = validated_profile(dict(row))
        except ValidationError as error:
            row_result.import_type = RowResult.IMPORT_TYPE_INVALID
            row_result.validation_error = error
            return row_result
        environment = self.environment
        assert environment is not None  # before_import refused the file otherwise
        existing = Customer.objects.filter(environment=environment, user_id=profile["user_id"]).first()
        row_result.import_type = RowResult.IMPORT_TYPE_UPDATE if existing else RowResult.IMPORT_TYPE_NEW
        if kwargs.get("dry_run"):
            row_result.instance = existing
        else:
            customer, _created = customer_upsert(environment=environment, profile=profile)
            row_result.instance = customer
            row_result.object_id = customer.pk
            row_result.object_repr = str(customer)
        return row_result


def _is_custom_field_column(header: str) -> bool:
    return header.startswith(CUSTOM_FIELD_PREFIX) and len(header) > len(CUSTOM_FIELD_PREFIX)


def _display(value: Any) -> str:
    return "" if value is None else str(value)
