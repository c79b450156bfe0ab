"""What senders meet through a real gunicorn (issue 9, items 4 and 5).

Chunked bodies (no Content-Length) are read up to the limit and a longer one is a 413; a
database that refuses connections makes every endpoint answer 503 with Retry-After. Both
servers run on SQLite or a closed port, so no PostgreSQL is needed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.gunicorn import GunicornServer, exchange, issue_token, manage, sqlite_environment


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GunicornServer, str]]:
    """gunicorn over a seeded demo (SQLite), and an events token for its `demo` environment."""
    directory = tmp_path_factory.mktemp("demo")
    env = sqlite_environment(directory / "db.sqlite3")
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--quiet")
    credential = json.loads(manage(env, "create_api_credential", "--environment", "demo", "--role", "events"))
    server = GunicornServer(env, directory / "gunicorn.log")
    yield server, issue_token(server.url, credential)
    server.stop()


def chunked_post(path: str, token: str, chunks: list[bytes]) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return head.encode() + encoded + b"0\r\n\r\n"


def test_a_chunked_start_is_read_and_accepted(demo_server) -> None:
    server, token = demo_server
    body = json.dumps({"targetUserIds": ["demo-tester"], "flowInvocationId": "chunked-1"}).encode()

    status, _, answer = exchange(
        server.port, chunked_post("/api/v1/demo/action-flow/1/test", token, [body[:10], body[10:]])
    )

    assert status == 202, answer
    assert json.loads(answer)["data"]["invocations"][0]["flowInvocationId"] == "chunked-1"


def test_a_chunked_body_over_1_mib_answers_413(demo_server) -> None:
    server, token = demo_server
    padding = b"x" * (256 * 1024)
    chunks = [b'{"targetUserIds": ["demo-tester"], "metadata": {"padding": "', *[padding] * 6, b'"}}']

    status, _, answer = exchange(server.port, chunked_post("/api/v1/demo/action-flow/1/test", token, chunks))

    assert (status, json.loads(answer)["code"]) == (413, "payload_too_large")


@pytest.fixture(scope="module")
def server_without_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """gunicorn whose DATABASE_URL names a port nothing listens on."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    directory = tmp_path_factory.mktemp("no-database")
    env = sqlite_environment(directory / "unused.sqlite3", DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/gone")
    server = GunicornServer(env, directory / "gunicorn.log")
    yield server
    server.stop()


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    "request_bytes",
    [
        post("/api/v1/demo/action-flow/1/start", b'{"targetUserIds": ["u1"]}', "Authorization: Bearer t"),
        post("/hooks/some-token", b'{"targetUserIds": ["u1"]}', "Content-Type: application/json"),
    ],
    ids=["API start", "webhook"],
)
def test_without_a_database_the_api_and_webhooks_answer_503_with_retry_after(
    server_without_database, request_bytes
) -> None:
    status, headers, answer = exchange(server_without_database.port, request_bytes)

    assert status == 503
    assert headers["retry-after"] == "30"
    assert json.loads(answer)["code"] == "unavailable"


def test_without_a_database_the_token_endpoint_answers_503_in_oauths_shape(server_without_database) -> None:
    request = post(
        "/oauth/token", b"grant_type=client_credentials&client_id=a&client_secret=b",
        "Content-Type: application/x-www-form-urlencoded",
    )  # fmt: skip

    status, headers, answer = exchange(server_without_database.port, request)

    assert (status, headers["retry-after"]) == (503, "30")
    assert json.loads(answer)["error"] == "temporarily_unavailable"
