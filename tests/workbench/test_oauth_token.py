"""POST /oauth/token: the client credentials grant, and how tokens age and die."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

from tests.conftest import TOKEN_URL, basic_auth, bearer_client, request_token
from tests.factories import PASSWORD
from workbench.services import credential_create, credential_revoke

pytestmark = pytest.mark.django_db

CREDENTIALS_URL = "/api/v1/acme/credentials"


def test_a_credential_gets_a_bearer_token_valid_for_one_hour_with_its_role_as_scope(env_a):
    issued = credential_create(environment=env_a, role="events")

    response = request_token(issued.credential.client_id, issued.client_secret)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "events"
    assert body["expires_in"] == 3600
    assert "refresh_token" not in body
    assert AccessToken.objects.get(token=body["access_token"]).application == issued.credential.application


def test_client_id_and_secret_may_also_be_sent_as_form_fields(env_a):
    issued = credential_create(environment=env_a, role="auth")

    response = Client().post(
        TOKEN_URL,
        {
            "grant_type": "client_credentials",
            "client_id": issued.credential.client_id,
            "client_secret": issued.client_secret,
        },
    )

    assert response.status_code == 200
    token = response.json()["access_token"]
    assert bearer_client(token).get(CREDENTIALS_URL).status_code == 200


def test_a_wrong_secret_is_refused_in_oauth2s_error_shape(env_a):
    issued = credential_create(environment=env_a, role="events")

    response = request_token(issued.credential.client_id, issued.client_secret + "x")

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert not AccessToken.objects.exists()


def test_an_unknown_client_is_refused_as_invalid_client(db):
    response = request_token("no-such-client", "whatever")

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}


def test_a_revoked_credential_can_no_longer_get_a_token(env_a):
    issued = credential_create(environment=env_a, role="events")
    credential_revoke(credential=issued.credential)

    response = request_token(issued.credential.client_id, issued.client_secret)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_the_password_grant_is_refused_even_with_a_real_users_password(env_a, owner):
    issued = credential_create(environment=env_a, role="events")

    response = Client().post(
        TOKEN_URL,
        {"grant_type": "password", "username": owner.username, "password": PASSWORD},
        HTTP_AUTHORIZATION=basic_auth(issued.credential.client_id, issued.client_secret),
    )

    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unauthorized_client", "unsupported_grant_type")
    assert not AccessToken.objects.exists()


def test_a_credential_cannot_ask_for_a_scope_beyond_its_role(env_a):
    issued = credential_create(environment=env_a, role="events")

    response = Client().post(
        TOKEN_URL,
        {"grant_type": "client_credentials", "scope": "auth"},
        HTTP_AUTHORIZATION=basic_auth(issued.credential.client_id, issued.client_secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert not AccessToken.objects.exists()


def test_a_token_works_until_it_expires_and_then_gets_401(auth_a):
    assert auth_a.get(CREDENTIALS_URL).status_code == 200

    AccessToken.objects.filter(token=auth_a.token).update(expires=timezone.now() - timedelta(seconds=1))
    response = auth_a.get(CREDENTIALS_URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_token_issued_59_minutes_ago_still_works(auth_a):
    AccessToken.objects.filter(token=auth_a.token).update(expires=timezone.now() + timedelta(minutes=1))

    assert auth_a.get(CREDENTIALS_URL).status_code == 200


def test_a_revoked_credentials_token_gets_401_at_once(auth_a):
    credential_revoke(credential=auth_a.credential)

    response = auth_a.get(CREDENTIALS_URL)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}


def test_a_request_without_a_token_is_told_to_bring_a_bearer_token(db):
    response = Client().get(CREDENTIALS_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"


def test_another_environments_token_cannot_tell_our_environment_exists(api_client, env_a, env_b):
    theirs = api_client(env_b, "auth")

    ours = theirs.get(CREDENTIALS_URL)
    nowhere = theirs.get("/api/v1/no-such-env/credentials")

    assert ours.status_code == nowhere.status_code == 404
    assert ours.json() == nowhere.json()
