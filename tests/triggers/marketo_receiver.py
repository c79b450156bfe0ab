"""Marketo's callback endpoint, impersonated: a threading HTTP server on 127.0.0.1.

`Receiver.statuses` is what it answers, in order (then 200); `hold` makes it sleep before
answering (a worker can be killed mid-callback). Every request it got is kept, with its
headers, and `results()` gives each lead's latest activityData (a repeated callback, which
Marketo must tolerate, changes nothing).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


@dataclass
class Receiver:
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    hold_seconds: float = 0.0
    requests: list[Received] = field(default_factory=list)
    arrived: int = 0  # requests received, counted before `hold_seconds` (a sender may die meanwhile)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def results(self) -> dict[Any, dict[str, Any]]:
        """lead id → its activityData, from the callbacks that were answered 2xx."""
        with self.lock:
            delivered = [r for r in self.requests if 200 <= r.status < 300]
        found: dict[Any, dict[str, Any]] = {}
        for request in delivered:
            for entry in request.body.get("objectData", []):
                found[entry["leadData"]["id"]] = entry["activityData"]
        return found

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@contextmanager
def marketo_receiver(statuses: list[int] | None = None, hold_seconds: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(statuses=list(statuses or []), hold_seconds=hold_seconds)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with receiver.lock:
                receiver.arrived += 1
            if receiver.hold_seconds:
                time.sleep(receiver.hold_seconds)
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode("utf-8", "replace")}
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.requests.append(Received(self.path, headers, body, status))
            answer = b'{"ok": true}' if status < 300 else b'{"error": "unavailable"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/rest/v1/callback"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
