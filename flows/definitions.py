"""Flow definitions: their declared shape, rendering cards from them, and what changed between two.

A definition is `{"variables": [{name, default, required}], "steps": [...]}` with steps
`{"type": "send_card", "card": {"title", "body", "actions": [{"label", "url"}]}}` and
`{"type": "wait", "seconds": N}`. Card text may reference variables as `{{name}}`.
"""

from __future__ import annotations

import html
import re
from typing import Any, Literal, TypedDict

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from workbench.shapes import FullMatch, Shape, Text, TrueOrFalse, WholeNumber, says, validate_shape

MAX_STEPS = 50
MAX_VARIABLES = 100
MAX_ACTIONS = 5
MAX_WAIT_SECONDS = 366 * 24 * 3600
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}\Z")
VARIABLE_NAME_MESSAGE = "A name starts with a letter or _, then letters, digits, _, . or -."
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
# A button opens a web page (https://…) or an app (myapp://…, a deep link): `scheme://`, then
# no white space and no control character. Spelled out rather than `\S`, whose meaning differs
# between Python, ECMAScript (OpenAPI's patterns) and schema-driven generators: C0 and C1
# controls, and every Unicode White_Space character.
LINK_TAIL = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+"
LINK = re.compile(rf"^[a-z][a-z0-9+.-]*://{LINK_TAIL}\Z", re.IGNORECASE)
# Schemes that run code or read local files wherever the link is opened.
UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data", "file"})
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
# What URL parsers ignore around a URL (C0 controls and space) and inside it (tab, newlines).
C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
TAB_AND_NEWLINES = {ord("\t"): None, ord("\n"): None, ord("\r"): None}


# --- The declared shape ---------------------------------------------------------------------


class Variable(TypedDict):
    name: str
    default: str | int | float | bool | None
    required: bool


class CardAction(TypedDict):
    label: str
    url: str


class CardContent(TypedDict):
    title: str
    body: str
    actions: list[CardAction]


class CardStep(TypedDict):
    type: Literal["send_card"]
    card: CardContent


class WaitStep(TypedDict):
    type: Literal["wait"]
    seconds: int


Step = CardStep | WaitStep


class Definition(TypedDict):
    """A flow's definition as stored: `Flow.draft`, `FlowVersion.definition`, `Invocation.definition`."""

    variables: list[Variable]
    steps: list[Step]


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True})
class ScalarField(serializers.Field):
    """A variable's default: a string, number or boolean (or null: none)."""

    def to_internal_value(self, data: object) -> str | int | float | bool:
        if not isinstance(data, (str, int, float, bool)):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _any_case(word: str) -> str:
    return "".join(f"[{letter.lower()}{letter.upper()}]" for letter in word)


# What OpenAPI can say of a button's URL: `scheme://` and no white space, the scheme not one
# that runs code or reads files (OpenAPI patterns have no case-insensitive flag).
_UNSAFE = "|".join(_any_case(scheme) for scheme in sorted(UNSAFE_SCHEMES))
SAFE_LINK = rf"^(?!(?:{_UNSAFE}):)[A-Za-z][A-Za-z0-9+.-]*://{LINK_TAIL}\Z"
BUTTON_URL_MESSAGE = "A button needs a URL such as https://… or an app link myapp://…."


class ButtonUrl(RegexValidator):
    """Documented as `SAFE_LINK`; checked by `_acceptable_button_url`, which also takes a
    `{{variable}}` template (its rendered link is checked again at delivery)."""

    def __init__(self) -> None:
        super().__init__(SAFE_LINK, BUTTON_URL_MESSAGE)

    def __call__(self, value: Any) -> None:
        if not isinstance(value, str) or not _acceptable_button_url(value):
            raise DjangoValidationError(self.message, code=self.code)


class VariableSerializer(Shape):
    not_an_object = "Expected an object {name, default, required}."

    name = Text(
        validators=[FullMatch(VARIABLE_NAME.pattern, VARIABLE_NAME_MESSAGE)],
        error_messages=says(VARIABLE_NAME_MESSAGE),
        help_text="Unique in the flow.",
    )
    default = ScalarField(
        required=False,
        allow_null=True,
        default=None,
        error_messages=says("A default is a string, number or boolean."),
        help_text="A string, number or boolean.",
    )
    required = TrueOrFalse(required=False, default=False, error_messages=says("Expected true or false."))  # type: ignore[assignment]  # a payload field


class VariablesField(serializers.ListField):
    """The variables; a name may be defined once."""

    def __init__(self, **kwargs: Any) -> None:
        messages = says("Expected an array of {name, default, required}.")
        messages["max_length"] = f"At most {MAX_VARIABLES} variables."
        super().__init__(child=VariableSerializer(), max_length=MAX_VARIABLES, error_messages=messages, **kwargs)

    def to_internal_value(self, data: object) -> list[Variable]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) > MAX_VARIABLES:
            self.fail("max_length", max_length=MAX_VARIABLES)
        variables: list[Variable] = super().to_internal_value(data)
        seen: set[str] = set()
        errors: dict[str, dict[str, list[str]]] = {}
        for index, variable in enumerate(variables):
            if variable["name"] in seen:
                errors[str(index)] = {"name": [f"The variable {variable['name']!r} is defined twice."]}
            seen.add(variable["name"])
        if errors:
            raise ValidationError(errors)
        return variables


class CardActionSerializer(Shape):
    not_an_object = "A button is {label, url}."

    label = Text(max_length=100, error_messages=says("A button needs a label of 1 to 100 characters."))  # type: ignore[assignment]  # a payload field
    url = Text(
        validators=[ButtonUrl()],
        error_messages=says(BUTTON_URL_MESSAGE),
        help_text="https://… or an app link myapp://…; never javascript:, vbscript:, data: or file:.",
    )


class CardContentSerializer(Shape):
    not_an_object = "Expected an object {title, body, actions}."

    title = Text(
        max_length=500,
        error_messages=says("A card needs a title of 1 to 500 characters."),
        help_text="May use {{variable}} placeholders of declared variables.",
    )
    body = Text(
        max_length=5000,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        error_messages=says("The body is text of at most 5,000 characters."),
    )
    actions = serializers.ListField(
        child=CardActionSerializer(),
        required=False,
        default=list,
        max_length=MAX_ACTIONS,
        error_messages=says(f"Expected an array of at most {MAX_ACTIONS} {{label, url}} buttons."),
    )


class CardStepSerializer(Shape):
    type = serializers.ChoiceField(choices=["send_card"])
    card = CardContentSerializer(error_messages=says(CardContentSerializer.not_an_object))


class WaitStepSerializer(Shape):
    type = serializers.ChoiceField(choices=["wait"])
    seconds = WholeNumber(
        min_value=1, max_value=MAX_WAIT_SECONDS, error_messages=says(f"Wait 1 to {MAX_WAIT_SECONDS:,} whole seconds.")
    )


STEP_SERIALIZERS: dict[str, type[serializers.Serializer[Any]]] = {
    "send_card": CardStepSerializer,
    "wait": WaitStepSerializer,
}
STEP_MESSAGE = 'A step is {"type": "send_card", "card": {...}} or {"type": "wait", "seconds": N}.'


@extend_schema_field(
    PolymorphicProxySerializer(component_name="Step", serializers={**STEP_SERIALIZERS}, resource_type_field_name="type")
)
class StepField(serializers.Field):
    """One step, checked by the serializer of its type."""

    def to_internal_value(self, data: object) -> Step:
        kind = data.get("type") if isinstance(data, dict) else None
        serializer = STEP_SERIALIZERS.get(kind) if isinstance(kind, str) else None
        if serializer is None:
            raise ValidationError(STEP_MESSAGE)
        step: Step = serializer().run_validation(data)
        return step

    def to_representation(self, value: Any) -> Any:
        return value


class StepsField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        messages = says("Expected an array of steps.")
        messages["max_length"] = f"At most {MAX_STEPS} steps."
        super().__init__(child=StepField(), max_length=MAX_STEPS, error_messages=messages, **kwargs)

    def to_internal_value(self, data: object) -> list[Step]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) > MAX_STEPS:
            self.fail("max_length", max_length=MAX_STEPS)
        steps: list[Step] = super().to_internal_value(data)
        return steps


class DefinitionSerializer(Shape):
    """A flow definition. Declared: every key's type, length and nesting. By hand: a variable
    is defined once (`VariablesField`), a button's link is safe (`ButtonUrl`), and card text
    names only declared variables (`validate`)."""

    variables = VariablesField()
    steps = StepsField()

    def validate(self, attrs: dict[str, Any]) -> Definition:
        names = {variable["name"] for variable in attrs["variables"]}
        errors: dict[str, list[str]] = {}
        for index, step in enumerate(attrs["steps"]):
            if step["type"] != "send_card":
                continue
            where = f"steps.{index}.card"
            card = step["card"]
            _check_placeholders(card["title"], names, f"{where}.title", errors)
            _check_placeholders(card["body"], names, f"{where}.body", errors)
            for number, action in enumerate(card["actions"]):
                _check_placeholders(action["label"], names, f"{where}.actions.{number}.label", errors)
                _check_placeholders(action["url"], names, f"{where}.actions.{number}.url", errors)
        if errors:
            raise ValidationError(errors)
        return Definition(variables=attrs["variables"], steps=attrs["steps"])


def definition_clean(variables: Any, steps: Any) -> Definition:
    """A clean copy of the definition, or `Invalid` with every problem by location."""
    definition: Definition = validate_shape(DefinitionSerializer(), {"variables": variables, "steps": steps})
    return definition


def _check_placeholders(text: str, names: set[str], where: str, errors: dict[str, list[str]]) -> None:
    unknown = sorted({name for name in PLACEHOLDER.findall(text) if name not in names})
    if unknown:
        errors.setdefault(where, []).append(
            "Unknown variable(s): " + ", ".join(unknown) + ". Define them under variables first."
        )


def resolve_variables(definition: Definition, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Given values over defaults; also the required variables that have neither."""
    resolved: dict[str, Any] = {}
    missing: list[str] = []
    for variable in definition.get("variables", []):
        name = variable["name"]
        if name in given and given[name] is not None:
            resolved[name] = given[name]
        elif variable.get("default") is not None:
            resolved[name] = variable["default"]
        elif variable.get("required"):
            missing.append(name)
    # Values for names the definition does not declare still reach the card as given.
    for name, value in given.items():
        resolved.setdefault(name, value)
    return resolved, missing


def render_text(text: str, variables: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return PLACEHOLDER.sub(replace, text)


def render_card(card: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """The card as a user receives it. A button whose URL a variable made unsafe (such as
    javascript:) is left out here, at delivery, so no feed or app ever holds it."""
    actions = [
        {"label": render_text(action["label"], variables), "url": render_text(action["url"], variables)}
        for action in card.get("actions", [])
    ]
    return {
        "title": render_text(card["title"], variables),
        "body": render_text(card.get("body", ""), variables),
        "actions": [action for action in actions if is_safe_link(action["url"])],
    }


def is_safe_link(url: str) -> bool:
    """A web or app link (https://…, myapp://…), never one whose scheme runs code or opens
    local files (javascript:, vbscript:, data:, file:) however it is written."""
    return bool(LINK.match(url)) and not _has_unsafe_scheme(url)


def _acceptable_button_url(url: str) -> bool:
    """A safe link, or a template whose variables decide the link: then the text before the
    first `{{…}}` must not already name an unsafe scheme (the rendered link is checked again
    at delivery, `render_card`)."""
    placeholder = PLACEHOLDER.search(url)
    if placeholder is None:
        return is_safe_link(url)
    return not _has_unsafe_scheme(url[: placeholder.start()])


def _has_unsafe_scheme(url: str) -> bool:
    """Whether a browser, or an app that renders the link as HTML, would see an unsafe scheme:
    character references decoded (`&#106;avascript:`, `javascript&colon;`), surrounding
    controls and space stripped and tabs and newlines dropped, as URL parsers do, any case."""
    text = url
    for _ in range(3):  # references encoded twice or three times over are still decoded
        text = html.unescape(text)
    text = text.translate(TAB_AND_NEWLINES).strip(C0_AND_SPACE)
    scheme = SCHEME.match(text)
    return scheme is not None and scheme.group(1).lower() in UNSAFE_SCHEMES
