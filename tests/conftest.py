"""The personas every test speaks as, and API clients holding real OAuth2 tokens.

Environment A ("acme") has an owner, an editor and a viewer; the outsider owns
environment B ("globex") and is no member of A. API clients get their token the way an
integration does: a credential issued by the service, then POST /oauth/token with the
client credentials grant over HTTP Basic.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from tests.factories import EnvironmentFactory, MembershipFactory, UserFactory
from triggers import start_reads
from workbench.celery import app
from workbench.models import ApiCredential, Environment, Role
from workbench.services import credential_create, credential_revoke

TOKEN_URL = "/oauth/token"


def basic_auth(client_id: str, client_secret: str) -> str:
    raw = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def request_token(client_id: str, client_secret: str):
    """POST /oauth/token as an integration would: client credentials over HTTP Basic."""
    return Client().post(
        TOKEN_URL,
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(client_id, client_secret),
    )


def bearer_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@dataclass
class ApiSession:
    """An API client with a real token, and what it was issued from."""

    client: APIClient
    credential: ApiCredential
    client_secret: str
    token: str

    def __getattr__(self, name: str):
        # Lets a test write `events.get(url)` as if the session were the client.
        return getattr(self.client, name)

    @property
    def access_token(self) -> AccessToken:
        return AccessToken.objects.get(token=self.token)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Every test starts with an empty cache: no rate-limit counter leaks from one test to the
    next, and no recent read of a start (triggers.start_reads.RecentReads) either."""
    cache.clear()
    start_reads.recent_webhook_targets.clear()
    start_reads.recent_sfmc_targets.clear()
    start_reads.recent_api_starts.clear()


@pytest.fixture
def env_a(db) -> Environment:
    return EnvironmentFactory(slug="acme", name="Acme production")


@pytest.fixture
def env_b(db) -> Environment:
    return EnvironmentFactory(slug="globex", name="Globex production")


@pytest.fixture
def owner(env_a):
    return MembershipFactory(environment=env_a, user=UserFactory(username="olivia"), role=Role.OWNER).user


@pytest.fixture
def editor(env_a):
    return MembershipFactory(environment=env_a, user=UserFactory(username="edward"), role=Role.EDITOR).user


@pytest.fixture
def viewer(env_a):
    return MembershipFactory(environment=env_a, user=UserFactory(username="vera"), role=Role.VIEWER).user


@pytest.fixture
def outsider(env_b):
    """Owner of environment B, no member of A."""
    return MembershipFactory(environment=env_b, user=UserFactory(username="oscar"), role=Role.OWNER).user


@pytest.fixture
def login() -> Callable[..., Client]:
    """A Django test client signed in as `user`."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def api_client(db) -> Callable[[Environment, str], ApiSession]:
    """`api_client(environment, role)`: a DRF client whose bearer token came from /oauth/token."""

    def make(environment: Environment, role: str) -> ApiSession:
        issued = credential_create(environment=environment, role=role, label=f"tests {role}")
        response = request_token(issued.credential.client_id, issued.client_secret)
        assert response.status_code == 200, response.content
        token = response.json()["access_token"]
        return ApiSession(
            client=bearer_client(token), credential=issued.credential, client_secret=issued.client_secret, token=token
        )

    return make


@pytest.fixture
def events_a(api_client, env_a) -> ApiSession:
    return api_client(env_a, "events")


@pytest.fixture
def workbench_a(api_client, env_a) -> ApiSession:
    return api_client(env_a, "workbench")


@pytest.fixture
def auth_a(api_client, env_a) -> ApiSession:
    return api_client(env_a, "auth")


@pytest.fixture
def session_with(api_client, env_b) -> Callable[[str, str], ApiSession]:
    """`session_with(kind, role)`: the callers every endpoint must refuse.

    kind "outsider" is a credential of environment B with the right role; the other kinds
    return a client whose token is missing, invalid, expired or revoked.
    """

    def make(kind: str, role: str, environment: Environment | None = None) -> APIClient:
        if kind == "missing":
            return APIClient()
        if kind == "invalid":
            return bearer_client("not-a-token")
        if kind == "outsider":
            return api_client(env_b, role).client
        session = api_client(environment, role)
        if kind == "expired":
            AccessToken.objects.filter(token=session.token).update(expires=timezone.now() - timedelta(seconds=1))
        elif kind == "revoked":
            credential_revoke(credential=session.credential)
        else:
            raise ValueError(kind)
        return session.client

    return make


def in_test_transaction(application: Any) -> Any:
    """`application` (a WSGI callable) called as Django's test client calls the project:
    without the request signals' `close_old_connections`, which would close the connection
    holding the test's transaction (a no-op on SQLite, a broken transaction on PostgreSQL).
    The answer is read whole, so that `request_finished` fires inside the call."""

    def call(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            answer = application(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                if hasattr(answer, "close"):
                    answer.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return call


@pytest.fixture
def broker() -> Iterator[mock.MagicMock]:
    """A configured broker (no eager mode); what would be published is recorded instead."""
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        with mock.patch.object(app, "send_task") as send_task:
            yield send_task
    finally:
        app.conf.task_always_eager = eager
