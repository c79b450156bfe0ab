"""The embedded default (SQLite) takes concurrent writes without "database is locked".

This runs the real thing: a migrated SQLite file, gunicorn with several threads, and
many simultaneous customer upserts over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="workbench.settings",
        DJANGO_SECRET_KEY="sqlite-concurrency-test",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    _manage(env, "migrate", "--noinput")
    _manage(env, "create_environment", "acme", "--name", "Acme")
    credential = json.loads(_manage(env, "create_api_credential", "--environment", "acme", "--role", "events"))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "workbench.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "8"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/api/schema/", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        yield base, credential
    finally:
        server.terminate()
        server.wait(timeout=30)


def _token(base: str, credential: dict[str, str]) -> str:
    basic = base64.b64encode(f"{credential['clientId']}:{credential['clientSecret']}".encode()).decode()
    request = urllib.request.Request(
        base + "/oauth/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])


def test_sixty_four_simultaneous_upserts_on_sqlite_all_succeed(sqlite_server: tuple[str, dict[str, str]]) -> None:
    base, credential = sqlite_server
    token = _token(base, credential)

    def upsert(number: int) -> int:
        body = json.dumps({"name": f"Customer {number}", "customFields": {"n": number}}).encode()
        request = urllib.request.Request(
            f"{base}/api/v1/acme/customers/user-{number % 16}",
            data=body,
            method="PUT",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(upsert, range(64)))

    assert set(statuses) <= {200, 201}
    assert statuses.count(201) == 16
