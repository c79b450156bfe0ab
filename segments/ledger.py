"""The membership ledger's SQL: set-based statements that flip ledger rows, and the diff of a
full evaluation.

Every change of membership goes through `ledger_reconcile`, which brings a batch of customers'
rows in line with the segment's rules in two conditional statements:

- enter: INSERT ... SELECT <the customers of the batch who match now> ON CONFLICT (segment,
  user_id) DO UPDATE SET is_member = TRUE, sequence = sequence + 1 WHERE NOT is_member
  RETURNING user_id, sequence;
- exit: UPDATE ... SET is_member = FALSE, sequence = sequence + 1 WHERE is_member AND user_id
  IN <the batch> AND user_id NOT IN <the customers of the batch who match now> RETURNING ...

Only the rows a statement really flipped come back, so the caller announces each transition
once, in the same transaction. The predicate is evaluated inside the flipping statement itself
(compiler.matching_sql restricted to the batch), never taken from an earlier snapshot.

Why advisory locks and not only the ledger's row locks (PostgreSQL): a row lock serialises two
statements flipping the same existing row, but the predicate of the second is still read from
its own statement's snapshot, and a customer who never had a row has no row to lock. So two
evaluators could each decide from data older than the other's commit (a full evaluation that
read the profile before an update, after the update's incremental evaluation already ran, would
enter a customer who no longer matches, and nobody would look again). Taking
pg_advisory_xact_lock on (environment, user_id) for the batch, in sorted order (no deadlock),
BEFORE the statements that read the predicate makes every evaluation of one customer run one
after the other, each reading what the previous one committed; and because every change of
customer data commits a CustomerMark with it, the evaluation that handles the mark starts after
the change committed, so the last evaluation of a customer always reads the last data. On
SQLite writers are serialised by the database (immediate transactions), which gives the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from customers.hooks import SegmentTransition

from . import compiler

MEMBERSHIP = "segments_segmentmembership"
# The session's scratch table of a full evaluation: the customers whose membership differs
# from what the rules say now (the diff), batched through by user_id.
DIFF_TABLE = "segment_evaluation_diff"
MATCHED_TABLE = "segment_evaluation_matched"
# The non-members a widening edit could enter (segments.services.edit_plan).
CANDIDATES_TABLE = "segment_evaluation_candidates"


def _diff_table() -> str:
    # Qualified with the session's temporary schema, so a DROP can never reach a real table.
    return ("pg_temp." if _vendor() == "postgresql" else "temp.") + DIFF_TABLE


def _matched_table() -> str:
    return ("pg_temp." if _vendor() == "postgresql" else "temp.") + MATCHED_TABLE


def _candidates_table() -> str:
    return ("pg_temp." if _vendor() == "postgresql" else "temp.") + CANDIDATES_TABLE


@dataclass(frozen=True)
class SegmentRef:
    """What the ledger statements need of a segment (read once per evaluation)."""

    id: int
    environment_id: int
    name: str
    rules: dict[str, Any]


def _vendor() -> str:
    return connection.vendor


def _db_moment(value: datetime) -> Any:
    # SQLite stores datetimes as text in Django's own format; PostgreSQL takes the object.
    return connection.ops.adapt_datetimefield_value(value)


def _in_list(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column IN (values)`: one array parameter on PostgreSQL (one statement text whatever the
    batch's size), a placeholder per value on SQLite."""
    if _vendor() == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def _matching(segment: SegmentRef, user_ids: Sequence[str] | None, now: datetime) -> tuple[str, list[Any]]:
    sql, params = compiler.matching_sql(
        segment.rules,
        environment_id=segment.environment_id,
        now=now,
        vendor=_vendor(),
        user_ids=list(user_ids) if user_ids is not None else None,
    )
    return sql, list(params)


def lock_key(environment_id: int, user_id: str) -> int:
    """The advisory lock key of one customer: a signed 64-bit hash of (environment, userId)."""
    digest = hashlib.blake2b(f"segments:{environment_id}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def customers_lock(environment_id: int, user_ids: Sequence[str]) -> None:
    """Hold every evaluation of these customers until this transaction ends (PostgreSQL).

    Keys are taken in sorted order so two transactions locking overlapping sets cannot deadlock.
    Re-taking a key the transaction holds is free. SQLite serialises writers itself.
    """
    if _vendor() != "postgresql" or not user_ids:
        return
    keys = sorted({lock_key(environment_id, user_id) for user_id in user_ids})
    with connection.cursor() as cursor:
        # unnest yields the array in order, so the locks are taken in the sorted order.
        cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [keys])


def ledger_reconcile(*, segment: SegmentRef, user_ids: Sequence[str], now: datetime) -> list[SegmentTransition]:
    """Bring the ledger rows of these customers in line with the segment's rules, now.

    Run inside the caller's transaction, which must announce the returned transitions before it
    commits. 1. Lock the customers. 2. Enter those who match and are not members. 3. Exit the
    members who do not match. Rows another evaluation flipped first are left alone by the WHERE
    of each statement, so a transition is returned by exactly one evaluation.
    """
    if not user_ids:
        return []
    customers_lock(segment.environment_id, user_ids)
    moment = _db_moment(now)
    matching, matching_params = _matching(segment, user_ids, now)
    transitions: list[SegmentTransition] = []
    with connection.cursor() as cursor:
        # "WHERE TRUE": SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT (parsing).
        cursor.execute(
            f"INSERT INTO {MEMBERSHIP} "  # noqa: S608
            f"(environment_id, segment_id, user_id, is_member, entered_at, exited_at, sequence) "
            f"SELECT %s, %s, m.user_id, TRUE, %s, NULL, 1 FROM ({matching}) m WHERE TRUE "
            f"ON CONFLICT (segment_id, user_id) DO UPDATE SET is_member = TRUE, entered_at = excluded.entered_at, "
            f"exited_at = NULL, sequence = {MEMBERSHIP}.sequence + 1 WHERE NOT {MEMBERSHIP}.is_member "
            f"RETURNING user_id, sequence",
            [segment.environment_id, segment.id, moment, *matching_params],
        )
        transitions += _transitions(segment, cursor.fetchall(), entered=True, now=now)
        batch, batch_params = _in_list("user_id", user_ids)
        matching, matching_params = _matching(segment, user_ids, now)
        cursor.execute(
            f"UPDATE {MEMBERSHIP} SET is_member = FALSE, exited_at = %s, sequence = sequence + 1 "  # noqa: S608
            f"WHERE segment_id = %s AND is_member AND {batch} "
            f"AND user_id NOT IN (SELECT m.user_id FROM ({matching}) m) RETURNING user_id, sequence",
            [moment, segment.id, *batch_params, *matching_params],
        )
        transitions += _transitions(segment, cursor.fetchall(), entered=False, now=now)
    return transitions


def _transitions(
    segment: SegmentRef, rows: list[tuple[Any, ...]], *, entered: bool, now: datetime
) -> list[SegmentTransition]:
    return [
        SegmentTransition(
            environment_id=segment.environment_id,
            segment_id=segment.id,
            segment_name=segment.name,
            user_id=user_id,
            entered=entered,
            sequence=int(sequence),
            at=now,
        )
        for user_id, sequence in rows
    ]


def diff_prepare(*, segment: SegmentRef, now: datetime) -> int:
    """Write into this session's DIFF_TABLE the customers whose membership the rules change:
    those who match and are not members, and the members who do not match. Returns how many.

    The matching set is computed once, into a scratch table of its own (an INSERT, which
    PostgreSQL plans without parallel workers that would each aggregate the event rollup
    again), then set against the ledger with two anti-joins on indexed columns. The batches of
    `diff_batch` re-check each customer as they flip it.
    """
    diff_drop()
    matching, params = _matching(segment, None, now)
    diff, matched = _diff_table(), _matched_table()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {matched} (user_id varchar(255) NOT NULL PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {matched} (user_id) SELECT m.user_id FROM ({matching}) m", params)  # noqa: S608
        cursor.execute(f"CREATE TEMP TABLE {diff} (user_id varchar(255) NOT NULL PRIMARY KEY)")
        cursor.execute(
            f"INSERT INTO {diff} (user_id) "  # noqa: S608
            f"SELECT m.user_id FROM {matched} m WHERE NOT EXISTS (SELECT 1 FROM {MEMBERSHIP} l "
            f"WHERE l.segment_id = %s AND l.user_id = m.user_id AND l.is_member) "
            f"UNION ALL SELECT l.user_id FROM {MEMBERSHIP} l WHERE l.segment_id = %s AND l.is_member "
            f"AND NOT EXISTS (SELECT 1 FROM {matched} m WHERE m.user_id = l.user_id)",
            [segment.id, segment.id],
        )
        changed = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {matched}")
        return changed


def _among(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """`column` among many values, as one parameter on either database (SQLite's limit on
    placeholders is far below a chunk's size)."""
    if _vendor() == "postgresql":
        return f"{column} = ANY(%s::text[])", [list(values)]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(list(values))]  # noqa: S608


def _diff_insert(cursor: Any, user_ids: Sequence[str]) -> None:
    """Add these user ids to the diff, as one parameter."""
    if not user_ids:
        return
    param: Any
    if _vendor() == "postgresql":
        source, param = "unnest(%s::text[])", list(user_ids)
    else:
        source, param = "value FROM json_each(%s)", json.dumps(list(user_ids))
    cursor.execute(f"INSERT INTO {_diff_table()} (user_id) SELECT {source}", [param])


def _matching_among(cursor: Any, segment: SegmentRef, user_ids: Sequence[str], now: datetime) -> set[str]:
    matching, params = _matching(segment, user_ids, now)
    cursor.execute(f"SELECT m.user_id FROM ({matching}) m", params)  # noqa: S608
    return {row[0] for row in cursor.fetchall()}


# The shortcuts set ids against each other here, chunk by chunk, rather than with anti-joins:
# right after a full evaluation filled the ledger its statistics still say it is empty, and
# PostgreSQL then planned "NOT EXISTS (a member)" as a nested loop over every member for each
# candidate (1.9 s for 2k candidates and 4k members).


def diff_prepare_exits(*, segment: SegmentRef, now: datetime, limit: int, chunk: int) -> int | None:
    """Like `diff_prepare`, after an edit that narrowed the rules (no non-member can match
    them): only the members who no longer match, the rules evaluated over the members alone,
    `chunk` of them a statement. None, with nothing written, when there are over `limit`."""
    diff_drop()
    changed = 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {MEMBERSHIP} WHERE segment_id = %s AND is_member", [segment.id])  # noqa: S608
        if int(cursor.fetchone()[0]) > limit:
            return None
        cursor.execute(f"CREATE TEMP TABLE {_diff_table()} (user_id varchar(255) NOT NULL PRIMARY KEY)")
        after = ""
        while True:
            cursor.execute(
                f"SELECT user_id FROM {MEMBERSHIP} WHERE segment_id = %s AND is_member AND user_id > %s "  # noqa: S608
                f"ORDER BY user_id LIMIT %s",
                [segment.id, after, chunk],
            )
            user_ids = [row[0] for row in cursor.fetchall()]
            if not user_ids:
                return changed
            after = user_ids[-1]
            matched = _matching_among(cursor, segment, user_ids, now)
            leaving = [user_id for user_id in user_ids if user_id not in matched]
            _diff_insert(cursor, leaving)
            changed += len(leaving)


def diff_prepare_entries(
    *, segment: SegmentRef, entrants: dict[str, Any], now: datetime, limit: int, chunk: int
) -> int | None:
    """Like `diff_prepare`, after an edit that widened the rules (every member still matches):
    only the non-members who match now. Each of them passes `entrants`, a cheaper test: the
    customers who pass it are the candidates, and the rules are evaluated over them alone,
    `chunk` of them a statement. None, with nothing written, when there are over `limit`."""
    diff_drop()
    candidates = _candidates_table()
    test, test_params = _matching(SegmentRef(segment.id, segment.environment_id, segment.name, entrants), None, now)
    changed = 0
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {candidates} (user_id varchar(255) NOT NULL PRIMARY KEY)")
        cursor.execute(f"INSERT INTO {candidates} (user_id) SELECT m.user_id FROM ({test}) m", test_params)  # noqa: S608
        if int(cursor.rowcount) > limit:
            cursor.execute(f"DROP TABLE {candidates}")
            return None
        cursor.execute(f"CREATE TEMP TABLE {_diff_table()} (user_id varchar(255) NOT NULL PRIMARY KEY)")
        after = ""
        while True:
            cursor.execute(
                f"SELECT user_id FROM {candidates} WHERE user_id > %s ORDER BY user_id LIMIT %s",  # noqa: S608
                [after, chunk],
            )
            user_ids = [row[0] for row in cursor.fetchall()]
            if not user_ids:
                break
            after = user_ids[-1]
            matched = sorted(_matching_among(cursor, segment, user_ids, now))
            if not matched:
                continue
            among, params = _among("user_id", matched)
            cursor.execute(
                f"SELECT user_id FROM {MEMBERSHIP} WHERE segment_id = %s AND is_member AND {among}",  # noqa: S608
                [segment.id, *params],
            )
            members = {row[0] for row in cursor.fetchall()}
            entering = [user_id for user_id in matched if user_id not in members]
            _diff_insert(cursor, entering)
            changed += len(entering)
        cursor.execute(f"DROP TABLE {candidates}")
        return changed


def diff_batch(*, after: str | None, size: int) -> list[str]:
    """The next `size` user ids of the diff after `after`, in order."""
    with connection.cursor() as cursor:
        if after is None:
            cursor.execute(f"SELECT user_id FROM {_diff_table()} ORDER BY user_id LIMIT %s", [size])  # noqa: S608
        else:
            cursor.execute(
                f"SELECT user_id FROM {_diff_table()} WHERE user_id > %s ORDER BY user_id LIMIT %s",  # noqa: S608
                [after, size],
            )
        return [row[0] for row in cursor.fetchall()]


def diff_drop() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_diff_table()}")
        cursor.execute(f"DROP TABLE IF EXISTS {_matched_table()}")
        cursor.execute(f"DROP TABLE IF EXISTS {_candidates_table()}")


def statement_timeout(milliseconds: int) -> None:
    """Bound every statement of the current transaction (PostgreSQL; SQLite has no such limit)."""
    if _vendor() == "postgresql" and milliseconds > 0:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(milliseconds)}")


def members_count(*, segment_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {MEMBERSHIP} WHERE segment_id = %s AND is_member", [segment_id])  # noqa: S608
        return int(cursor.fetchone()[0])
