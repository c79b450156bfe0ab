"""Credentials keep their history (issue 11, item 10): revoked ones stay listed with when and by
whom, and each shows when it was last used, which costs the API at most one write a minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import request_token
from workbench.models import ApiCredential
from workbench.services import credential_create, credential_revoke

pytestmark = pytest.mark.django_db

CUSTOMER_URL = "/api/v1/acme/customers/nobody"


def credential_writes(queries) -> list[str]:
    """The UPDATEs of credentials among the captured queries. On PostgreSQL the hot paths'
    prepared statements (the token read) are logged without their text: None."""
    table = ApiCredential._meta.db_table
    statements = [q["sql"] or "" for q in queries]
    return [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE") and table in sql]


def test_issuing_a_token_records_the_use(env_a):
    issued = credential_create(environment=env_a, role="events")
    assert issued.credential.last_used_at is None

    before = timezone.now()
    response = request_token(issued.credential.client_id, issued.client_secret)

    assert response.status_code == 200
    issued.credential.refresh_from_db()
    assert issued.credential.last_used_at >= before


def test_an_api_call_within_a_minute_of_the_last_use_writes_nothing(events_a):
    # The token was issued just now, which recorded the use.
    with CaptureQueriesContext(connection) as queries:
        response = events_a.get(CUSTOMER_URL)

    assert response.status_code == 404
    assert credential_writes(queries.captured_queries) == []


def test_an_api_call_after_a_minute_records_the_use_with_one_conditional_update(events_a):
    long_ago = timezone.now() - timedelta(minutes=5)
    ApiCredential.objects.filter(pk=events_a.credential.pk).update(last_used_at=long_ago)

    with CaptureQueriesContext(connection) as queries:
        events_a.get(CUSTOMER_URL)
    with CaptureQueriesContext(connection) as again:
        events_a.get(CUSTOMER_URL)

    (update,) = credential_writes(queries.captured_queries)
    assert "last_used_at" in update
    assert credential_writes(again.captured_queries) == []
    events_a.credential.refresh_from_db()
    assert events_a.credential.last_used_at > long_ago + timedelta(minutes=4)


def test_a_credential_never_used_is_recorded_at_its_first_call(events_a):
    ApiCredential.objects.filter(pk=events_a.credential.pk).update(last_used_at=None)

    events_a.get(CUSTOMER_URL)

    events_a.credential.refresh_from_db()
    assert events_a.credential.last_used_at is not None


def test_the_api_list_says_when_each_credential_was_last_used(auth_a, env_a):
    unused = credential_create(environment=env_a, role="events").credential

    rows = {row["clientId"]: row for row in auth_a.get("/api/v1/acme/credentials").json()["data"]}

    assert rows[unused.client_id]["lastUsedAt"] is None
    assert rows[auth_a.credential.client_id]["lastUsedAt"] is not None


def test_revoked_credentials_stay_listed_with_when_and_by_whom(login, owner, env_a):
    active = credential_create(environment=env_a, role="events", label="CRM sync").credential
    gone = credential_create(environment=env_a, role="workbench", label="Old Terraform").credential
    credential_revoke(credential=gone, by=owner)
    by_api = credential_create(environment=env_a, role="events", label="Revoked by a script").credential
    credential_revoke(credential=by_api)

    response = login(owner).get("/e/acme/credentials/")

    html = response.content.decode()
    credentials = response.context["credentials"]
    assert [c.client_id for c in credentials] == [active.client_id, by_api.client_id, gone.client_id]
    gone_row = html[html.index(f'data-client-id="{gone.client_id}"') :].split("</tr>")[0]
    assert 'class="revoked"' in gone_row
    assert "Revoked" in gone_row
    assert "by olivia" in gone_row
    assert "Revoke</button>" not in gone_row
    api_row = html[html.index(f'data-client-id="{by_api.client_id}"') :].split("</tr>")[0]
    assert "through the API" in api_row
    active_row = html[html.index(f'data-client-id="{active.client_id}"') :].split("</tr>")[0]
    assert "Revoke</button>" in active_row
    assert "never" in active_row


def test_the_page_shows_when_a_credential_was_last_used(login, owner, env_a):
    issued = credential_create(environment=env_a, role="events")
    request_token(issued.credential.client_id, issued.client_secret)

    older = credential_create(environment=env_a, role="events").credential
    ApiCredential.objects.filter(pk=older.pk).update(last_used_at=timezone.now() - timedelta(hours=3, minutes=5))

    html = login(owner).get("/e/acme/credentials/").content.decode()

    row = html[html.index(f'data-client-id="{issued.credential.client_id}"') :].split("</tr>")[0]
    assert ">just now<" in row
    older_row = html[html.index(f'data-client-id="{older.client_id}"') :].split("</tr>")[0]
    assert "3\xa0hours, 5\xa0minutes ago" in older_row
