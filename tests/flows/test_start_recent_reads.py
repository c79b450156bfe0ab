"""An API start with a token whose last start of the same flow was accepted is made from that
start's read (`triggers.start_reads.recent_api_starts`): written only while the token, its
credential, the environment and the flow are as read, so a revocation, an expiry, an archive
or a new version is obeyed by the very next start. PostgreSQL only: row versions are its.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken

from flows.models import Flow, FlowStatus, Invocation
from flows.services import flow_publish, flow_update
from tests.flows.conftest import start_url
from workbench.models import Environment
from workbench.services import credential_revoke

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row versions are PostgreSQL's"),
]


def start(session: Any, flow: Flow, key: str, env: str = "acme") -> Any:
    return session.post(start_url(flow, env=env), {"targetUserIds": ["u-1"], "flowInvocationId": key}, format="json")


@pytest.fixture
def started(events_a, flow) -> Any:
    """The events credential's token has started the flow once: its read is remembered."""
    assert start(events_a, flow, "first").status_code == 202
    return events_a


def test_the_next_start_is_one_statement(started, flow) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = start(started, flow, "second")

    assert response.status_code == 202
    statements = [query for query in queries if "SAVEPOINT" not in str(query["sql"])]
    assert len(statements) == 1, statements  # the write: no read (the first start made two)
    assert Invocation.objects.get(flow_invocation_id="second").target_user_ids == ["u-1"]


def test_a_credential_revoked_meanwhile_starts_nothing(started, flow) -> None:
    credential_revoke(credential=started.credential)

    response = start(started, flow, "after-revoke")

    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert not Invocation.objects.filter(flow_invocation_id="after-revoke").exists()


def test_a_token_expired_meanwhile_starts_nothing(started, flow) -> None:
    AccessToken.objects.filter(token=started.token).update(expires=timezone.now() - timedelta(seconds=1))

    response = start(started, flow, "after-expiry")

    assert response.status_code == 401
    assert not Invocation.objects.filter(flow_invocation_id="after-expiry").exists()


def test_an_environment_renamed_meanwhile_is_not_found_at_its_old_slug(started, flow) -> None:
    Environment.objects.filter(pk=flow.environment_id).update(slug="acme-renamed")

    assert start(started, flow, "old-slug").status_code == 404
    assert start(started, flow, "new-slug", env="acme-renamed").status_code == 202


def test_a_flow_archived_meanwhile_refuses_the_next_start(started, flow) -> None:
    Flow.objects.filter(pk=flow.pk).update(status=FlowStatus.ARCHIVED)

    response = start(started, flow, "after-archive")

    assert (response.status_code, response.json()["code"]) == (409, "flow_archived")


def test_the_next_start_runs_the_version_published_meanwhile(started, flow) -> None:
    flow_update(flow=flow, steps=[{"type": "send_card", "card": {"title": "Version two"}}])
    flow_publish(flow=flow)

    assert start(started, flow, "after-publish").status_code == 202

    assert Invocation.objects.get(flow_invocation_id="after-publish").version_number == 2


def test_a_repeated_start_is_still_a_duplicate(started, flow) -> None:
    repeat = start(started, flow, "first")

    assert repeat.status_code == 200
    assert repeat.json()["data"]["invocations"][0]["status"] == "duplicate"
    assert Invocation.objects.filter(flow_invocation_id="first").count() == 1
