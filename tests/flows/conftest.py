"""Flows the tests start, and a way to start them as an integration does.

Tests run inside a transaction that is rolled back, so `transaction.on_commit` callbacks
(the fan-out the start pipeline sends after commit) would never run. `start_flow` posts a
start inside `django_capture_on_commit_callbacks(execute=True)`: with Celery eager, the runs
have executed when it returns, as they have when a real 202 answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from customers.models import Customer
from flows import services
from flows.models import AnalyticsEvent, Card, Flow, FlowRun, Invocation
from flows.selectors import flow_for_start
from tests.factories import TestUserFactory

GREETING = {
    "variables": [{"name": "firstName", "default": "there", "required": False}],
    "steps": [
        {
            "type": "send_card",
            "card": {
                "title": "Hello {{firstName}}",
                "body": "Welcome aboard.",
                "actions": [{"label": "Open", "url": "https://example.com/welcome"}],
            },
        }
    ],
}


def accept_start(*, flow: Flow, mode: str, body: Any, source: str = "api") -> services.AcceptResult:
    """A start through the pipeline as a trigger makes one: checked, then accepted."""
    return services.invocations_accept(
        flow=flow_for_start(flow=flow), mode=mode, starts=services.start_requests_check(body), source=source
    )


def start_url(flow: Flow, mode: str = "live", env: str = "acme") -> str:
    return f"/api/v1/{env}/action-flow/{flow.pk}/{'start' if mode == 'live' else 'test'}"


def row_counts() -> dict[str, int]:
    """How many rows a start can write, to show that a refused start wrote nothing."""
    return {model.__name__: model.objects.count() for model in (Invocation, FlowRun, Card, AnalyticsEvent, Customer)}


@pytest.fixture
def make_flow(env_a) -> Callable[..., Flow]:
    """`make_flow(name=..., variables=..., steps=..., publish=True, environment=...)` through the services."""

    def make(
        name: str = "Welcome",
        variables: Any = None,
        steps: Any = None,
        publish: bool = True,
        environment: Any = None,
    ) -> Flow:
        flow = services.flow_create(
            environment=environment or env_a,
            name=name,
            variables=GREETING["variables"] if variables is None else variables,
            steps=GREETING["steps"] if steps is None else steps,
        )
        if publish:
            flow = services.flow_publish(flow=flow).flow
        return flow

    return make


@pytest.fixture
def flow(make_flow) -> Flow:
    """A published flow of environment A that sends one card, "Hello {{firstName}}"."""
    return make_flow()


@pytest.fixture
def draft_flow(make_flow) -> Flow:
    """A flow of environment A that was never published."""
    return make_flow(name="Draft only", publish=False)


@pytest.fixture
def test_user(env_a):
    return TestUserFactory(environment=env_a, user_id="tester-1", name="Tess")


@pytest.fixture
def start_flow(django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """`start_flow(client, flow, body, mode="live")`: POST a start; its runs have executed on return."""

    def post(client: Any, flow: Flow, body: Any, mode: str = "live", env: str = "acme") -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(start_url(flow, mode, env), body, format="json")

    return post
