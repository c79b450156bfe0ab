"""Group commit: the inserts of concurrent requests of a process, written as one statement.

A start is durable before its 2xx, so every accepted start costs a statement and a commit
(a WAL flush). Under load most of the database's work per start is that per-statement and
per-commit overhead, not the rows. Request threads therefore hand their inserts to one
writer thread per process, which takes every submission waiting at that moment, merges
them (workbench.raw_rows.insert_rows_together) and runs them as one statement: one
commit for the group. Each thread waits for its group's commit before answering, so
nothing is answered that is not durable.

A group fails as a whole (a start reusing a taken key is a unique violation): its members
then each run their own inserts in their own thread, where a failure is their own. Nothing
waits on a timer: a quiet process writes groups of one.

One writer serves the whole process, so a group must never wait long: a start reusing a key
that another transaction has just inserted and not yet committed would wait for that
transaction, and every later start of the process behind it. The writer's statements give
up on a lock after LOCK_TIMEOUT, and the group's members then wait each on their own.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Sequence
from typing import Any

from django.db import connection

from .raw_rows import RowsInsert, insert_rows_together

logger = logging.getLogger(__name__)

# The most submissions in one statement: a bigger group holds its members' answers longer.
MAX_GROUP = 64
LOCK_TIMEOUT = "200ms"


class _Submission:
    def __init__(self, parts: Sequence[RowsInsert]):
        self.parts = parts
        self.done = threading.Event()
        self.rows: list[tuple[Any, ...]] = []
        self.alone = False  # the group failed: run your own inserts

    def wait(self) -> list[tuple[Any, ...]]:
        self.done.wait()
        if self.alone:
            return insert_rows_together(self.parts)
        return self.rows


_STOP = object()


class _GroupWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def write(self, parts: Sequence[RowsInsert]) -> list[tuple[Any, ...]]:
        submission = _Submission(parts)
        self._ensure_thread()
        self._queue.put(submission)
        return submission.wait()

    def stop(self) -> None:
        """End the writer thread, which closes its database connection; a later write starts another."""
        with self._lock:
            thread = self._thread
            if thread is None or self._pid != os.getpid() or not thread.is_alive():
                return
            self._queue.put(_STOP)
            thread.join(timeout=10)
            self._thread = None

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()  # a forked child starts a writer of its own
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        waiting = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if waiting is _STOP:
                        self._queue.put(_STOP)  # after this group
                        break
                    group.append(waiting)
                self._write(group)
        finally:
            connection.close()

    @staticmethod
    def _write(group: list[_Submission]) -> None:
        """Write the group; whatever happens, every member is released."""
        rows: list[tuple[Any, ...]] | None = None
        try:
            # The health check of a request, for this thread's long-lived connection.
            connection.health_check_done = False  # type: ignore[attr-defined]
            connection.close_if_health_check_failed()
            _limit_lock_waits()
            rows = insert_rows_together([part for submission in group for part in submission.parts])
        except Exception as error:
            # A taken key, a lock wait cut short, a lost connection: whatever it was, each
            # member runs its own inserts on its own connection, and a failure is its own.
            connection.close_if_unusable_or_obsolete()
            logger.info("A group of %d inserts failed (%s); each runs alone", len(group), error)
        finally:
            for submission in group:
                if rows is None:
                    submission.alone = True
                else:
                    submission.rows = rows
                submission.done.set()


def _limit_lock_waits() -> None:
    """Set LOCK_TIMEOUT on the writer's connection, once per connection."""
    connection.ensure_connection()
    raw = connection.connection
    if getattr(raw, "_workbench_lock_timeout", None) == LOCK_TIMEOUT:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    raw._workbench_lock_timeout = LOCK_TIMEOUT


_writer = _GroupWriter()


def insert_durably(parts: Sequence[RowsInsert]) -> list[tuple[Any, ...]]:
    """Insert `parts` as one statement, committed when this returns, possibly together with
    other threads' inserts; returns the rows the first part returned for the WHOLE group
    (pick yours by key). Must not be called inside a transaction: the rows are committed
    by another connection, which would not see this one's uncommitted writes."""
    if connection.in_atomic_block:
        raise RuntimeError("insert_durably commits on another connection; call it outside a transaction")
    return _writer.write(parts)


def stop() -> None:
    """Close the writer thread of this process and its database connection (tests, shutdown)."""
    _writer.stop()
