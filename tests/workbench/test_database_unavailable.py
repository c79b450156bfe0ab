"""While the database cannot be reached, every answer is a 503 that says to retry (issue 9, item 5).

Senders retry a 503 with Retry-After; a 500 tells them we are broken and many give up. The
outage is simulated by failing every attempt to use a connection, as psycopg does when
PostgreSQL refuses connections; the real thing, against gunicorn, is in
tests/test_gunicorn_requests.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

from tests.conftest import basic_auth

pytestmark = pytest.mark.django_db


@contextmanager
def database_down() -> Iterator[None]:
    refused = OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", side_effect=refused):
        yield


def assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "unavailable"


def test_an_api_start_answers_503_unavailable_with_retry_after(events_a, flow) -> None:
    with database_down():
        response = events_a.post(f"/api/v1/acme/action-flow/{flow.pk}/start", {"targetUserIds": ["u1"]}, format="json")

    assert_unavailable(response)
    assert "Retry later" in response.json()["detail"]


def test_every_api_read_and_write_answers_503(events_a, workbench_a, flow) -> None:
    with database_down():
        answers = [
            events_a.get("/api/v1/acme/users/u1/cards"),
            events_a.put("/api/v1/acme/customers/u1", {"name": "Ada"}, format="json"),
            workbench_a.get("/api/v1/acme/flows"),
            workbench_a.post(f"/api/v1/acme/flows/{flow.pk}/publish", {}, format="json"),
        ]

    for response in answers:
        assert_unavailable(response)


def test_a_webhook_answers_503_unavailable(webhook_trigger) -> None:
    trigger = webhook_trigger()

    with database_down():
        response = Client(raise_request_exception=False).post(
            f"/hooks/{trigger.token}", data=b'{"targetUserIds": ["u1"]}', content_type="application/json"
        )

    assert_unavailable(response)


def test_the_token_endpoint_answers_503_in_oauths_shape(events_a) -> None:
    credential = events_a.credential

    with database_down():
        response = Client(raise_request_exception=False).post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic_auth(credential.client_id, events_a.client_secret),
        )

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json()["error"] == "temporarily_unavailable"


def test_a_workbench_page_says_it_is_briefly_unavailable(login, owner) -> None:
    browser = login(owner)
    browser.raise_request_exception = False

    with database_down():
        response = browser.get("/e/acme/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "The Workbench is briefly unavailable" in response.content.decode()


def test_other_server_errors_are_still_500(events_a, flow) -> None:
    with mock.patch("flows.services.invocations_accept", side_effect=RuntimeError("a bug")):
        response = events_a.post(f"/api/v1/acme/action-flow/{flow.pk}/start", {"targetUserIds": ["u1"]}, format="json")

    assert (response.status_code, response.json()["code"]) == (500, "server_error")
