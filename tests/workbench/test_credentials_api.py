"""Credentials API (SPEC section 3): list, issue and revoke an environment's credentials."""

from __future__ import annotations

import pytest

from tests.conftest import request_token
from workbench.models import ApiCredential
from workbench.services import credential_create

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/acme/credentials"


def detail_url(client_id: str, env: str = "acme") -> str:
    return f"/api/v1/{env}/credentials/{client_id}"


def active_client_ids(environment) -> set[str]:
    return set(
        ApiCredential.objects.filter(environment=environment, revoked_at__isnull=True).values_list(
            "client_id", flat=True
        )
    )


# --- listing ----------------------------------------------------------------------------


def test_the_list_shows_active_credentials_without_any_secret(auth_a, env_a):
    events = credential_create(environment=env_a, role="events")
    revoked = credential_create(environment=env_a, role="workbench")
    auth_a.delete(detail_url(revoked.credential.client_id))

    response = auth_a.get(LIST_URL)

    assert response.status_code == 200
    rows = response.json()["data"]
    assert {row["clientId"] for row in rows} == {auth_a.credential.client_id, events.credential.client_id}
    for row in rows:
        assert set(row) == {"clientId", "role", "createdAt", "lastUsedAt"}
    assert events.client_secret not in response.content.decode()


def test_a_workbench_credential_may_read_the_list(workbench_a):
    response = workbench_a.get(LIST_URL)

    assert response.status_code == 200
    assert [row["clientId"] for row in response.json()["data"]] == [workbench_a.credential.client_id]


def test_the_list_never_shows_another_environments_credentials(auth_a, env_b):
    other = credential_create(environment=env_b, role="events")

    response = auth_a.get(LIST_URL)

    assert other.credential.client_id not in {row["clientId"] for row in response.json()["data"]}


# --- issuing ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["events", "workbench"])
def test_issuing_a_credential_shows_its_secret_once_and_the_secret_gets_a_token(auth_a, env_a, role):
    response = auth_a.post(LIST_URL, {"role": role, "label": "CRM sync"}, format="json")

    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"clientId", "clientSecret"}
    credential = ApiCredential.objects.get(client_id=data["clientId"])
    assert (credential.environment, credential.role, credential.label) == (env_a, role, "CRM sync")
    token = request_token(data["clientId"], data["clientSecret"])
    assert token.status_code == 200
    assert token.json()["scope"] == role
    assert data["clientSecret"] not in auth_a.get(LIST_URL).content.decode()


def test_an_auth_credential_cannot_be_issued_over_the_api(auth_a, env_a):
    response = auth_a.post(LIST_URL, {"role": "auth"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "role" in response.json()["errors"]
    assert active_client_ids(env_a) == {auth_a.credential.client_id}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "role"),
        ({"role": "admin"}, "role"),
        ({"role": "events", "scope": "auth"}, "scope"),
        ({"role": ["events"]}, "role"),
    ],
)
def test_an_invalid_issue_request_is_refused_and_issues_nothing(auth_a, env_a, body, field):
    response = auth_a.post(LIST_URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]
    assert active_client_ids(env_a) == {auth_a.credential.client_id}


# --- revoking ---------------------------------------------------------------------------


def test_revoking_a_credential_stops_its_tokens_at_once(auth_a, api_client, env_a):
    events = api_client(env_a, "events")
    assert events.get("/api/v1/acme/customers/nobody").status_code == 404  # a working token

    response = auth_a.delete(detail_url(events.credential.client_id))

    assert response.status_code == 200
    assert response.json() == {"data": {"clientId": events.credential.client_id}}
    assert events.get("/api/v1/acme/customers/nobody").status_code == 401
    assert request_token(events.credential.client_id, events.client_secret).status_code == 401
    events.credential.refresh_from_db()
    assert events.credential.revoked_at is not None


def test_revoking_an_unknown_or_already_revoked_credential_is_404(auth_a, env_a):
    issued = credential_create(environment=env_a, role="events")
    assert auth_a.delete(detail_url(issued.credential.client_id)).status_code == 200

    again = auth_a.delete(detail_url(issued.credential.client_id))
    unknown = auth_a.delete(detail_url("no-such-client"))

    assert (again.status_code, again.json()["code"]) == (404, "not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


def test_another_environments_credential_cannot_be_revoked_through_our_path(auth_a, env_b):
    theirs = credential_create(environment=env_b, role="events")

    response = auth_a.delete(detail_url(theirs.credential.client_id))

    assert response.status_code == 404
    theirs.credential.refresh_from_db()
    assert theirs.credential.revoked_at is None
    assert request_token(theirs.credential.client_id, theirs.client_secret).status_code == 200


# --- who may call -----------------------------------------------------------------------

ENDPOINTS = {
    "list": ("get", lambda target: LIST_URL, None),
    "issue": ("post", lambda target: LIST_URL, {"role": "events"}),
    "revoke": ("delete", lambda target: detail_url(target), None),
}


def call(client, endpoint: str, target: str):
    method, url, body = ENDPOINTS[endpoint]
    return getattr(client, method)(url(target), body, format="json")


@pytest.fixture
def target(env_a) -> ApiCredential:
    """A credential of A that a revoke would hit."""
    return credential_create(environment=env_a, role="events").credential


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_environments_credential_gets_404_and_changes_nothing(session_with, env_a, target, endpoint):
    before = active_client_ids(env_a)

    response = call(session_with("outsider", "auth"), endpoint, target.client_id)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert active_client_ids(env_a) == before


@pytest.mark.parametrize(
    ("endpoint", "role"),
    [("list", "events"), ("issue", "events"), ("issue", "workbench"), ("revoke", "events"), ("revoke", "workbench")],
)
def test_a_role_without_the_right_gets_403_and_changes_nothing(api_client, env_a, target, endpoint, role):
    session = api_client(env_a, role)
    before = active_client_ids(env_a)

    response = call(session, endpoint, target.client_id)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert active_client_ids(env_a) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401(session_with, env_a, target, endpoint, kind):
    client = session_with(kind, "auth", env_a)
    before = active_client_ids(env_a)

    response = call(client, endpoint, target.client_id)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert active_client_ids(env_a) == before
