"""A real gunicorn serving the project, for tests of what only a real server shows.

Started from the repository root as the README's production steps do, so it reads
gunicorn.conf.py; on a free loopback port; its output kept in a log file the failure names.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GunicornServer:
    """`gunicorn workbench.wsgi` with `env` and any extra flags, listening when constructed."""

    def __init__(self, env: dict[str, str], log_path: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "workbench.wsgi", "--bind", f"127.0.0.1:{self.port}", *flags],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_until_listening()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited at start-up:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"gunicorn did not listen in 30 s:\n{self.log_path.read_text()}")


def exchange(port: int, raw_request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw_request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunked(body)
    return int(status_line.split(" ")[1]), headers, body


def _dechunked(framed: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, rest = framed.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body += rest[:size]
        framed = rest[size + 2 :]


def sqlite_environment(database: Path, **settings: str) -> dict[str, str]:
    """The process environment of a production-like server on its own SQLite database
    (no PostgreSQL or broker, whatever the suite itself was given)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="workbench.settings",
        DJANGO_SECRET_KEY="a-test-server",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SQLITE_PATH=str(database),
    )
    env.update(settings)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run `manage.py` with `env`; its standard output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def issue_token(base: str, credential: dict[str, str]) -> str:
    """An access token from the server's /oauth/token for a `create_api_credential` output."""
    basic = base64.b64encode(f"{credential['clientId']}:{credential['clientSecret']}".encode()).decode()
    request = urllib.request.Request(
        base + "/oauth/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])
