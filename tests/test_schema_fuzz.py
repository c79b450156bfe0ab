"""Schemathesis over /api/schema/: every operation answers what the schema says it answers.

Each operation gets a bounded number of generated requests (derandomized, so a run is
reproducible) as each of the three roles, against the WSGI app in-process. A request fails
the test when it is answered with a 5xx, with a status the operation does not document, with
a body or headers that do not match the documented ones, when schema-invalid data is
accepted, or when data the schema declares valid is refused for its shape (the `invalid_request`
and `invalid_json` codes). Rules a schema cannot state (a JSONPath that must compile, a
variable defined twice, a required variable without a value) may refuse valid-looking data
with their own codes or field errors; `_refused_for_its_shape` tells them apart.

Most requests address real resources (a published flow, a webhook trigger with a logged
request, a segment, a test user, a customer, a spare credential); the rest use generated path
values. A trigger's own operations run against a webhook, a segment and an event trigger, whose
bodies and answers differ.
Every request runs in a savepoint that is rolled back, so each one sees the same world.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from django.test import Client
from django.urls import resolve
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from customers import services as customer_services
from flows import services as flow_services
from segments import services as segment_services
from tests.conftest import in_test_transaction
from triggers import csv_tasks, event_triggers, marketo, segment_triggers, sfmc
from triggers import services as trigger_services
from triggers.apis import NOT_THIS_TYPES_FIELD, TYPE_CANNOT_CHANGE
from triggers.signatures import NOT_PRINTABLE
from workbench.models import Environment
from workbench.services import credential_create

# Cases per operation and role: allowed roles get the full budget; a refused role's requests
# stop at the permission check, so a few show that its 403 is documented.
ALLOWED_ROLE_EXAMPLES = 25
REFUSED_ROLE_EXAMPLES = 3
ROLES = ("events", "workbench", "auth")
# Codes that say a request's shape is wrong: what the schema declares. Refused with one of
# these, data the schema calls valid shows a schema that allows what the API refuses.
SHAPE_CODES = frozenset({"invalid_request", "invalid_json"})
# Rules a schema cannot state: a refusal whose every field error is one of these is no lie.
# Fields checked by code (a script must compile, a JSONPath parse, an address be one) ...
UNDECLARABLE_FIELDS = (
    "mapping.script",
    "mapping.structured",
    "security.allowedIps",
    "security.signature.template",
    # A CSV upload's content (its header's columns, UTF-8, rows) is no shape OpenAPI can state.
    "file",
    "columns",
)
# ... and messages of rules across fields or values.
UNDECLARABLE_MESSAGES = (
    "is defined twice",
    "Unknown variable",
    "Does not match the userId in the path",
    "JSONPath",
    "Custom field names are",  # OpenAPI 3.0 cannot bound the length of an object's keys
    # Printable is a rule of Unicode's categories (no format, private-use or unassigned
    # characters), which OpenAPI's pattern dialect cannot state; the pattern says no controls.
    NOT_PRINTABLE,
    # Segments: a segment id must name one of this environment's segments, and a segment's
    # rules may not lead back to itself (state, not shape) ...
    "No such segment in this environment.",
    "A segment may not depend on itself",
    # ... betweenDaysAgo's [from, to] counts days ago: an order between two items, which
    # OpenAPI 3.0 cannot compare ...
    "from must be at least to",
    # ... and the members list's cursor is opaque: only a `next` link's is one.
    "Not a cursor of this list",
    # PATCH /triggers/{id} takes the body of the trigger's own type: one operation's schema
    # cannot tie one of its bodies (an anyOf) to the trigger its path names.
    TYPE_CANNOT_CHANGE,
    NOT_THIS_TYPES_FIELD,
)
# Operations whose body or answer depends on the kind of resource the path names: fuzzed
# against one of each kind (the world's webhook, segment and event triggers).
BY_KIND = {
    "GET /api/v1/{env}/triggers/{trigger_id}": "trigger_id",
    "PATCH /api/v1/{env}/triggers/{trigger_id}": "trigger_id",
}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


# Negative data is rejected with one of schemathesis' usual statuses, or with 413: a body over
# 1 MiB is refused whole before its content is read (documented on every operation with a
# body), and long strings past a maxLength of 10,000 in a long list of conditions make one.
def _config() -> SchemathesisConfig:
    usual = SchemathesisConfig().projects.default.checks.negative_data_rejection.expected_statuses
    return SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [*usual, "413"]}}})


@cache
def api_schema() -> Any:
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", in_test_transaction(get_wsgi_application()), config=_config()
    )


def operation_labels() -> list[str]:
    return sorted(operation.label for operation in _operations())


def _operations() -> Iterator[Any]:
    for result in api_schema().get_all_operations():
        yield result.ok()


@dataclass(frozen=True)
class World:
    """Real resources for path parameters, one of each kind where BY_KIND asks, and a bearer
    token per role."""

    path_values: dict[str, Any]
    kinds: dict[str, tuple[Any, ...]]
    tokens: dict[str, str]


@pytest.fixture
def world(api_client: Callable[..., Any], env_a: Environment) -> World:
    tokens = {role: api_client(env_a, role).token for role in ROLES}
    flow = flow_services.flow_create(
        environment=env_a,
        name="Welcome",
        variables=[{"name": "firstName", "default": "there"}],
        steps=[{"type": "send_card", "card": {"title": "Hello {{firstName}}", "body": "", "actions": []}}],
    )
    flow_services.flow_publish(flow=flow)
    webhook = trigger_services.webhook_trigger_create(flow=flow, sample={"customer": {"id": "c-1"}})
    Client().post(f"/hooks/{webhook.token}", {"targetUserIds": ["c-1"]}, content_type="application/json")
    logged = webhook.requests.get()
    test_user = customer_services.testuser_create(environment=env_a, user_id="tester-1", name="Tess")
    customer_services.customer_upsert(environment=env_a, profile={"user_id": "c-1"})
    segment = segment_services.segment_create(
        environment=env_a,
        name="Germany",
        rules={"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]},
    )
    segment_trigger = segment_triggers.segment_trigger_create(flow=flow, segment_id=segment.pk)
    event_trigger = event_triggers.event_trigger_create(
        flow=flow, event_name="upgraded", where=[{"property": "plan", "op": "eq", "value": "pro"}]
    )
    sfmc_trigger = sfmc.sfmc_trigger_create(flow=flow, jwt_secret="s" * 40)
    marketo_trigger = marketo.marketo_trigger_create(flow=flow).trigger
    csv_task = csv_tasks.csv_task_stage(
        flow=flow, mode="live", upload=io.BytesIO(b"target.usersById\nc-1\n"), file_name="a.csv", by=None, confirm=False
    )
    spare = credential_create(environment=env_a, role="events", label="spare").credential
    path_values = {
        "env": env_a.slug,
        "flow_id": flow.pk,
        "trigger_id": webhook.pk,
        "request_id": logged.pk,
        "test_user_id": test_user.pk,
        "user_id": "c-1",
        "client_id": spare.client_id,
        "flow_invocation_id": logged.flow_invocation_id,
        "token": webhook.token,
        "segment_id": segment.pk,
        "task_id": csv_task.pk,
    }
    kinds = {"trigger_id": (webhook.pk, segment_trigger.pk, event_trigger.pk, sfmc_trigger.pk, marketo_trigger.pk)}
    return World(path_values=path_values, kinds=kinds, tokens=tokens)


def _roles_allowed(operation: Any, path_values: dict[str, Any]) -> tuple[str, ...]:
    """The roles the operation's view lets in (none for the endpoints outside the API)."""
    if not operation.path.startswith("/api/v1/"):
        return ()
    path = operation.path.format(**path_values)
    view_class = resolve(path).func.view_class  # type: ignore[attr-defined]
    return tuple(view_class().roles_for(operation.method.upper()))


def _strategy(operation: Any, known: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly requests to real resources, valid and invalid; some to generated paths."""
    names = {parameter.name for parameter in operation.path_parameters}
    fixed = {name: value for name, value in known.items() if name in names}
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.POSITIVE),
    ]
    if operation.body or operation.query:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed))
    return st.one_of(strategies)


def _holds_nul(case: Any) -> bool:
    parts = [case.body, case.query, case.path_parameters]
    return "\\u0000" in json.dumps(parts, default=str)


def _refused_for_its_shape(case: Any, response: Any) -> str | None:
    """Why valid data was refused for its shape, or None when it was not."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if _holds_nul(case):  # the API refuses NUL in any string (400 invalid_json); documented
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if body.get("code") not in SHAPE_CODES:
        return None
    errors = body.get("errors") or {}
    if errors and all(_undeclarable(field, message) for field, message in _field_errors(errors)):
        return None
    return f"{body.get('code')}: {body.get('detail')} {json.dumps(errors)}"


def _field_errors(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, message) for every message in a nested `errors` object."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _field_errors(value, f"{prefix}{key}.")
    elif isinstance(errors, list):
        for value in errors:
            yield from _field_errors(value, prefix)
    else:
        yield prefix.rstrip("."), str(errors)


def _undeclarable(field: str, message: str) -> bool:
    # Batch errors are keyed by the item's index first.
    path = field.split(".", 1)[1] if field.split(".", 1)[0].isdigit() and "." in field else field
    return path.startswith(UNDECLARABLE_FIELDS) or any(marker in message for marker in UNDECLARABLE_MESSAGES)


def _fuzz(operation: Any, world: World, role: str | None, examples: int, ran: Counter[str]) -> None:
    headers = {"Authorization": f"Bearer {world.tokens[role]}"} if role else {}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, world.path_values))
    def run(case: Any) -> None:
        with transaction.atomic():
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            transaction.set_rollback(True)
        problem = _refused_for_its_shape(case, response)
        assert problem is None, f"{case.as_curl_command(headers)}\nData the schema allows was refused: {problem}"
        ran[role or "public"] += 1

    run()


@pytest.mark.parametrize("label", operation_labels())
def test_every_operation_answers_as_its_schema_says(label: str, world: World) -> None:
    operation = next(operation for operation in _operations() if operation.label == label)
    allowed = _roles_allowed(operation, world.path_values)
    ran: Counter[str] = Counter()
    by_kind = BY_KIND.get(label)
    addressed = [world]
    if by_kind is not None:
        addressed = [
            replace(world, path_values={**world.path_values, by_kind: value}) for value in world.kinds[by_kind]
        ]

    for world_of_kind in addressed:
        if allowed:
            for role in ROLES:
                examples = ALLOWED_ROLE_EXAMPLES if role in allowed else REFUSED_ROLE_EXAMPLES
                _fuzz(operation, world_of_kind, role, examples, ran)
        else:
            _fuzz(operation, world_of_kind, None, ALLOWED_ROLE_EXAMPLES, ran)

    # Not vacuous: every role (or the public caller) sent requests.
    expected = set(ROLES) if allowed else {"public"}
    assert set(ran) == expected, ran
    assert all(count > 0 for count in ran.values()), ran
