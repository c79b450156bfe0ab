"""Requests gunicorn refuses before Django sees them are answered in JSON, like every error.

A real gunicorn, started from the repository root as in production so that it reads
gunicorn.conf.py, on a free loopback port. It needs no database or broker (SQLite, and these
requests never reach a query), so it runs everywhere without the `services` marker. Requests
are raw bytes over a socket: no HTTP client would send a control character in a header.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`gunicorn workbench.wsgi` as the README runs it, with nothing but gunicorn.conf.py."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "workbench.settings_test",
        "SQLITE_PATH": str(log_path.parent / "db.sqlite3"),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "workbench.wsgi", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_until_listening(process, port, log_path)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited at start-up:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not listen in 30 s:\n{log_path.read_text()}")


def exchange(port: int, raw_request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw_request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ")[1]), headers, body


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
