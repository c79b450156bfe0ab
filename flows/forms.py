"""Forms of the flow pages, and the flow builder's form state.

The builder posts the whole draft as flat fields (`variables-0-name`, `steps-1-title`,
`steps-1-actions-0-url`, `steps-2-amount`…), so it works as a plain HTML form; htmx only
makes adding, removing and moving rows and the card preview happen without a reload.
`BuilderState` turns those fields into a definition for `flow_update`, back into rows for
the template, and hangs `FlowRefused.errors` ("steps.0.card.title") on the right field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms

from .definitions import (
    MAX_ACTIONS,
    MAX_STEPS,
    MAX_VARIABLES,
    PLACEHOLDER,
    Definition,
    Variable,
    is_safe_link,
    render_card,
    render_text,
)

# Wait steps are typed as an amount and a unit, and stored as seconds.
WAIT_UNITS: list[tuple[int, str]] = [(86400, "days"), (3600, "hours"), (60, "minutes"), (1, "seconds")]
Errors = dict[str, list[str]]


class FlowCreateForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        error_messages={"required": "Give the flow a name."},
        help_text="What marketers will recognise it by, for example “Welcome series” or “Payment reminder”.",
    )


class SendTestForm(forms.Form):
    """Who receives a test (only test users can) and the values of the flow's variables."""

    user_ids = forms.MultipleChoiceField(
        label="Send to",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one test user."},
    )

    def __init__(self, *args: Any, test_user_ids: Iterable[str], variables: Sequence[Variable], **kwargs: Any):
        super().__init__(*args, **kwargs)
        user_ids = self.fields["user_ids"]
        assert isinstance(user_ids, forms.MultipleChoiceField)
        user_ids.choices = [(user_id, user_id) for user_id in test_user_ids]
        self.variable_names = [variable["name"] for variable in variables]
        # Required variables without a default: the start would be refused without a value,
        # so the form says so at the field (the start pipeline still checks it too).
        self.needed_names = {v["name"] for v in variables if v.get("required") and v.get("default") is None}
        for variable in variables:
            default = variable.get("default")
            self.fields[f"var-{variable['name']}"] = forms.CharField(
                label=variable["name"],
                required=False,
                max_length=5000,
                initial="" if default is None else _text(default),
                help_text="required" if variable.get("required") else "",
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.variable_names:
            if name in self.needed_names and not cleaned.get(f"var-{name}"):
                self.add_error(f"var-{name}", f"Missing required variable: {name}. It has no default, so give a value.")
        return cleaned

    def start_request(self) -> dict[str, Any]:
        """The start request this test sends: empty values fall back to the defaults."""
        values = {name: self.cleaned_data.get(f"var-{name}", "") for name in self.variable_names}
        return {
            "targetUserIds": list(self.cleaned_data["user_ids"]),
            "variables": {name: value for name, value in values.items() if value != ""},
        }

    def variable_fields(self) -> list[forms.BoundField]:
        return [self[f"var-{name}"] for name in self.variable_names]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- The builder ----------------------------------------------------------------------


@dataclass
class VariableRow:
    name: str = ""
    default: str = ""
    required: bool = False
    original_default: Any = None  # a number or boolean default survives an edit of other fields
    errors: Errors = field(default_factory=dict)

    @property
    def original_json(self) -> str:
        """Numbers and booleans keep their type when the row is posted back unchanged."""
        if isinstance(self.original_default, (int, float, bool)):
            return json.dumps(self.original_default)
        return ""

    def as_definition(self) -> dict[str, Any]:
        default: Any = self.default if self.default != "" else None
        if default is not None and _text(self.original_default) == default:
            default = self.original_default
        return {"name": self.name.strip(), "default": default, "required": self.required}


@dataclass
class ActionRow:
    label: str = ""
    url: str = ""
    errors: Errors = field(default_factory=dict)


@dataclass
class StepRow:
    type: str = "send_card"
    title: str = ""
    body: str = ""
    actions: list[ActionRow] = field(default_factory=list)
    amount: str = "1"
    unit: int = 3600
    errors: Errors = field(default_factory=dict)

    @property
    def is_card(self) -> bool:
        return self.type == "send_card"

    @property
    def can_add_action(self) -> bool:
        return len(self.actions) < MAX_ACTIONS

    @property
    def human_duration(self) -> str:
        """A wait as a marketer says it: "2 hours", "1 day"; empty while the amount is no number."""
        amount = self.amount.strip()
        if not amount.isdigit() or int(amount) == 0:
            return ""
        return human_duration(int(amount) * self.unit)

    def as_definition(self) -> dict[str, Any]:
        if self.type == "wait":
            amount = self.amount.strip()
            # A non-number goes through as it is, so the definition's validation names it.
            seconds: Any = int(amount) * self.unit if amount.isdigit() else amount
            return {"type": "wait", "seconds": seconds}
        actions = [{"label": action.label, "url": action.url.strip()} for action in self.actions]
        return {"type": "send_card", "card": {"title": self.title, "body": self.body, "actions": actions}}


# The rows the builder's "+ Add variable", "+ Send a card" and "+ Wait" add. One source for
# both ways of adding: `BuilderState.apply` (the server, without JavaScript) and the page's
# <template>s that flow_builder.js copies, so a row saves the same whichever way it came.
BUILDER_LIMITS = {"variables": MAX_VARIABLES, "steps": MAX_STEPS}


def new_variable_row() -> VariableRow:
    return VariableRow()


def new_step_row(kind: str) -> StepRow:
    return StepRow(type="wait") if kind == "wait" else StepRow(type="send_card")


@dataclass
class BuilderState:
    name: str
    variables: list[VariableRow]
    steps: list[StepRow]
    errors: Errors = field(default_factory=dict)  # what no field shows: "steps", "variables", "name"
    focus: str = ""  # the field to focus after an edit: the first field of a row just added

    # Reading ---------------------------------------------------------------------------

    @classmethod
    def from_definition(cls, name: str, definition: Definition) -> BuilderState:
        """The builder's rows of a stored (so validated) definition."""
        variables = [
            VariableRow(
                name=variable["name"],
                default=_text(variable["default"]),
                required=variable["required"],
                original_default=variable["default"],
            )
            for variable in definition["variables"]
        ]
        steps = []
        for step in definition["steps"]:
            if step["type"] == "wait":
                amount, unit = _split_seconds(step["seconds"])
                steps.append(StepRow(type="wait", amount=amount, unit=unit))
            else:
                card = step["card"]
                actions = [ActionRow(label=action["label"], url=action["url"]) for action in card["actions"]]
                steps.append(StepRow(title=card["title"], body=card["body"], actions=actions))
        return cls(name=name, variables=variables, steps=steps)

    @classmethod
    def from_post(cls, data: Mapping[str, Any]) -> BuilderState:
        """The builder's rows from its posted fields, in the order of their indices."""
        variables = [
            VariableRow(
                name=data.get(f"variables-{i}-name", ""),
                default=data.get(f"variables-{i}-default", ""),
                required=bool(data.get(f"variables-{i}-required")),
                original_default=_original_default(data.get(f"variables-{i}-original", "")),
            )
            for i in _indices(data, r"variables-(\d+)-name")
        ]
        steps = []
        for i in _indices(data, r"steps-(\d+)-type"):
            prefix = f"steps-{i}-"
            actions = [
                ActionRow(
                    label=data.get(f"{prefix}actions-{a}-label", ""), url=data.get(f"{prefix}actions-{a}-url", "")
                )
                for a in _indices(data, rf"steps-{i}-actions-(\d+)-label")
            ]
            steps.append(
                StepRow(
                    type="wait" if data.get(f"{prefix}type") == "wait" else "send_card",
                    title=data.get(f"{prefix}title", ""),
                    body=data.get(f"{prefix}body", ""),
                    actions=actions,
                    amount=data.get(f"{prefix}amount", ""),
                    unit=_unit(data.get(f"{prefix}unit")),
                )
            )
        return cls(name=data.get("name", ""), variables=variables, steps=steps)

    # Writing ---------------------------------------------------------------------------

    def variables_definition(self) -> list[dict[str, Any]]:
        return [row.as_definition() for row in self.variables]

    def steps_definition(self) -> list[dict[str, Any]]:
        return [row.as_definition() for row in self.steps]

    # Editing: the builder's buttons post an `op` such as "remove-step-2" ------------------

    def apply(self, op: str) -> None:
        """Add, remove or move a row; an unknown or out-of-range op changes nothing."""
        parts = op.split("-")
        verb, what, numbers = parts[0], parts[1] if len(parts) > 1 else "", [int(p) for p in parts[2:] if p.isdigit()]
        if verb == "add":
            self._add(what, numbers)
        elif verb == "remove":
            self._remove(what, numbers)
        elif verb in {"up", "down"} and what == "step" and numbers:
            index = numbers[0]
            other = index - 1 if verb == "up" else index + 1
            if 0 <= index < len(self.steps) and 0 <= other < len(self.steps):
                self.steps[index], self.steps[other] = self.steps[other], self.steps[index]

    def _add(self, what: str, numbers: list[int]) -> None:
        if what == "variable" and len(self.variables) < MAX_VARIABLES:
            self.variables.append(new_variable_row())
            self.focus = f"variables-{len(self.variables) - 1}-name"
        elif what in {"card", "wait"} and len(self.steps) < MAX_STEPS:
            self.steps.append(new_step_row(what))
            self.focus = f"steps-{len(self.steps) - 1}-{'title' if what == 'card' else 'amount'}"
        elif what == "action" and numbers and 0 <= numbers[0] < len(self.steps):
            step = self.steps[numbers[0]]
            if step.is_card and step.can_add_action:
                step.actions.append(ActionRow())
                self.focus = f"steps-{numbers[0]}-actions-{len(step.actions) - 1}-label"

    def _remove(self, what: str, numbers: list[int]) -> None:
        if what == "variable" and numbers and 0 <= numbers[0] < len(self.variables):
            del self.variables[numbers[0]]
        elif what == "step" and numbers and 0 <= numbers[0] < len(self.steps):
            del self.steps[numbers[0]]
        elif what == "action" and len(numbers) == 2 and 0 <= numbers[0] < len(self.steps):
            actions = self.steps[numbers[0]].actions
            if 0 <= numbers[1] < len(actions):
                del actions[numbers[1]]

    # Errors ----------------------------------------------------------------------------

    def attach_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Put each error of `FlowRefused.errors` next to its field; the rest on the form."""
        for key, messages in errors.items():
            target = self._errors_for(key.split("."))
            if target is None:
                self.errors.setdefault(key.split(".")[0], []).extend(messages)
            else:
                errors_of, name = target
                errors_of.setdefault(name, []).extend(messages)

    def _errors_for(self, parts: list[str]) -> tuple[Errors, str] | None:
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        index = int(parts[1])
        if parts[0] == "variables" and index < len(self.variables):
            return self.variables[index].errors, parts[2] if len(parts) > 2 else "row"
        if parts[0] != "steps" or index >= len(self.steps):
            return None
        step = self.steps[index]
        rest = parts[3:] if len(parts) > 2 and parts[2] == "card" else parts[2:]
        if not rest:
            return step.errors, "row"
        if rest[0] == "actions" and len(rest) > 1 and rest[1].isdigit() and int(rest[1]) < len(step.actions):
            return step.actions[int(rest[1])].errors, rest[2] if len(rest) > 2 else "row"
        return step.errors, rest[0]

    @property
    def error_count(self) -> int:
        rows: list[Any] = [*self.variables, *self.steps, *(a for s in self.steps for a in s.actions)]
        return len(self.errors) + sum(len(row.errors) for row in rows)

    # The preview -----------------------------------------------------------------------

    def preview_timeline(self) -> list[dict[str, Any]]:
        """The preview's steps in order: each card (`preview_cards`) and, between them, each
        wait as a human duration ("2 hours"); `duration` is empty while the amount is no number."""
        cards = {card["step"]: card for card in self.preview_cards()}
        timeline: list[dict[str, Any]] = []
        for number, step in enumerate(self.steps, start=1):
            if step.is_card:
                timeline.append({"kind": "card", "step": number, "card": cards[number]})
            else:
                timeline.append({"kind": "wait", "step": number, "duration": step.human_duration})
        return timeline

    def preview_cards(self) -> list[dict[str, Any]]:
        """Each card step rendered with the variables' defaults, as the app would show it.

        A variable without a default shows its name in angle quotes, so the marketer sees
        where it goes.
        """
        values: dict[str, Any] = {}
        for row in self.variables:
            name = row.name.strip()
            if name:
                values[name] = row.default if row.default != "" else f"\u2039{name}\u203a"
        # Placeholders of undeclared names show as they are, so a typo is visible.
        for step in self.steps:
            for text in (step.title, step.body, *(t for a in step.actions for t in (a.label, a.url))):
                for name in PLACEHOLDER.findall(text):
                    values.setdefault(name, "{{" + name + "}}")
        cards = []
        for number, step in enumerate(self.steps, start=1):
            if step.is_card:
                # Buttons are rendered here rather than by render_card, which may refuse a
                # half-typed URL; the preview must show whatever the marketer has typed so far.
                rendered = render_card({"title": step.title, "body": step.body, "actions": []}, values)
                rendered["actions"] = [
                    {"label": label, "url": url, "href": safe_href(url)}
                    for action in step.actions
                    if (label := render_text(action.label, values)).strip()
                    for url in [render_text(action.url.strip(), values)]
                ]
                cards.append({"step": number, **rendered})
        return cards


def human_duration(seconds: int) -> str:
    """Seconds in the largest whole unit: 7200 → "2 hours", 90 → "90 seconds", 86400 → "1 day"."""
    for unit, plural in WAIT_UNITS:
        if seconds % unit == 0:
            count = seconds // unit
            return f"{count} {plural if count != 1 else plural[:-1]}"
    return f"{seconds} seconds"  # pragma: no cover (the last unit divides everything)


def safe_href(url: str) -> str | None:
    """A URL fit for an href (`definitions.is_safe_link`), or None."""
    url = url.strip()
    return url if is_safe_link(url) else None


def _split_seconds(seconds: int) -> tuple[str, int]:
    if seconds > 0:
        for unit, _label in WAIT_UNITS:
            if seconds % unit == 0:
                return str(seconds // unit), unit
    return _text(seconds), 1


def _unit(value: Any) -> int:
    try:
        unit = int(value)
    except (TypeError, ValueError):
        return 1
    return unit if unit in {seconds for seconds, _label in WAIT_UNITS} else 1


def _indices(data: Mapping[str, Any], pattern: str) -> list[int]:
    regex = re.compile(f"^{pattern}$")
    return sorted({int(match.group(1)) for key in data if (match := regex.match(key))})


def _original_default(raw: str) -> Any:
    """The typed default the row was rendered from (numbers and booleans), posted back as JSON."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, (int, float, bool)) else None
