"""Chunked request bodies are read, up to the limit (issue 9, item 4).

Gunicorn hands a chunked body over without CONTENT_LENGTH and with `wsgi.input_terminated`;
these tests call the project's WSGI application the way gunicorn does (the real-server
round trip is in tests/test_gunicorn_requests.py).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from flows.models import Invocation
from tests.conftest import in_test_transaction
from triggers.models import WebhookRequest
from workbench.chunked_bodies import ChunkedBodyMiddleware

pytestmark = pytest.mark.django_db

application = in_test_transaction(ChunkedBodyMiddleware(WSGIHandler()))


def call_chunked(path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST `body` as gunicorn passes a chunked request on: (status, JSON answer)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "203.0.113.7",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()},
    }
    statuses: list[str] = []
    chunks = application(environ, lambda status, _headers, *_: statuses.append(status))
    content = b"".join(chunks)
    return int(statuses[0].split()[0]), json.loads(content)


def test_a_chunked_start_is_read_and_accepted(events_a, flow, test_user) -> None:
    body = json.dumps({"targetUserIds": [test_user.user_id]}).encode()

    status, answer = call_chunked(
        f"/api/v1/acme/action-flow/{flow.pk}/test", body, {"Authorization": f"Bearer {events_a.token}"}
    )

    assert status == 202, answer
    assert Invocation.objects.count() == 1


def test_a_chunked_body_over_the_limit_answers_413_and_starts_nothing(events_a, flow, test_user) -> None:
    padding = "x" * (1024 * 1024)
    body = json.dumps({"targetUserIds": [test_user.user_id], "metadata": {"padding": padding}}).encode()

    status, answer = call_chunked(
        f"/api/v1/acme/action-flow/{flow.pk}/test", body, {"Authorization": f"Bearer {events_a.token}"}
    )

    assert (status, answer["code"]) == (413, "payload_too_large")
    assert Invocation.objects.count() == 0


def test_a_chunked_webhook_is_read_and_logged(webhook_trigger, test_user) -> None:
    trigger = webhook_trigger()

    status, answer = call_chunked(
        f"/hooks/{trigger.token}", json.dumps({"targetUserIds": [test_user.user_id]}).encode()
    )

    assert (status, answer["status"]) == (202, "accepted")
    assert WebhookRequest.objects.get(trigger=trigger).status_code == 202


def test_a_sized_body_is_passed_through_untouched() -> None:
    seen: dict[str, Any] = {}

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(length=environ["CONTENT_LENGTH"], body=environ["wsgi.input"].read())
        return []

    stream = io.BytesIO(b'{"a": 1}')
    ChunkedBodyMiddleware(inner)({"CONTENT_LENGTH": "8", "wsgi.input": stream, "PATH_INFO": "/api/"}, print)

    assert seen == {"length": "8", "body": b'{"a": 1}'}
