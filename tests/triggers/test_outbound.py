"""The SSRF guard of outbound calls (triggers.outbound): what a callback URL may reach.

Name resolution is replaced where a test needs a host to resolve somewhere (no network);
the receiver is a local server, reached only with OUTBOUND_ALLOW_PRIVATE.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from triggers import outbound
from triggers.outbound import OutboundFailed, OutboundRefused, checked_target, post_json


@pytest.fixture(autouse=True)
def _guarded(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every host name resolve to `addresses`; the names asked are recorded."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "url",
    [
        "http://callback.example.com/cb",
        "ftp://callback.example.com/cb",
        "callback.example.com/cb",
        "https://user:pass@callback.example.com/cb",
        "https://",
        "https://callback.example.com:99999/",
    ],
)
def test_only_plain_https_urls_are_called(url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        checked_target(url)
    assert refused.value.code in ("insecure_url", "invalid_url")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",  # noqa: S104 (an address to refuse, not to bind)
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_a_literal_address_that_is_not_public_is_refused(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(OutboundRefused) as refused:
        checked_target(f"https://{host}/callback")
    assert refused.value.code == "private_address"


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    resolving_to(monkeypatch, "203.0.113.10", "10.1.2.3")  # one bad address is enough
    with pytest.raises(OutboundRefused) as refused:
        checked_target("https://marketo-callback.example.com/rest")
    assert refused.value.code == "private_address"
    assert "10.1.2.3" in refused.value.reason


def test_a_public_name_is_pinned_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = resolving_to(monkeypatch, "8.8.4.4")
    target = checked_target("https://123-ABC-456.mktorest.com/rest/v1/callback?x=1")

    assert (target.host, target.port, target.path, target.address) == (
        "123-abc-456.mktorest.com",
        443,
        "/rest/v1/callback?x=1",
        "8.8.4.4",
    )
    assert asked == ["123-abc-456.mktorest.com"]


def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(outbound.socket, "getaddrinfo", fail)
    with pytest.raises(OutboundRefused) as refused:
        checked_target("https://nowhere.invalid/")
    assert refused.value.code == "unresolvable_host"


@pytest.fixture
def local_server() -> Iterator[dict[str, Any]]:
    seen: dict[str, Any] = {"requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen["requests"].append({"path": self.path, "host": self.headers.get("Host"), "body": body})
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["port"] = server.server_address[1]
    yield seen
    server.shutdown()
    server.server_close()


def test_the_local_receiver_is_refused_unless_private_targets_are_allowed(
    local_server: dict[str, Any], settings: Any
) -> None:
    url = f"http://127.0.0.1:{local_server['port']}/cb"
    with pytest.raises(OutboundRefused):
        post_json(url, b"{}", {})
    assert local_server["requests"] == []

    settings.OUTBOUND_ALLOW_PRIVATE = True
    response = post_json(url, b'{"a": 1}', {"x-callback-token": "t"})
    assert (response.status, response.body, response.address) == (200, b"ok", "127.0.0.1")
    assert local_server["requests"][0]["body"] == b'{"a": 1}'


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    local_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    asked = resolving_to(monkeypatch, "127.0.0.1")
    response = post_json(f"http://callback.test:{local_server['port']}/cb", b"{}", {})

    assert response.status == 200
    # Resolved once: the connection went to the address, not to the name again.
    assert [host for host in asked if host != "127.0.0.1"] == ["callback.test"]
    assert local_server["requests"][0]["host"] == f"callback.test:{local_server['port']}"


def test_a_redirect_is_an_answer_not_followed(local_server: dict[str, Any], settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    response = post_json(f"http://127.0.0.1:{local_server['port']}/redirect", b"{}", {})

    assert response.status == 302
    assert len(local_server["requests"]) == 1


def test_no_answer_is_a_failure_to_retry(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(OutboundFailed) as failed:
        post_json(f"http://127.0.0.1:{port}/cb", b"{}", {}, timeout=2)
    assert failed.value.address == "127.0.0.1"


def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_deadline(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 50:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    with pytest.raises(OutboundFailed):
        post_json(f"http://127.0.0.1:{listener.getsockname()[1]}/cb", b"{}", {}, timeout=1, total_timeout=1)
    assert time.monotonic() - started < 3  # each byte came within the read timeout: the deadline cut it
    listener.close()
