"""Declared shapes: DRF serializers that both validate input and document it (OpenAPI).

A shape (a stored configuration, a flow definition, a request body) is declared once as a
`Shape` and validated with `validate_shape`, which raises `workbench.errors.Invalid` with
every problem keyed by its field path (`steps.0.card.title`). Rules a declaration cannot
say live beside it, in a field's `to_internal_value` or a `validate_<field>` method.

The fields here are strict where DRF's are lenient: `Text` refuses numbers instead of
turning them into text and keeps white space as given, `WholeNumber` refuses "300", 1.5
and true, `TrueOrFalse` refuses "yes" and 1. Stored JSON must mean what it says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.settings import api_settings

from .api_base import StrictSerializer
from .errors import FieldErrors, Invalid

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY
# The error keys DRF's fields use for a value of the wrong type, size or presence.
_FIELD_ERROR_KEYS = (
    "required",
    "null",
    "invalid",
    "blank",
    "max_length",
    "min_length",
    "max_value",
    "min_value",
    "max_string_length",
    "invalid_choice",
    "not_a_list",
    "not_a_dict",
    "empty",
)


# Messages of these keys go to Django's validators, which %-format them once more.
_VALIDATOR_KEYS = frozenset({"max_length", "min_length", "max_value", "min_value"})


def says(message: str) -> dict[str, StrOrPromise]:
    """`error_messages` that answer every kind of wrong value with one message."""
    escaped = message.replace("{", "{{").replace("}", "}}")  # DRF str.format()s every message
    return {key: escaped.replace("%", "%%") if key in _VALIDATOR_KEYS else escaped for key in _FIELD_ERROR_KEYS}


class Shape(StrictSerializer):
    """An object with declared fields: every problem at once, unknown fields included.

    `not_an_object` is the message for a value that is no object (at the shape's own path);
    `unknown_field` the one for each key it does not declare (at the key's path).
    """

    not_an_object = "Expected an object."
    unknown_field = "Unknown field."
    # The object being validated, for rules across its keys (`validate_<field>` methods):
    # a shape instance validates one value at a time, so make one per validation.
    raw: Mapping[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["error_messages"] = {
            "null": self.not_an_object.replace("{", "{{").replace("}", "}}"),
            **kwargs.get("error_messages", {}),
        }
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: object) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({NON_FIELD: [self.not_an_object]})
        self.raw = data
        errors: dict[str, Any] = {}
        value: Any = None
        try:
            value = serializers.Serializer.to_internal_value(self, data)
        except serializers.ValidationError as invalid:
            errors = dict(invalid.detail) if isinstance(invalid.detail, dict) else {NON_FIELD: invalid.detail}
        for name in sorted(set(data) - set(self.fields), key=str):
            errors[str(name)] = [self.unknown_field]
        if errors:
            raise serializers.ValidationError(errors)
        return value


def flatten_errors(detail: Any, path: str = "") -> FieldErrors:
    """DRF's nested error detail as {"field.path": [messages]}; non-field errors at `path`."""
    errors: FieldErrors = {}
    _flatten(detail, path, errors)
    return errors


def _flatten(detail: Any, path: str, errors: FieldErrors) -> None:
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            child = path if key == NON_FIELD else (f"{path}.{key}" if path else str(key))
            _flatten(value, child, errors)
    elif isinstance(detail, list) and any(isinstance(item, (Mapping, list)) for item in detail):
        # A list serializer's errors: one entry per item, empty for the valid ones.
        for index, item in enumerate(detail):
            if item:
                _flatten(item, f"{path}.{index}" if path else str(index), errors)
    else:
        messages = detail if isinstance(detail, list) else [detail]
        errors.setdefault(path, []).extend(str(message) for message in messages)


def validate_shape(shape: serializers.Field, data: object, *, at: str = "", root: str = "request") -> Any:
    """The validated value of `data` for a shape, or `Invalid` with every problem by path.

    Paths start with `at` when given ("allowedIps.0"); a problem with the value as a whole
    (not an object, say) is keyed `at`, or `root` when `at` is empty.
    """
    try:
        return shape.run_validation(data)
    except serializers.ValidationError as invalid:
        errors = flatten_errors(invalid.detail, at)
        if "" in errors:
            errors[root] = errors.pop("") + errors.get(root, [])
        raise Invalid(errors) from None


def raise_errors(errors: Mapping[str, Iterable[str]]) -> None:
    """Inside a field or shape: raise DRF's ValidationError for `errors` keyed by sub-path."""
    if errors:
        raise serializers.ValidationError({key: list(messages) for key, messages in errors.items()})


class FullMatch(RegexValidator):
    """The whole text must match: a plain `$` would let a trailing newline through. OpenAPI
    documents the pattern (drf-spectacular reads `regex`, writing `\\Z` as `$`)."""

    def __call__(self, value: Any) -> None:
        if not isinstance(value, str) or not re.fullmatch(self.regex, value):
            raise DjangoValidationError(self.message, code=self.code)


# "Not only white space", as a JSON Schema pattern means it (ECMAScript's \s, spelt out) and as
# Python's `re` reads the same class: a text field with it and trim_whitespace=False refuses
# exactly what its schema refuses. DRF's own trimming strips Python's wider white space (the
# control characters U+001C to U+001F among it) and then calls such a text blank.
NOT_ONLY_WHITE_SPACE = RegexValidator(
    "[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]",
    message="This field may not be blank.",
)


class Text(serializers.CharField):
    """Text as given: numbers are refused, white space is kept (a blank text is still blank)."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data


class WholeNumber(serializers.IntegerField):
    """An integer written as one: not "300", 1.5 or true."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class TrueOrFalse(serializers.BooleanField):
    """true or false, nothing that merely resembles them."""

    def to_internal_value(self, data: object) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class JSONObject(serializers.DictField):
    """Any JSON object, kept as it is."""

    def to_internal_value(self, data: object) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return data
