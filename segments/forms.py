"""The segment form of the Workbench: a name, and the rules as JSON in a hidden field.

static/js/segment_builder.js draws the rule builder from that JSON and writes every edit back
into it, so the server receives the very shape the API takes and checks it with the same
validator (`segments.rules.rules_clean`). Its errors are kept by path ("rules.conditions[2].op")
so that the page can show each next to the condition it concerns.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from workbench.errors import FieldErrors, Invalid

from .rules import rules_clean

EMPTY_RULES: dict[str, Any] = {"match": "all", "conditions": []}
# Far more than a marketer builds by hand; the limit keeps a pasted blob from reaching the validator.
MAX_RULES_LENGTH = 200_000


def rules_json(rules: Any) -> str:
    return json.dumps(rules, separators=(",", ":"))


def parse_rules(text: str) -> tuple[Any, FieldErrors]:
    """The rules sent by the builder, or the error that says why they could not be read."""
    if len(text) > MAX_RULES_LENGTH:
        return None, {"rules": ["These rules are too long."]}
    try:
        rules = json.loads(text or "null")
    except ValueError:
        return None, {"rules": ["The rules could not be read; reload the page and try again."]}
    if not isinstance(rules, dict):
        return None, {"rules": ["Add at least one condition."]}
    return rules, {}


def check_rules(text: str, *, environment_id: int, segment_id: int | None = None) -> tuple[Any, FieldErrors]:
    """(cleaned rules, {}) or (None, errors by path) for the builder's JSON."""
    rules, errors = parse_rules(text)
    if errors:
        return None, errors
    try:
        return rules_clean(rules, environment_id=environment_id, segment_id=segment_id), {}
    except Invalid as invalid:
        # The validator names paths from the rules ("rules.conditions[0].op"); a path without
        # the prefix is placed under it, so the page finds every error by the same key.
        return None, {
            key if key.startswith("rules") else f"rules.{key}": value for key, value in invalid.errors.items()
        }


class SegmentForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Name",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Active Pro customers in Germany", "autocomplete": "off"}),
    )
    rules = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, environment_id: int, segment_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environment_id = environment_id
        self.segment_id = segment_id
        # Errors by the condition's path, for the builder; filled by clean_rules.
        self.rule_errors: FieldErrors = {}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the segment a name.")
        return name

    def clean_rules(self) -> dict[str, Any]:
        rules, errors = check_rules(
            self.cleaned_data.get("rules", ""), environment_id=self.environment_id, segment_id=self.segment_id
        )
        if errors:
            self.rule_errors = errors
            raise forms.ValidationError("Some conditions need attention: see the messages next to them.")
        cleaned: dict[str, Any] = rules
        return cleaned

    def rules_state(self) -> Any:
        """The rules to draw the builder from: what was sent (even when invalid), else the initial."""
        if self.is_bound:
            rules, errors = parse_rules(self.data.get("rules", ""))
            return EMPTY_RULES if errors else rules
        return self.initial.get("rules") or EMPTY_RULES
