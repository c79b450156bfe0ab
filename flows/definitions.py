"""Flow definitions: validating them, rendering cards from them, and what changed between two.

A definition is `{"variables": [{name, default, required}], "steps": [...]}` with steps
`{"type": "send_card", "card": {"title", "body", "actions": [{"label", "url"}]}}` and
`{"type": "wait", "seconds": N}`. Card text may reference variables as `{{name}}`.
"""

from __future__ import annotations

import html
import re
from typing import Any

MAX_STEPS = 50
MAX_VARIABLES = 100
MAX_ACTIONS = 5
MAX_WAIT_SECONDS = 366 * 24 * 3600
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
# A button opens a web page (https://…) or an app (myapp://…, a deep link): `scheme://`, then
# no white space.
LINK = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)
# Schemes that run code or read local files wherever the link is opened.
UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data", "file"})
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
# What URL parsers ignore around a URL (C0 controls and space) and inside it (tab, newlines).
C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
TAB_AND_NEWLINES = {ord("\t"): None, ord("\n"): None, ord("\r"): None}


class InvalidDefinition(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("The flow definition is not valid.")
        self.errors = errors


def validate_definition(variables: Any, steps: Any) -> dict[str, Any]:
    """A clean copy of the definition, or InvalidDefinition with every problem by location."""
    errors: dict[str, list[str]] = {}
    clean_variables = _validate_variables(variables, errors)
    names = {variable["name"] for variable in clean_variables}
    clean_steps = _validate_steps(steps, names, errors)
    if errors:
        raise InvalidDefinition(errors)
    return {"variables": clean_variables, "steps": clean_steps}


def _validate_variables(variables: Any, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    if not isinstance(variables, list):
        errors["variables"] = ["Expected an array of {name, default, required}."]
        return []
    if len(variables) > MAX_VARIABLES:
        errors["variables"] = [f"At most {MAX_VARIABLES} variables."]
        return []
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        where = f"variables.{index}"
        if not isinstance(variable, dict):
            errors[where] = ["Expected an object {name, default, required}."]
            continue
        unknown = sorted(set(variable) - {"name", "default", "required"})
        if unknown:
            errors[where] = [f"Unknown field: {name}." for name in unknown]
        name = variable.get("name")
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            errors[f"{where}.name"] = ["A name starts with a letter or _, then letters, digits, _, . or -."]
            continue
        if name in seen:
            errors[f"{where}.name"] = [f"The variable {name!r} is defined twice."]
            continue
        seen.add(name)
        default = variable.get("default")
        if default is not None and not isinstance(default, (str, int, float, bool)):
            errors[f"{where}.default"] = ["A default is a string, number or boolean."]
        required = variable.get("required", False)
        if not isinstance(required, bool):
            errors[f"{where}.required"] = ["Expected true or false."]
        clean.append({"name": name, "default": default, "required": bool(required)})
    return clean


def _validate_steps(steps: Any, names: set[str], errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    if not isinstance(steps, list):
        errors["steps"] = ["Expected an array of steps."]
        return []
    if len(steps) > MAX_STEPS:
        errors["steps"] = [f"At most {MAX_STEPS} steps."]
        return []
    clean: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        where = f"steps.{index}"
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "send_card":
            clean.append(_validate_card_step(step, where, names, errors))
        elif kind == "wait":
            clean.append(_validate_wait_step(step, where, errors))
        else:
            errors[where] = ['A step is {"type": "send_card", "card": {...}} or {"type": "wait", "seconds": N}.']
    return clean


def _validate_card_step(
    step: dict[str, Any], where: str, names: set[str], errors: dict[str, list[str]]
) -> dict[str, Any]:
    unknown = sorted(set(step) - {"type", "card"})
    if unknown:
        errors[where] = [f"Unknown field: {name}." for name in unknown]
    card = step.get("card")
    if not isinstance(card, dict):
        errors[f"{where}.card"] = ["Expected an object {title, body, actions}."]
        return step
    unknown = sorted(set(card) - {"title", "body", "actions"})
    if unknown:
        errors[f"{where}.card"] = [f"Unknown field: {name}." for name in unknown]
    title, body, actions = card.get("title"), card.get("body", ""), card.get("actions", [])
    if not isinstance(title, str) or not title.strip() or len(title) > 500:
        errors[f"{where}.card.title"] = ["A card needs a title of 1 to 500 characters."]
    if not isinstance(body, str) or len(body) > 5000:
        errors[f"{where}.card.body"] = ["The body is text of at most 5,000 characters."]
    clean_actions = _validate_actions(actions, f"{where}.card.actions", errors)
    for field_name, text in (("title", title), ("body", body)):
        if isinstance(text, str):
            _check_placeholders(text, names, f"{where}.card.{field_name}", errors)
    for number, action in enumerate(clean_actions):
        _check_placeholders(action["label"], names, f"{where}.card.actions.{number}.label", errors)
        _check_placeholders(action["url"], names, f"{where}.card.actions.{number}.url", errors)
    return {"type": "send_card", "card": {"title": title, "body": body, "actions": clean_actions}}


def _validate_actions(actions: Any, where: str, errors: dict[str, list[str]]) -> list[dict[str, str]]:
    if not isinstance(actions, list) or len(actions) > MAX_ACTIONS:
        errors[where] = [f"Expected an array of at most {MAX_ACTIONS} {{label, url}} buttons."]
        return []
    clean = []
    for index, action in enumerate(actions):
        if not isinstance(action, dict) or set(action) - {"label", "url"}:
            errors[f"{where}.{index}"] = ["A button is {label, url}."]
            continue
        label, url = action.get("label"), action.get("url")
        if not isinstance(label, str) or not label.strip() or len(label) > 100:
            errors[f"{where}.{index}.label"] = ["A button needs a label of 1 to 100 characters."]
            continue
        if not isinstance(url, str) or not _acceptable_button_url(url):
            errors[f"{where}.{index}.url"] = ["A button needs a URL such as https://… or an app link myapp://…."]
            continue
        clean.append({"label": label, "url": url})
    return clean


def _validate_wait_step(step: dict[str, Any], where: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    unknown = sorted(set(step) - {"type", "seconds"})
    if unknown:
        errors[where] = [f"Unknown field: {name}." for name in unknown]
    seconds = step.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_WAIT_SECONDS:
        errors[f"{where}.seconds"] = [f"Wait 1 to {MAX_WAIT_SECONDS:,} whole seconds."]
    return {"type": "wait", "seconds": seconds}


def _check_placeholders(text: str, names: set[str], where: str, errors: dict[str, list[str]]) -> None:
    unknown = sorted({name for name in PLACEHOLDER.findall(text) if name not in names})
    if unknown:
        errors.setdefault(where, []).append(
            "Unknown variable(s): " + ", ".join(unknown) + ". Define them under variables first."
        )


def resolve_variables(definition: dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
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


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Human sentences for what publishing `after` changes compared with `before`."""
    if before is None:
        return [f"First version: {len(after['variables'])} variable(s), {len(after['steps'])} step(s)."]
    changes: list[str] = []
    old_vars = {v["name"]: v for v in before.get("variables", [])}
    new_vars = {v["name"]: v for v in after.get("variables", [])}
    changes += [f"Variable {name!r} added." for name in new_vars if name not in old_vars]
    changes += [f"Variable {name!r} removed." for name in old_vars if name not in new_vars]
    changes += [
        f"Variable {name!r} changed." for name in new_vars if name in old_vars and new_vars[name] != old_vars[name]
    ]
    old_steps, new_steps = before.get("steps", []), after.get("steps", [])
    for index in range(max(len(old_steps), len(new_steps))):
        old = old_steps[index] if index < len(old_steps) else None
        new = new_steps[index] if index < len(new_steps) else None
        if old == new:
            continue
        if old is None:
            changes.append(f"Step {index + 1} added: {_describe_step(new)}.")
        elif new is None:
            changes.append(f"Step {index + 1} removed: {_describe_step(old)}.")
        else:
            changes.append(f"Step {index + 1} changed: {_describe_step(old)} → {_describe_step(new)}.")
    return changes or ["No changes since the last version."]


def _describe_step(step: Any) -> str:
    if step.get("type") == "wait":
        return f"wait {step.get('seconds')} s"
    return f"send card “{step.get('card', {}).get('title', '')}”"
