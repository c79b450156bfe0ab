"""A gunicorn worker whose own error answers are JSON, like every other error (SPEC section 3).

gunicorn refuses some requests before Django sees them: a request line over
`limit_request_line` (414), header fields over `limit_request_field_size` or
`limit_request_fields` (431), and malformed requests such as a control character in a header
(400). It answers those with a small HTML page, which no limit can avoid for a malformed request.

This worker lets gunicorn decide everything as it always does (the status, the warning it logs,
the access-log line) and changes only the body it writes: `handle_error` writes gunicorn's page
into a stand-in socket, reads the status line back, and sends `{"detail", "code"}` instead. So
the mapping of errors to statuses stays gunicorn's own and follows its upgrades.

It is a gthread worker: gunicorn swaps a sync worker for its plain gthread one as soon as
`--threads` is above 1, which would silently drop the JSON answers; a gthread worker with
one thread serves one request at a time, as the sync worker does.

This module is loaded by gunicorn's master before Django, so it imports nothing of Django.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

# Clearer words than the bare reason phrase for the answers a client can cause.
DETAILS = {
    400: "The request is malformed (for example a control character in a header) and was not processed.",
    414: "The request line (method, path and query string) is too long.",
    431: "The request's header fields are too large or too many.",
}


class _CapturingSocket:
    """Stands in for the client's socket while gunicorn writes its HTML error page."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.written = bytearray()

    def sendall(self, data: bytes) -> None:
        self.written += data

    def gettimeout(self) -> float:
        # 0.0 tells gunicorn's writer the socket is already non-blocking: it just calls sendall.
        return 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def status_of(response: bytes) -> tuple[int, str]:
    """The status code and reason of a raw HTTP response; 500 if gunicorn wrote nothing usable."""
    status_line = response.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1]), parts[2]
    return 500, "Internal Server Error"


def json_error(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response with our error body; the connection closes, as gunicorn's does."""
    code = reason.lower().replace(" ", "_").replace("-", "_")
    body = json.dumps({"detail": DETAILS.get(status, f"{reason}."), "code": code}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorThreadWorker(ThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _CapturingSocket(client)
        super().handle_error(req, captured, addr, exc)
        try:
            util.write_nonblock(client, json_error(*status_of(bytes(captured.written))))
        except Exception:
            # The client may be gone already; gunicorn ignores this case the same way.
            self.log.debug("Failed to send error message.")
