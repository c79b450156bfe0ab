"""Django admin for credentials: inspect and revoke, never issue or delete."""

from __future__ import annotations

import pytest

from workbench.models import ApiCredential

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workbench/apicredential/"


def test_the_revoke_action_stops_the_credentials_tokens_at_once(admin_client, api_client, env_a):
    session = api_client(env_a, "events")
    kept = api_client(env_a, "events")

    response = admin_client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [session.credential.pk]}, follow=True
    )

    assert response.status_code == 200
    assert b"Revoked 1 credential(s)." in response.content
    assert session.get("/api/v1/acme/customers/nobody").status_code == 401
    assert kept.get("/api/v1/acme/customers/nobody").status_code == 404
    session.credential.refresh_from_db()
    assert session.credential.revoked_at is not None


def test_the_admin_lists_credentials_without_their_secrets(admin_client, api_client, env_a):
    session = api_client(env_a, "auth")

    response = admin_client.get(CHANGELIST)

    assert session.credential.client_id.encode() in response.content
    assert session.client_secret.encode() not in response.content


def test_credentials_cannot_be_added_or_deleted_in_the_admin(admin_client, api_client, env_a):
    session = api_client(env_a, "events")

    added = admin_client.get(f"{CHANGELIST}add/")
    deleted = admin_client.post(f"{CHANGELIST}{session.credential.pk}/delete/", {"post": "yes"})

    assert added.status_code == 403
    assert deleted.status_code == 403
    assert ApiCredential.objects.filter(pk=session.credential.pk).exists()
    assert session.get("/api/v1/acme/customers/nobody").status_code == 404
