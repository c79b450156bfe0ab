"""What changed between two flow definitions, in the words of the builder.

`definition_diff(before, after)` compares two definitions (a version and the one before it, or
the live version and the draft) and returns a typed, structural difference a marketer reads:
variables added, removed or changed, and steps added, removed or changed with each field's
before → after (a card's title, body and buttons; a wait's duration). Pure: no database.

Steps are aligned as a sequence (difflib), not by position, so inserting a step at the top shows
one added step rather than every later step "changed".
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .forms import human_duration

ChangeKind = Literal["added", "removed", "changed"]
NONE_SHOWN = "—"


@dataclass(frozen=True)
class FieldChange:
    """One field of a step or variable, before and after ("" when it did not exist)."""

    label: str  # "Title", "Body", "Button 1", "Wait", "Default", "Required"
    before: str
    after: str


@dataclass(frozen=True)
class VariableChange:
    kind: ChangeKind
    name: str
    summary: str  # the variable as it is (added), was (removed) or is now (changed)
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class StepChange:
    """A step added, removed or changed; numbers are 1-based positions in each definition."""

    kind: ChangeKind
    before_number: int | None  # None: added
    after_number: int | None  # None: removed
    summary: str  # "Card “Hello”", "Wait 2 days": the step as it is now (as it was, if removed)
    fields: tuple[FieldChange, ...] = ()

    @property
    def number(self) -> int:
        """Where to say it is: its place now, or the place it had if it was removed."""
        return self.after_number if self.after_number is not None else self.before_number or 0

    @property
    def moved(self) -> bool:
        return self.kind == "changed" and self.before_number != self.after_number


@dataclass(frozen=True)
class DiffLine:
    """A line of the pretty-printed JSON difference: "+" added, "-" removed, " " context, "@" a hunk."""

    sign: Literal["+", "-", " ", "@"]
    text: str

    @property
    def kind(self) -> str:
        """The CSS word for the sign: added, removed, context or hunk."""
        return {"+": "added", "-": "removed", " ": "context"}.get(self.sign, "hunk")


@dataclass(frozen=True)
class DefinitionDiff:
    first: bool  # no definition before: everything is new
    variables: tuple[VariableChange, ...]
    steps: tuple[StepChange, ...]
    variables_reordered: bool  # the same variables, in another order

    @property
    def is_empty(self) -> bool:
        return not (self.variables or self.steps or self.variables_reordered)

    @property
    def summary(self) -> str:
        """A short sentence: "1 variable added, 2 steps changed" (or "No changes")."""
        parts = [
            _count(sum(1 for change in changes if change.kind == kind), noun, kind)
            for noun, changes in (("variable", self.variables), ("step", self.steps))
            for kind in ("added", "removed", "changed")
        ]
        said = [part for part in parts if part]
        if self.variables_reordered:
            said.append("variables reordered")
        return ", ".join(said).capitalize() if said else "No changes"


def definition_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> DefinitionDiff:
    """What changed from `before` (None: nothing was published before) to `after`."""
    old_variables = list((before or {}).get("variables", []))
    new_variables = list(after.get("variables", []))
    variables = _variable_changes(old_variables, new_variables)
    same_set = not variables and old_variables != new_variables
    return DefinitionDiff(
        first=before is None,
        variables=tuple(variables),
        steps=tuple(_step_changes(list((before or {}).get("steps", [])), list(after.get("steps", [])))),
        variables_reordered=same_set,
    )


def json_line_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[DiffLine]:
    """The pretty-printed JSON of both, line by line (unified, 3 lines of context): the details."""
    old = _pretty(before).splitlines() if before is not None else []
    new = _pretty(after).splitlines()
    lines: list[DiffLine] = []
    for line in difflib.unified_diff(old, new, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("+"):
            lines.append(DiffLine("+", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("-", line[1:]))
        elif line.startswith(" "):
            lines.append(DiffLine(" ", line[1:]))
        else:
            lines.append(DiffLine("@", line))  # a hunk header, "@@ -1,4 +1,5 @@"
    return lines


def describe_step(step: Mapping[str, Any]) -> str:
    if step.get("type") == "wait":
        return f"Wait {duration_text(step.get('seconds'))}"
    title = str((step.get("card") or {}).get("title", ""))
    return f"Card “{title}”"


def duration_text(seconds: Any) -> str:
    """2 days, 3 hours, 90 minutes, 45 seconds: the builder's words (the largest unit that
    divides it exactly); a stored value that is no whole number of seconds is shown as it is."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
        return str(seconds)
    return human_duration(seconds)


# --- Variables ---------------------------------------------------------------------------


def _variable_changes(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[VariableChange]:
    old_by_name = {variable["name"]: variable for variable in old}
    new_by_name = {variable["name"]: variable for variable in new}
    changes: list[VariableChange] = []
    for name, variable in new_by_name.items():
        if name not in old_by_name:
            changes.append(VariableChange("added", name, _describe_variable(variable)))
            continue
        fields = _variable_fields(old_by_name[name], variable)
        if fields:
            changes.append(VariableChange("changed", name, _describe_variable(variable), fields))
    changes += [
        VariableChange("removed", name, _describe_variable(variable))
        for name, variable in old_by_name.items()
        if name not in new_by_name
    ]
    return changes


def _variable_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    fields = []
    if old.get("default") != new.get("default"):
        fields.append(FieldChange("Default", _value_text(old.get("default")), _value_text(new.get("default"))))
    if bool(old.get("required")) != bool(new.get("required")):
        fields.append(FieldChange("Required", _yes_no(old.get("required")), _yes_no(new.get("required"))))
    return tuple(fields)


def _describe_variable(variable: Mapping[str, Any]) -> str:
    default = variable.get("default")
    parts = ["required" if variable.get("required") else "optional"]
    parts.append(f"default {_value_text(default)}" if default is not None else "no default")
    return ", ".join(parts)


def _value_text(value: Any) -> str:
    if value is None:
        return NONE_SHOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


# --- Steps -------------------------------------------------------------------------------


def _step_changes(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> list[StepChange]:
    """Align the two step lists; a replaced block pairs steps of the same type as "changed"."""
    matcher = difflib.SequenceMatcher(None, [_key(step) for step in old], [_key(step) for step in new], autojunk=False)
    changes: list[StepChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        removed, added = list(range(i1, i2)), list(range(j1, j2))
        while removed and added and old[removed[0]].get("type") == new[added[0]].get("type"):
            i, j = removed.pop(0), added.pop(0)
            fields = _step_fields(old[i], new[j])
            changes.append(StepChange("changed", i + 1, j + 1, describe_step(new[j]), fields))
        changes += [StepChange("removed", i + 1, None, describe_step(old[i])) for i in removed]
        changes += [StepChange("added", None, j + 1, describe_step(new[j]), _step_fields({}, new[j])) for j in added]
    return changes


def _step_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Each field that differs; an added card (old = {}) lists what it holds (an added wait's
    summary, "Wait 2 days", already says all it holds)."""
    if new.get("type") == "wait":
        if "seconds" not in old:
            return ()
        return (FieldChange("Wait", duration_text(old["seconds"]), duration_text(new.get("seconds"))),)
    old_card: Mapping[str, Any] = old.get("card") or {}
    new_card: Mapping[str, Any] = new.get("card") or {}
    fields = [
        FieldChange(label, str(old_card.get(key, "")), str(new_card.get(key, "")))
        for label, key in (("Title", "title"), ("Body", "body"))
        if old_card.get(key, "") != new_card.get(key, "")
    ]
    old_actions, new_actions = list(old_card.get("actions", [])), list(new_card.get("actions", []))
    for index in range(max(len(old_actions), len(new_actions))):
        before = _button_text(old_actions[index]) if index < len(old_actions) else ""
        after = _button_text(new_actions[index]) if index < len(new_actions) else ""
        if before != after:
            fields.append(FieldChange(f"Button {index + 1}", before, after))
    return tuple(fields)


def _button_text(action: Mapping[str, Any]) -> str:
    return f"{action.get('label', '')} → {action.get('url', '')}"


def _key(step: Mapping[str, Any]) -> str:
    return json.dumps(step, sort_keys=True, ensure_ascii=False)


def _pretty(definition: Mapping[str, Any] | None) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False, sort_keys=False)


def _count(number: int, noun: str, kind: str) -> str:
    if not number:
        return ""
    return f"{number} {noun}{'' if number == 1 else 's'} {kind}"
