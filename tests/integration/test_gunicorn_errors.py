"""Requests gunicorn refuses before Django sees them are answered in JSON, like every error.

A real gunicorn, started from the repository root as in production so that it reads
gunicorn.conf.py, on a free loopback port. It needs no database or broker (SQLite, and these
requests never reach a query), so it runs everywhere without the `integration` marker. Requests
are raw bytes over a socket: no HTTP client would send a control character in a header.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.gunicorn import GunicornServer, exchange


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`gunicorn workbench.wsgi` as the README runs it, with nothing but gunicorn.conf.py."""
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "workbench.settings_test",
        "SQLITE_PATH": str(log_path.parent / "db.sqlite3"),
    }
    server = GunicornServer(env, log_path)
    yield server.port
    server.stop()


def get(path: str, *extra_headers: bytes) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *extra_headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_a_30_kb_header_is_refused_with_431_in_json(gunicorn_port):
    status, headers, body = exchange(gunicorn_port, get("/api/v1/acme/flows", b"X-Big: " + b"a" * 30_000))

    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "detail": "The request's header fields are too large or too many.",
        "code": "request_header_fields_too_large",
    }


def test_a_5_kb_url_is_refused_with_414_in_json(gunicorn_port):
    status, headers, body = exchange(gunicorn_port, get("/api/v1/acme/flows?q=" + "a" * 5_000))

    assert status == 414
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "uri_too_long"


def test_a_control_character_in_a_header_is_refused_with_400_in_json(gunicorn_port):
    status, headers, body = exchange(gunicorn_port, get("/api/v1/acme/flows", b"X-Note: one\x01two"))

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "bad_request"


def test_ordinary_requests_still_reach_django(gunicorn_port):
    api_status, api_headers, api_body = exchange(gunicorn_port, get("/api/v1/acme/flows"))
    page_status, page_headers, page_body = exchange(gunicorn_port, get("/login/"))

    assert api_status == 401
    assert api_headers["content-type"] == "application/json"
    assert json.loads(api_body)["code"] == "not_authenticated"
    assert page_status == 200
    assert page_headers["content-type"].startswith("text/html")
    assert b"Log in to the Workbench" in page_body
