"""The webhook payload mapping: from a sender's request to a start request (SPEC section 4).

Pure functions, no models. A trigger's mapping configuration is

    {"type": "none" | "structured" | "script", "structured": {...}, "script": "..."}

- `none`: the body already is a start request (SPEC section 2) and is returned as it is.
- `structured`: JSONPath expressions and literals laid out like a start request
  (`triggers.mapping.structured`).
- `script`: a sandboxed JavaScript `function transform(request)` (`triggers.mapping.script`).

`MappingSerializer` and its subclasses per type declare a configuration and
`validate_mapping_config` cleans one before it is saved (`workbench.errors.Invalid`); `apply_mapping` maps one
request with a saved one. Neither checks that the result is a valid start request: the
pipeline runs `flows.start_requests.parse_start_requests` on it. `mappable_properties` and
`shape_mismatches` read the trigger's sample (`triggers.mapping.shape`); `PRESETS` are
ready-made scripts (`triggers.mapping.presets`).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from triggers.mapping.base import MappingError, WebhookInput
from triggers.mapping.presets import PRESETS
from triggers.mapping.script import check_script, run_script
from triggers.mapping.shape import mappable_properties, sample_values, shape_mismatches
from triggers.mapping.structured import StructuredMappingField, apply_structured
from workbench.shapes import JSONObject, Shape, Text, says, validate_shape

__all__ = [
    "MAPPING_SERIALIZERS",
    "MAPPING_TYPES",
    "PRESETS",
    "MappingConfig",
    "MappingError",
    "WebhookInput",
    "apply_mapping",
    "mappable_properties",
    "sample_values",
    "shape_mismatches",
    "validate_mapping_config",
]

MAPPING_TYPES = ("none", "structured", "script")
CONFIG_KEYS = ("type", "structured", "script")
NOT_AN_OBJECT = 'Expected an object: {"type": "none" | "structured" | "script", ...}.'
SCRIPT_MISSING = "Expected the JavaScript source of function transform(request)."

MappingType = Literal["none", "structured", "script"]


class MappingConfig(TypedDict):
    """A mapping configuration as stored (`Trigger.config["mapping"]`)."""

    type: MappingType
    structured: NotRequired[dict[str, Any]]
    script: NotRequired[str]


class ScriptField(Text):
    """The selected script: it must compile and define transform (`check_script`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "JavaScript defining function transform(request).")
        super().__init__(trim_whitespace=False, error_messages=says(SCRIPT_MISSING), **kwargs)

    def to_internal_value(self, data: object) -> str:
        script = super().to_internal_value(data)
        problems = check_script(script)
        if problems:
            raise ValidationError(problems)
        return script


TYPE_MESSAGE = f"Expected one of {', '.join(MAPPING_TYPES)}."


def _type(*choices: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=list(choices), error_messages=says(TYPE_MESSAGE))


class MappingSerializer(Shape):
    """Any mapping type. The part the type selects is checked by the subclass of its type;
    the other part may stay, so that a member switching type keeps a draft, but it must be
    of its kind (an object, a string) and is not otherwise checked until selected."""

    not_an_object = NOT_AN_OBJECT
    unknown_field = f"Unknown field; a mapping has {', '.join(CONFIG_KEYS)}."

    type = _type(*MAPPING_TYPES)
    structured: serializers.Field = JSONObject(
        required=False,
        error_messages=says("Expected an object shaped like the start request."),
        help_text="A draft, kept while another type is selected.",
    )
    script: serializers.Field = Text(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        error_messages=says("Expected the JavaScript source as a string."),
        help_text="A draft, kept while another type is selected.",
    )


class NoMappingSerializer(MappingSerializer):
    """The body already is a start request."""

    type = _type("none")


class StructuredMappingSerializer(MappingSerializer):
    """JSONPath expressions and literals laid out like a start request."""

    type = _type("structured")
    structured = StructuredMappingField()


class ScriptMappingSerializer(MappingSerializer):
    """A sandboxed JavaScript function transform(request) that returns the start request."""

    type = _type("script")
    script = ScriptField()


MAPPING_SERIALIZERS: dict[str, type[serializers.Serializer[Any]]] = {
    "none": NoMappingSerializer,
    "structured": StructuredMappingSerializer,
    "script": ScriptMappingSerializer,
}


def validate_mapping_config(mapping: object) -> MappingConfig:
    """The configuration, cleaned, or `Invalid` with every problem by location.

    The shape of its `type` checks it (`MAPPING_SERIALIZERS`); an unknown type is checked as
    `MappingSerializer`, which says which types there are. The clean configuration holds `type`
    and whichever parts were given.
    """
    kind = mapping.get("type") if isinstance(mapping, dict) else None
    shape: type[serializers.Serializer[Any]] = MappingSerializer
    if isinstance(kind, str):
        shape = MAPPING_SERIALIZERS.get(kind, MappingSerializer)
    clean: MappingConfig = validate_shape(shape(), mapping, root="mapping")
    return clean


def apply_mapping(mapping: MappingConfig | dict[str, Any], request: WebhookInput) -> Any:
    """Map `request` with a clean configuration: the start request, or MappingError.

    The configuration is expected to have passed `validate_mapping_config`; one that has not
    still fails safely, with a MappingError naming the problem.
    """
    kind = mapping.get("type")
    if kind == "none":
        return request.body
    if kind == "structured":
        structured = mapping.get("structured")
        if not isinstance(structured, dict):
            raise MappingError(["The structured mapping is missing."])
        return apply_structured(structured, request.body)
    if kind == "script":
        script = mapping.get("script")
        if not isinstance(script, str) or not script.strip():
            raise MappingError(["The mapping script is missing."])
        return run_script(script, request)
    raise MappingError([f"Unknown mapping type: {kind!r}."])
