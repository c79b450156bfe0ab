"""Django's PostgreSQL backend, with a connection health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django checks a persistent connection at the start of every request
with `SELECT 1`: a round trip on every request of the hot paths (starts, webhooks). A server
that closes a connection (restart, idle timeout, pg_terminate_backend) first sends it an error
message or the end of the stream, so an idle connection whose socket has nothing to read is
still open; only one that has something waiting gets the `SELECT 1` (which then fails, and
Django reconnects). A connection in the middle of a transaction is always checked for real.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed:
            return False
        if raw.info.transaction_status == TransactionStatus.IDLE and not _has_input(raw.fileno()):
            return True
        return bool(super().is_usable())


def _has_input(fileno: int) -> bool:
    """Whether the server sent anything (an error, the end of the stream) to this idle socket."""
    readable, _, _ = select.select([fileno], [], [], 0)
    return bool(readable)
