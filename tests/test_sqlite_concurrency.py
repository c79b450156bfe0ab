"""The embedded default (SQLite) takes concurrent writes without "database is locked".

This runs the real thing: a migrated SQLite file, gunicorn with several threads, and
many simultaneous customer upserts over HTTP.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gunicorn import GunicornServer, issue_token, manage, sqlite_environment


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = sqlite_environment(tmp_path / "db.sqlite3")
    manage(env, "migrate", "--noinput")
    manage(env, "create_environment", "acme", "--name", "Acme")
    credential = json.loads(manage(env, "create_api_credential", "--environment", "acme", "--role", "events"))
    server = GunicornServer(env, tmp_path / "gunicorn.log", "-w", "2", "--threads", "8")
    yield server.url, credential
    server.stop()


def test_sixty_four_simultaneous_upserts_on_sqlite_all_succeed(sqlite_server: tuple[str, dict[str, str]]) -> None:
    base, credential = sqlite_server
    token = issue_token(base, credential)

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
