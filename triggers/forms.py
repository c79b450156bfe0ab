"""Forms of the webhook trigger setup page: the sample, the mapping builder and security.

The mapping builder is not a Django form: its rows follow the flow's variables and the
saved mapping, so `MappingState` reads them from a saved configuration or from a POST, turns
them back into a mapping configuration (SPEC section 4) and carries the errors a save
refused, keyed the way `webhook_trigger_update` reports them, next to their row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import QueryDict

from workbench.json_values import UnstorableJSON, loads_storable

from .mapping import PRESETS

MAPPING_TYPES = (
    ("structured", "Structured"),
    ("script", "Script"),
    ("none", "None"),
)
# Leaves a row edits: a JSONPath into the body, or a literal text.
PATH, LITERAL = "path", "literal"
# Blank metadata rows offered below the saved ones.
BLANK_METADATA_ROWS = 1


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def parse_json_text(text: str) -> tuple[Any, str | None]:
    """The parsed JSON, or the reason it is not JSON, said where a member can find it."""
    try:
        return loads_storable(text), None
    except UnstorableJSON as error:
        return None, str(error)


# --- The sample -----------------------------------------------------------------------------


class SampleForm(forms.Form):
    sample = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "class": "code wide-input", "spellcheck": "false"}),
        label="Sample body (JSON)",
        strip=True,
        error_messages={"required": "Paste the JSON body of a request the sender makes."},
    )

    def clean_sample(self) -> Any:
        value, problem = parse_json_text(self.cleaned_data["sample"])
        if problem:
            raise forms.ValidationError(problem)
        return value


# --- Security -------------------------------------------------------------------------------


class SecurityForm(forms.Form):
    allowed_ips = forms.CharField(
        required=False,
        label="Allowed IP addresses and CIDR ranges",
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "class": "code wide-input",
                "spellcheck": "false",
                "placeholder": "203.0.113.7\n198.51.100.0/24",
            }
        ),
        help_text="One per line. Leave empty to accept requests from any address.",
    )
    signature = forms.CharField(
        required=False,
        label="Signature verification (JSON)",
        widget=forms.Textarea(attrs={"rows": 12, "class": "code wide-input", "spellcheck": "false"}),
        help_text="Leave empty to accept unsigned requests.",
    )

    def clean_allowed_ips(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["allowed_ips"].splitlines() if line.strip()]

    def clean_signature(self) -> Any:
        text = self.cleaned_data["signature"].strip()
        if not text:
            return None
        value, problem = parse_json_text(text)
        if problem:
            raise forms.ValidationError(problem)
        if not isinstance(value, dict):
            raise forms.ValidationError('Expected a JSON object: {"secret": "...", "algorithm": "sha256", ...}.')
        return value

    def security(self) -> dict[str, Any]:
        return {"allowedIps": self.cleaned_data["allowed_ips"], "signature": self.cleaned_data["signature"]}

    @classmethod
    def initial_for(cls, security: dict[str, Any], mask: str) -> dict[str, str]:
        signature = security.get("signature")
        return {
            "allowed_ips": "\n".join(security.get("allowedIps") or []),
            "signature": pretty_json({**signature, "secret": mask}) if signature else "",
        }

    def attach_errors(self, errors: dict[str, list[str]]) -> None:
        """Put a refusal's errors ("security.allowedIps", "security.signature.secret") on the fields."""
        for key, messages in errors.items():
            if key.startswith("security.allowedIps"):
                name, prefix = "allowed_ips", ""
            elif key.startswith("security.signature"):
                location = key.removeprefix("security.signature").lstrip(".")
                name, prefix = "signature", f"{location}: " if location and location != "config" else ""
            else:
                name, prefix = None, ""
            for message in messages:
                self.add_error(name, f"{prefix}{message}")


# --- The mapping ----------------------------------------------------------------------------


@dataclass
class Leaf:
    """One mapped value: a JSONPath into the body or a literal; empty means not mapped.

    A literal is typed as text. What reads as JSON other than a string (42, true, null, a
    list or an object) is that JSON value, and a text that would read so is shown in quotes
    ("42"), so that a literal set through the API keeps its type when the page is saved.
    """

    prefix: str  # the row's field names start with it
    label: str
    kind: str = PATH
    value: str = ""
    name: str = ""  # a variable's or a metadata entry's name
    required: bool = False
    help: str = ""
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: Any, **kwargs: Any) -> Leaf:
        if isinstance(spec, dict) and set(spec) == {"value"}:
            return cls(kind=LITERAL, value=_literal_text(spec["value"]), **kwargs)
        return cls(kind=PATH, value=spec if isinstance(spec, str) else "", **kwargs)

    @classmethod
    def from_post(cls, data: QueryDict, **kwargs: Any) -> Leaf:
        prefix = kwargs["prefix"]
        kind = LITERAL if data.get(f"{prefix}-kind") == LITERAL else PATH
        value = data.get(f"{prefix}-value", "")
        return cls(kind=kind, value=value.strip() if kind == PATH else value, **kwargs)

    @property
    def mapped(self) -> bool:
        return self.value != ""

    def spec(self) -> Any:
        return {"value": _literal_value(self.value)} if self.kind == LITERAL else self.value


def _literal_value(text: str) -> Any:
    """The literal a member typed: JSON when it reads as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _literal_text(value: Any) -> str:
    """How a literal is shown for editing; `_literal_value` of it gives the value back."""
    if isinstance(value, str) and _literal_value(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_leaf(spec: Any) -> bool:
    return isinstance(spec, str) or (isinstance(spec, dict) and set(spec) == {"value"})


@dataclass
class MappingState:
    """The mapping builder: its type, its rows, the script, the shape check, and errors.

    Parts of a structured mapping this builder does not edit (notificationDetail,
    cardOptions, nested entries, several target paths: set through the API) are kept
    as they were in `kept`, and saved with the rows.
    """

    type: str
    target: Leaf
    invocation_id: Leaf
    variables: list[Leaf]
    metadata: list[Leaf]
    script: str
    shape_check: bool
    kept: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # errors without a row of their own
    script_errors: list[str] = field(default_factory=list)

    # Reading ---------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict[str, Any], flow_variables: list[dict[str, Any]]) -> MappingState:
        mapping = config.get("mapping") or {"type": "none"}
        structured = mapping.get("structured") or {}
        kept = _kept_parts(structured, flow_variables)
        target_spec = structured.get("targetUserIds", "")
        if isinstance(target_spec, list) and len(target_spec) == 1:
            target_spec = target_spec[0]
        mapped_variables: dict[str, Any] = _entries(structured.get("variables"))
        variable_names = [variable["name"] for variable in flow_variables]
        variable_names += [
            name for name, spec in mapped_variables.items() if name not in variable_names and _is_leaf(spec)
        ]
        metadata: dict[str, Any] = _entries(structured.get("metadata"))
        return cls(
            type=mapping.get("type") or "none",
            target=Leaf.from_spec(target_spec if _is_leaf(target_spec) else "", **_target_row()),
            invocation_id=Leaf.from_spec(structured.get("flowInvocationId", ""), **_invocation_id_row()),
            variables=[
                Leaf.from_spec(mapped_variables.get(name, ""), **_variable_row(index, name, flow_variables))
                for index, name in enumerate(variable_names)
            ],
            metadata=[
                Leaf.from_spec(spec, **_metadata_row(index, key))
                for index, (key, spec) in enumerate((k, s) for k, s in metadata.items() if _is_leaf(s))
            ]
            + [Leaf(**_metadata_row(len(metadata) + blank, "")) for blank in range(BLANK_METADATA_ROWS)],
            script=mapping.get("script") or "",
            shape_check=bool(config.get("shapeCheck")),
            kept=kept,
        )

    @classmethod
    def from_post(cls, data: QueryDict, config: dict[str, Any], flow_variables: list[dict[str, Any]]) -> MappingState:
        """The builder as posted; what it does not edit comes from the saved `config`."""
        mapping_type = data.get("mapping_type", "none")
        structured = (config.get("mapping") or {}).get("structured") or {}
        variables = []
        for index in range(_count(data, "var")):
            name = data.get(f"var-{index}-name", "")
            variables.append(Leaf.from_post(data, **_variable_row(index, name, flow_variables)))
        metadata = []
        for index in range(_count(data, "meta")):
            key = data.get(f"meta-{index}-name", "").strip()
            metadata.append(Leaf.from_post(data, **_metadata_row(index, key)))
        if all(row.name or row.mapped for row in metadata):
            metadata.append(Leaf(**_metadata_row(len(metadata), "")))
        return cls(
            type=mapping_type if mapping_type in dict(MAPPING_TYPES) else "none",
            target=Leaf.from_post(data, **_target_row()),
            invocation_id=Leaf.from_post(data, **_invocation_id_row()),
            variables=variables,
            metadata=metadata,
            script=data.get("script", "").replace("\r\n", "\n"),
            shape_check=data.get("shape_check") == "on",
            kept=_kept_parts(structured, flow_variables),
        )

    # Writing ---------------------------------------------------------------------------------

    def mapping(self) -> dict[str, Any]:
        """The mapping configuration; the unselected part is kept as a draft when it has content."""
        mapping: dict[str, Any] = {"type": self.type}
        structured = self.structured()
        if self.type == "structured" or len(structured) > len(self.kept):
            mapping["structured"] = structured
        if self.type == "script" or self.script.strip():
            mapping["script"] = self.script
        return mapping

    def structured(self) -> dict[str, Any]:
        structured: dict[str, Any] = {
            key: value for key, value in self.kept.items() if key not in ("variables", "metadata")
        }
        if self.target.mapped:
            structured["targetUserIds"] = self.target.spec()
        if self.invocation_id.mapped:
            structured["flowInvocationId"] = self.invocation_id.spec()
        variables = dict(self.kept.get("variables", {}))
        variables.update({row.name: row.spec() for row in self.variables if row.name and row.mapped})
        if variables:
            structured["variables"] = variables
        metadata = dict(self.kept.get("metadata", {}))
        metadata.update({row.name: row.spec() for row in self.metadata if row.name and row.mapped})
        if metadata:
            structured["metadata"] = metadata
        return structured

    def check_rows(self) -> bool:
        """Problems the form itself can see (a metadata value without a name); True when none."""
        ok = True
        for row in self.metadata:
            if row.mapped and not row.name:
                row.errors.append("Give this metadata entry a name.")
                ok = False
        return ok

    def attach_errors(self, errors: dict[str, list[str]]) -> None:
        """Put a refusal's errors ("mapping.structured.variables.firstName") next to their rows."""
        rows: dict[str, Leaf] = {
            "structured.targetUserIds": self.target,
            "structured.flowInvocationId": self.invocation_id,
        }
        rows.update({f"structured.variables.{row.name}": row for row in self.variables if row.name})
        rows.update({f"structured.metadata.{row.name}": row for row in self.metadata if row.name})
        for key, messages in errors.items():
            location = key.removeprefix("mapping.")
            row = rows.get(location) or rows.get(location.rsplit(".", 1)[0])
            if row is not None:
                row.errors.extend(messages)
            elif location == "script":
                self.script_errors.extend(messages)
            else:
                self.errors.extend(f"{location}: {message}" for message in messages)

    @property
    def error_count(self) -> int:
        rows = [self.target, self.invocation_id, *self.variables, *self.metadata]
        return sum(len(row.errors) for row in rows) + len(self.errors) + len(self.script_errors)

    @property
    def presets(self) -> list[dict[str, str]]:
        return [{"key": key, **preset} for key, preset in PRESETS.items()]

    def apply_preset(self, key: str) -> bool:
        preset = PRESETS.get(key)
        if preset is None:
            return False
        self.type, self.script = "script", preset["script"]
        return True


def _entries(spec: Any) -> dict[str, Any]:
    return spec if isinstance(spec, dict) else {}


def _count(data: QueryDict, prefix: str) -> int:
    count = 0
    while f"{prefix}-{count}-kind" in data:
        count += 1
    return count


def _kept_parts(structured: dict[str, Any], flow_variables: list[dict[str, Any]]) -> dict[str, Any]:
    """What of a saved structured mapping has no row in the builder, to save unchanged."""
    kept: dict[str, Any] = {}
    for key, spec in structured.items():
        if key in ("variables", "metadata"):
            if isinstance(spec, dict):
                nested = {name: item for name, item in spec.items() if not _is_leaf(item)}
                if nested:
                    kept[key] = nested
            else:
                kept[key] = spec  # one path that yields the whole object
        elif key == "targetUserIds":
            if not _is_leaf(spec) and not (isinstance(spec, list) and len(spec) == 1 and _is_leaf(spec[0])):
                kept[key] = spec
        elif key != "flowInvocationId":
            kept[key] = spec
    return kept


def _target_row() -> dict[str, Any]:
    return {
        "prefix": "target",
        "label": "targetUserIds",
        "required": True,
        "help": "Who gets the flow: a path to one userId or to a list of them.",
    }


def _invocation_id_row() -> dict[str, Any]:
    return {
        "prefix": "fid",
        "label": "flowInvocationId",
        "help": "Optional. A unique id of the event makes the sender's retries start the flow once.",
    }


def _variable_row(index: int, name: str, flow_variables: list[dict[str, Any]]) -> dict[str, Any]:
    definition = next((variable for variable in flow_variables if variable["name"] == name), None)
    if definition is None:
        help_text = "Not a variable of this flow."
    elif definition.get("default") is not None:
        help_text = f"Default: {definition['default']}"
    elif definition.get("required"):
        help_text = "Required: no default."
    else:
        help_text = "No default."
    return {
        "prefix": f"var-{index}",
        "label": name,
        "name": name,
        "required": bool(definition and definition.get("required") and definition.get("default") is None),
        "help": help_text,
    }


def _metadata_row(index: int, key: str) -> dict[str, Any]:
    return {"prefix": f"meta-{index}", "label": key or "New entry", "name": key}
