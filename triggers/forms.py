"""Forms of the webhook trigger setup page: the sample, the mapping builder and security.

The mapping builder is not a Django form: its rows follow the flow's variables and the
saved mapping, so `MappingState` reads them from a saved configuration or from a POST, turns
them back into a mapping configuration (SPEC section 4) and carries the errors a save
refused, keyed the way `webhook_trigger_update` reports them, next to their row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

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


# --- The name -------------------------------------------------------------------------------


class TriggerNameForm(forms.Form):
    name = forms.CharField(
        required=False,
        max_length=200,
        label="Name",
        help_text='What you call it, e.g. "Orders from Shopify". Shown in the list of triggers and the flow\'s header.',
        widget=forms.TextInput(attrs={"placeholder": "e.g. Orders from Shopify", "autocomplete": "off"}),
    )


# --- Security -------------------------------------------------------------------------------


SIGNATURE_OFF = "none"
SIGNATURE_CUSTOM = "custom"
FROM_FORM, FROM_JSON = "form", "json"
ALGORITHM_CHOICES = (("sha256", "HMAC-SHA256"), ("sha1", "HMAC-SHA1"))
DIGEST_CHOICES = (("hex", "Hexadecimal"), ("base64", "Base64"))
SECRET_ENCODING_CHOICES = (("utf8", "Text, as given"), ("base64", "Base64"), ("hex", "Hexadecimal"))
# Form field → location in the signature configuration (SPEC section 4, "Signature").
SIGNATURE_FIELDS: dict[str, str] = {
    "signature_secret": "secret",
    "secret_encoding": "secretEncoding",
    "secret_prefix": "secretPrefix",
    "algorithm": "algorithm",
    "digest": "digest",
    "template": "template",
    "tolerance_seconds": "toleranceSeconds",
    "signature_header": "data.signature.header",
    "signature_prefix": "data.signature.parsePrefix",
    "timestamp_header": "data.timestamp.header",
    "timestamp_prefix": "data.timestamp.parsePrefix",
    "id_header": "data.id.header",
    "id_prefix": "data.id.parsePrefix",
}
# How the configuration's words read on the form, in the serializers' messages.
_FORM_WORDS = (("data.timestamp", "the timestamp header"), ("data.id", "the id header"))


def _text(label: str, help_text: str = "", **attrs: str) -> forms.CharField:
    return forms.CharField(
        required=False,
        label=label,
        help_text=help_text,
        strip=False,  # the serializers say what is wrong with spaces; the form does not hide them
        widget=forms.TextInput(attrs={"class": "code", "spellcheck": "false", "autocomplete": "off", **attrs}),
    )


class SecurityForm(forms.Form):
    """The allowlist, and how the sender signs its requests: a preset fills the fields, which
    make the same configuration as the JSON of the "Advanced" view (`signature_source` says which
    one was edited). Both go through the same serializers (`triggers.signatures`) when saved.
    """

    allowed_ips = forms.CharField(
        required=False,
        label="Allowed IP addresses and CIDR ranges",
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "class": "code wide-input",
                "spellcheck": "false",
                "placeholder": "203.0.113.7\n198.51.100.0/24",
            }
        ),
        help_text="One per line. Leave empty to accept requests from any address.",
    )
    signature_preset = forms.ChoiceField(required=False, label="Signed by", choices=())
    signature_header = _text("Signature header", "Where the signature is, e.g. Stripe-Signature.")
    signature_prefix = _text("Signature prefix", "Optional: the text before each signature, e.g. v1=.")
    timestamp_header = _text("Timestamp header", "Optional: where the signed timestamp is.")
    timestamp_prefix = _text("Timestamp prefix", "Optional, e.g. t=.")
    id_header = _text("Message id header", "Optional: where the signed message id is (Standard Webhooks).")
    id_prefix = _text("Message id prefix", "Optional.")
    template = _text("Signed text", "[payload] is the raw body; [timestamp] and [id] the values read above.")
    algorithm = forms.ChoiceField(
        required=False, label="Algorithm", choices=ALGORITHM_CHOICES, help_text="Keyed with the signing secret."
    )
    digest = forms.ChoiceField(
        required=False, label="Signature encoding", choices=DIGEST_CHOICES, help_text="How the header writes it."
    )
    tolerance_seconds = _text("Tolerance (seconds)", "Older or newer timestamps are refused.", inputmode="numeric")
    secret_encoding = forms.ChoiceField(
        required=False,
        label="Secret encoding",
        choices=SECRET_ENCODING_CHOICES,
        help_text="Base64 or hexadecimal when the sender gives the key as encoded bytes.",
    )
    secret_prefix = _text("Secret prefix", "Optional: removed before decoding, e.g. whsec_.")
    signature_secret = forms.CharField(
        required=False,
        label="Signing secret",
        strip=True,
        widget=forms.PasswordInput(attrs={"class": "code", "autocomplete": "new-password", "spellcheck": "false"}),
    )
    signature = forms.CharField(
        required=False,
        label="Signature configuration (JSON)",
        widget=forms.Textarea(attrs={"rows": 12, "class": "code wide-input", "spellcheck": "false"}),
        help_text="The same settings as the form above. Empty: requests need no signature.",
    )
    signature_source = forms.ChoiceField(
        required=False, choices=((FROM_FORM, "The form"), (FROM_JSON, "The JSON")), initial=FROM_FORM
    )

    def __init__(self, *args: Any, presets: dict[str, dict[str, Any]], secret_saved: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presets = presets
        self.secret_saved = secret_saved
        choices = [(SIGNATURE_OFF, "Nothing: accept unsigned requests")]
        choices += [(name, preset["label"]) for name, preset in presets.items()]
        choices += [(SIGNATURE_CUSTOM, "Another sender (fill in below)")]
        preset_field = self.fields["signature_preset"]
        assert isinstance(preset_field, forms.ChoiceField)
        preset_field.choices = choices
        secret = self.fields["signature_secret"]
        secret.widget.attrs["placeholder"] = (
            "Saved and hidden: leave empty to keep it" if secret_saved else "The secret the sender gave you"
        )

    # Reading a saved configuration ------------------------------------------------------------

    @classmethod
    def initial_for(cls, security: dict[str, Any], mask: str, presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
        signature = security.get("signature")
        initial: dict[str, Any] = {
            "allowed_ips": "\n".join(security.get("allowedIps") or []),
            "signature": pretty_json({**signature, "secret": mask}) if signature else "",
            "signature_source": FROM_FORM,
            "signature_preset": preset_of(signature, presets) if signature else SIGNATURE_OFF,
        }
        if signature:
            initial.update(signature_fields(signature))
        return initial

    @classmethod
    def with_preset(cls, data: Any, name: str, *, mask: str, **kwargs: Any) -> SecurityForm:
        """The posted form with a preset's settings in the signature fields, not saved; the
        allowlist stays as posted. "Another sender" keeps the posted fields to edit."""
        presets = kwargs["presets"]
        initial: dict[str, Any] = {
            "allowed_ips": data.get("allowed_ips", ""),
            "signature_preset": name,
            "signature_source": FROM_FORM,
        }
        if name in presets:
            config = presets[name]["config"]
            initial.update(signature_fields(config))
            initial["signature"] = pretty_json({**config, "secret": mask if kwargs["secret_saved"] else ""})
        elif name == SIGNATURE_CUSTOM:
            initial.update({field: data.get(field, "") for field in SIGNATURE_FIELDS if field != "signature_secret"})
        return cls(initial=initial, **kwargs)

    # Cleaning ---------------------------------------------------------------------------------

    def clean_allowed_ips(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["allowed_ips"].splitlines() if line.strip()]

    def clean_signature(self) -> Any:
        text = self.cleaned_data["signature"].strip()
        if not text or self.data.get("signature_source") != FROM_JSON:
            return text or None
        value, problem = parse_json_text(text)
        if problem:
            raise forms.ValidationError(problem)
        if not isinstance(value, dict):
            raise forms.ValidationError('Expected a JSON object: {"secret": "...", "algorithm": "sha256", ...}.')
        return value

    @property
    def from_json(self) -> bool:
        return self.cleaned_data.get("signature_source") == FROM_JSON

    def signature_config(self, mask: str) -> dict[str, Any] | None:
        """The signature configuration the member gave, for the serializers to validate; None: off.

        From the form, an empty secret field stands for the saved one (`mask`), as in the JSON.
        """
        data = self.cleaned_data
        if self.from_json:
            signature: dict[str, Any] | None = data["signature"] or None
            if signature is not None and signature.get("secret") == mask and data["signature_secret"]:
                # The JSON masks a secret typed into the form as it masks a saved one.
                signature = {**signature, "secret": data["signature_secret"]}
            return signature
        if data.get("signature_preset", SIGNATURE_OFF) in ("", SIGNATURE_OFF):
            return None
        config: dict[str, Any] = {
            "secret": data["signature_secret"] or (mask if self.secret_saved else ""),
            "algorithm": data["algorithm"],
            "digest": data["digest"],
            "template": data["template"].strip(),
            "secretEncoding": data["secret_encoding"] or "utf8",
            "data": {"signature": _location(data["signature_header"], data["signature_prefix"])},
        }
        for name in ("timestamp", "id"):
            if data[f"{name}_header"].strip():
                config["data"][name] = _location(data[f"{name}_header"], data[f"{name}_prefix"])
        if data["secret_prefix"]:
            config["secretPrefix"] = data["secret_prefix"]
        tolerance = data["tolerance_seconds"].strip()
        if tolerance and "timestamp" in config["data"]:
            config["toleranceSeconds"] = int(tolerance) if tolerance.isdigit() else tolerance
        return config

    def security(self, mask: str) -> dict[str, Any]:
        return {"allowedIps": self.cleaned_data["allowed_ips"], "signature": self.signature_config(mask)}

    def attach_errors(self, errors: dict[str, list[str]]) -> None:
        """Put a refusal's errors ("security.allowedIps", "security.signature.secret") on the
        fields: the form's own, or the JSON's with their location when the JSON was saved."""
        by_location = {location: name for name, location in SIGNATURE_FIELDS.items()}
        for key, messages in errors.items():
            name: str | None = None
            prefix = ""
            if key.startswith("security.allowedIps"):
                name = "allowed_ips"
            elif key.startswith("security.signature"):
                location = key.removeprefix("security.signature").lstrip(".")
                if self.from_json:
                    name, prefix = "signature", f"{location}: " if location and location != "config" else ""
                else:
                    name = by_location.get(location) or by_location.get(f"{location}.header")
            for message in messages:
                self.add_error(name, f"{prefix}{_in_form_words(message) if not self.from_json else message}")


def _location(header: str, prefix: str) -> dict[str, str]:
    location = {"header": header.strip()}
    if prefix:
        location["parsePrefix"] = prefix
    return location


def _in_form_words(message: str) -> str:
    for words, form_words in _FORM_WORDS:
        message = message.replace(words, form_words)
    return message


def signature_fields(config: dict[str, Any]) -> dict[str, str]:
    """A signature configuration as the form's fields (the secret is never shown)."""
    data = config.get("data") or {}
    fields = {
        "algorithm": config.get("algorithm", "sha256"),
        "digest": config.get("digest", "hex"),
        "template": config.get("template", ""),
        "secret_encoding": config.get("secretEncoding", "utf8"),
        "secret_prefix": config.get("secretPrefix") or "",
        "tolerance_seconds": str(config.get("toleranceSeconds", "")),
    }
    for name in ("signature", "timestamp", "id"):
        location = data.get(name) or {}
        fields[f"{name}_header"] = location.get("header", "")
        fields[f"{name}_prefix"] = location.get("parsePrefix", "")
    return fields


def preset_of(signature: dict[str, Any], presets: dict[str, dict[str, Any]]) -> str:
    """The preset a saved configuration is (its settings, whatever the secret and the tolerance), else custom."""

    def settings(config: dict[str, Any]) -> dict[str, str]:
        fields = signature_fields(config)
        # A tuned tolerance is still the sender's scheme; header names are matched
        # case-insensitively ("stripe-signature" is Stripe's header).
        del fields["tolerance_seconds"]
        return {name: value.lower() if name.endswith("_header") else value for name, value in fields.items()}

    mine = settings(signature)
    for name, preset in presets.items():
        if settings(preset["config"]) == mine:
            return name
    return SIGNATURE_CUSTOM


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

    Parts of a structured mapping this builder does not edit (cardOptions, nested entries,
    several target paths: set through the API) are kept as they were in `kept`, and saved
    with the rows.
    """

    type: str
    target: Leaf
    invocation_id: Leaf
    variables: list[Leaf]
    metadata: list[Leaf]
    notification_detail: list[Leaf]
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
        return cls(
            type=mapping.get("type") or "none",
            target=Leaf.from_spec(target_spec if _is_leaf(target_spec) else "", **_target_row()),
            invocation_id=Leaf.from_spec(structured.get("flowInvocationId", ""), **_invocation_id_row()),
            variables=[
                Leaf.from_spec(mapped_variables.get(name, ""), **_variable_row(index, name, flow_variables))
                for index, name in enumerate(variable_names)
            ],
            metadata=_named_rows_from_spec(structured.get("metadata"), METADATA),
            notification_detail=_named_rows_from_spec(structured.get("notificationDetail"), NOTIFICATION_DETAIL),
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
        return cls(
            type=mapping_type if mapping_type in dict(MAPPING_TYPES) else "none",
            target=Leaf.from_post(data, **_target_row()),
            invocation_id=Leaf.from_post(data, **_invocation_id_row()),
            variables=variables,
            metadata=_named_rows_from_post(data, METADATA),
            notification_detail=_named_rows_from_post(data, NOTIFICATION_DETAIL),
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
        structured: dict[str, Any] = {key: value for key, value in self.kept.items() if key not in ROW_OBJECTS}
        if self.target.mapped:
            structured["targetUserIds"] = self.target.spec()
        if self.invocation_id.mapped:
            structured["flowInvocationId"] = self.invocation_id.spec()
        variables = _kept_entries(self.kept.get("variables"))
        variables.update({row.name: row.spec() for row in self.variables if row.name and row.mapped})
        if variables:
            structured["variables"] = variables
        elif isinstance(self.kept.get("variables"), str):
            structured["variables"] = self.kept["variables"]
        for group, rows in ((METADATA, self.metadata), (NOTIFICATION_DETAIL, self.notification_detail)):
            entries = _kept_entries(self.kept.get(group.key))
            entries.update({row.name: row.spec() for row in rows if row.name and row.mapped})
            if entries:
                structured[group.key] = entries
            elif isinstance(self.kept.get(group.key), str):
                structured[group.key] = self.kept[group.key]
        return structured

    def check_rows(self) -> bool:
        """Problems the form itself can see (a metadata value without a name); True when none."""
        ok = True
        for group, rows in ((METADATA, self.metadata), (NOTIFICATION_DETAIL, self.notification_detail)):
            for row in rows:
                if row.mapped and not row.name:
                    row.errors.append(f"Give this {group.entry} a name.")
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
        rows.update({f"structured.notificationDetail.{row.name}": row for row in self.notification_detail if row.name})
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
        rows = [self.target, self.invocation_id, *self.variables, *self.metadata, *self.notification_detail]
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


def _kept_entries(kept: Any) -> dict[str, Any]:
    """Kept entries of an object field to add rows to. One path that yields the whole object
    (an event trigger's default "variables": "$.properties") stays as it is while no row is
    mapped (see `structured`); mapped rows replace it, since a field is either one or the other."""
    return dict(kept) if isinstance(kept, dict) else {}


def _kept_parts(structured: dict[str, Any], flow_variables: list[dict[str, Any]]) -> dict[str, Any]:
    """What of a saved structured mapping has no row in the builder, to save unchanged."""
    kept: dict[str, Any] = {}
    for key, spec in structured.items():
        if key in ROW_OBJECTS:
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


@dataclass(frozen=True)
class NamedGroup:
    """An object of the start request whose entries the member names: metadata, notificationDetail."""

    key: str  # its key in the start request
    prefix: str  # its rows' field names start with it
    entry: str  # what one entry is called in messages


METADATA = NamedGroup(key="metadata", prefix="meta", entry="metadata entry")
NOTIFICATION_DETAIL = NamedGroup(key="notificationDetail", prefix="nd", entry="notification detail entry")
# The objects of a structured mapping the builder edits row by row.
ROW_OBJECTS = ("variables", METADATA.key, NOTIFICATION_DETAIL.key)


def _named_row(group: NamedGroup, index: int, key: str) -> dict[str, Any]:
    return {"prefix": f"{group.prefix}-{index}", "label": key or "New entry", "name": key}


def _named_rows_from_spec(spec: Any, group: NamedGroup) -> list[Leaf]:
    """A group's saved entries that are leaves, then blank rows to add more."""
    leaves = [(key, item) for key, item in _entries(spec).items() if _is_leaf(item)]
    rows = [Leaf.from_spec(item, **_named_row(group, index, key)) for index, (key, item) in enumerate(leaves)]
    return rows + [Leaf(**_named_row(group, len(rows) + blank, "")) for blank in range(BLANK_METADATA_ROWS)]


def _named_rows_from_post(data: QueryDict, group: NamedGroup) -> list[Leaf]:
    """A group's rows as posted, plus a blank one when every row is filled in."""
    rows = []
    for index in range(_count(data, group.prefix)):
        key = data.get(f"{group.prefix}-{index}-name", "").strip()
        rows.append(Leaf.from_post(data, **_named_row(group, index, key)))
    if all(row.name or row.mapped for row in rows):
        rows.append(Leaf(**_named_row(group, len(rows), "")))
    return rows


# --- Segment and event triggers -------------------------------------------------------------


MODE_CHOICES = [("test", "Test — test users only"), ("live", "Live — real customers"), ("disabled", "Disabled")]


class SegmentTriggerForm(forms.Form):
    """A segment trigger's settings; the segments offered are the environment's, with their sizes."""

    name = TriggerNameForm.base_fields["name"]
    segment = forms.TypedChoiceField(coerce=int, label="Segment", empty_value=None)
    on = forms.ChoiceField(
        label="Start the flow when a customer…",
        choices=[("entered", "enters the segment"), ("exited", "exits the segment")],
        initial="entered",
        widget=forms.RadioSelect,
    )
    reentry = forms.ChoiceField(
        label="Each customer",
        choices=[
            ("always", "every time it happens (re-entry starts it again)"),
            ("once", "once, ever (never again for that customer)"),
        ],
        initial="always",
        widget=forms.RadioSelect,
    )
    mode = forms.ChoiceField(label="Mode", choices=MODE_CHOICES, initial="test", widget=forms.RadioSelect)

    def __init__(self, *args: Any, segments: list[tuple[int, str]], with_mode: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["segment"]).choices = [("", "Choose a segment…"), *segments]
        self.fields["name"].widget.attrs["placeholder"] = "e.g. Welcome new VIPs"
        if not with_mode:
            del self.fields["mode"]


class EventTriggerForm(forms.Form):
    """An event trigger's event name and property filters (its mapping is the mapping builder's)."""

    name = TriggerNameForm.base_fields["name"]
    event_name = forms.CharField(
        label="Event name",
        max_length=255,
        help_text="The name your app sends with POST events, e.g. purchase_completed.",
        widget=forms.TextInput(attrs={"list": "known-events", "autocomplete": "off", "placeholder": "e.g. upgraded"}),
    )
    where = forms.CharField(
        label="Only events whose properties match (optional)",
        required=False,
        help_text='A JSON list of filters, all of which must hold: [{"property": "plan", "op": "eq", "value": "pro"}]. '
        "Ops as in segments' field tests: eq, neq, contains, in, gt, withinLastDays, exists, …",
        widget=forms.Textarea(attrs={"rows": 3, "class": "code wide-input", "spellcheck": "false"}),
    )
    mode = forms.ChoiceField(label="Mode", choices=MODE_CHOICES, initial="test", widget=forms.RadioSelect)

    def __init__(self, *args: Any, with_mode: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["placeholder"] = "e.g. Thank upgraders"
        if not with_mode:
            del self.fields["mode"]

    def clean_where(self) -> Any:
        text = self.cleaned_data.get("where", "").strip()
        if not text:
            return []
        value, problem = parse_json_text(text)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def attach_errors(self, errors: dict[str, list[str]]) -> None:
        """The service's errors, keyed by API path, on the form's fields."""
        for key, messages in errors.items():
            field = "event_name" if key == "eventName" else "where" if key.startswith("where") else None
            for message in messages:
                self.add_error(field, f"{key}: {message}" if field == "where" else message)


# --- Manual starts (SPEC section 6) ---------------------------------------------------------

AUDIENCE_SOURCES = (("rules", "Filter with rules"), ("segment", "A saved segment"))
AUDIENCE_PICKS = (("all", "Everyone who matches"), ("some", "Only the customers I tick"))


class _AnyChoices(forms.MultipleChoiceField):
    """Ticked customers: any userId is taken here, and checked against the audience when the
    send is made (`manual_send_create` keeps only those who match)."""

    def valid_value(self, value: Any) -> bool:
        return True


class DashboardSendForm(forms.Form):
    """The customers dashboard's send: who (rules or a saved segment, all or the ticked ones)
    and which published flow. The rules are the builder's JSON, checked by the segments'
    validator in the view (`segments.forms.check_rules`)."""

    source = forms.ChoiceField(choices=AUDIENCE_SOURCES, initial="rules")
    rules = forms.CharField(required=False, widget=forms.HiddenInput)
    segment = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Segment")
    pick = forms.ChoiceField(choices=AUDIENCE_PICKS, initial="all", required=False)
    user_ids = _AnyChoices(required=False)
    flow = forms.TypedChoiceField(
        coerce=int, empty_value=None, label="Flow", error_messages={"required": "Choose the flow to start."}
    )

    def __init__(
        self, *args: Any, segments: list[tuple[int, str]], flows: list[tuple[int, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["segment"]).choices = [("", "Choose a segment…"), *segments]
        cast(forms.ChoiceField, self.fields["flow"]).choices = [("", "Choose a published flow…"), *flows]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("source") == "segment" and not cleaned.get("segment"):
            self.add_error("segment", "Choose a segment.")
        if cleaned.get("pick") == "some" and not cleaned.get("user_ids"):
            self.add_error("user_ids", "Tick at least one customer, or send to everyone who matches.")
        return cleaned


class ManualSendLimitForm(forms.Form):
    manual_send_limit = forms.IntegerField(
        min_value=1,
        max_value=10_000_000,
        label="Manual send limit",
        error_messages={"required": "Give the largest number of customers one send may reach."},
    )


class CsvUploadForm(forms.Form):
    mode = forms.ChoiceField(choices=(("live", "Live"), ("test", "Test (test users only)")), initial="live")
    file = forms.FileField(
        label="CSV file",
        error_messages={"required": "Choose a CSV file to upload.", "empty": "The file is empty."},
    )


class TestSenderForm(forms.Form):
    """Pasted JSON start requests (SPEC section 2, an array for several)."""

    __test__ = False  # not a pytest class

    json = forms.CharField(
        required=False,
        strip=True,
        label="Start requests (JSON)",
        widget=forms.Textarea(attrs={"rows": 12, "class": "code wide-input", "spellcheck": "false"}),
    )
    file = forms.FileField(required=False, label="…or a CSV file")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("json") and not cleaned.get("file"):
            raise forms.ValidationError("Paste start requests as JSON, or choose a CSV file.")
        return cleaned
