"""The webhook payload mapping: from a sender's request to a start request (SPEC section 4).

Pure functions, no models. A trigger's mapping configuration is

    {"type": "none" | "structured" | "script", "structured": {...}, "script": "..."}

- `none`: the body already is a start request (SPEC section 2) and is returned as it is.
- `structured`: JSONPath expressions and literals laid out like a start request
  (`triggers.mapping.structured`).
- `script`: a sandboxed JavaScript `function transform(request)` (`triggers.mapping.script`).

`validate_mapping_config` cleans a configuration before it is saved, `apply_mapping` maps one
request with a saved one. Neither checks that the result is a valid start request: the
pipeline runs `flows.start_requests.parse_start_requests` on it. `mappable_properties` and
`shape_mismatches` read the trigger's sample (`triggers.mapping.shape`); `PRESETS` are
ready-made scripts (`triggers.mapping.presets`).
"""

from __future__ import annotations

from typing import Any

from triggers.mapping.base import InvalidMappingConfig, MappingError, WebhookInput
from triggers.mapping.presets import PRESETS
from triggers.mapping.script import check_script, run_script
from triggers.mapping.shape import mappable_properties, shape_mismatches
from triggers.mapping.structured import apply_structured, validate_structured

__all__ = [
    "MAPPING_TYPES",
    "PRESETS",
    "InvalidMappingConfig",
    "MappingError",
    "WebhookInput",
    "apply_mapping",
    "mappable_properties",
    "shape_mismatches",
    "validate_mapping_config",
]

MAPPING_TYPES = ("none", "structured", "script")
CONFIG_KEYS = ("type", "structured", "script")


def validate_mapping_config(mapping: Any) -> dict[str, Any]:
    """The configuration, cleaned, or InvalidMappingConfig with every problem by location.

    1. It must be an object with a known `type` and no keys but `type`, `structured`, `script`.
    2. The part the type selects must be present and valid: structured paths parse, a script
       compiles and defines `transform`.
    3. The other part may stay, so that a member switching type keeps a draft, but it must be
       of its kind (an object, a string); it is not otherwise checked until selected.
    The clean configuration holds `type` and whichever parts were given.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(mapping, dict):
        raise InvalidMappingConfig(
            {"mapping": ['Expected an object: {"type": "none" | "structured" | "script", ...}.']}
        )
    for name in mapping:
        if name not in CONFIG_KEYS:
            errors[str(name)] = [f"Unknown field; a mapping has {', '.join(CONFIG_KEYS)}."]
    kind = mapping.get("type")
    if kind not in MAPPING_TYPES:
        errors["type"] = [f"Expected one of {', '.join(MAPPING_TYPES)}."]
    clean: dict[str, Any] = {"type": kind}

    if "structured" in mapping or kind == "structured":
        structured = mapping.get("structured")
        if kind == "structured":
            clean["structured"] = validate_structured(structured, errors)
        elif isinstance(structured, dict):
            clean["structured"] = structured
        else:
            errors["structured"] = ["Expected an object shaped like the start request."]

    if "script" in mapping or kind == "script":
        script = mapping.get("script")
        if kind == "script":
            problems = check_script(script)
            if problems:
                errors["script"] = problems
            else:
                clean["script"] = script
        elif isinstance(script, str):
            clean["script"] = script
        else:
            errors["script"] = ["Expected the JavaScript source as a string."]

    if errors:
        raise InvalidMappingConfig(errors)
    return clean


def apply_mapping(mapping: dict[str, Any], request: WebhookInput) -> Any:
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
