"""CSV bulk sends (SPEC section 6): a file of rows, one start per row, processed in the background.

1. `csv_task_stage` streams the upload (never whole in memory) through a UTF-8 decoder and
   `csv.reader`, refuses the whole file for what makes every row meaningless (no header,
   unknown columns, not UTF-8, too big), and stores the rows in `CsvChunk`s of CHUNK_ROWS,
   so that the upload is durable before it is answered and any worker can process it.
2. `csv_task_dry_run` streams the chunks and validates every row without starting anything;
   for the Workbench a worker makes it (`csv_task_check`, a million rows take longer than a
   request) and keeps it on the task, whose page shows its progress until it is there.
3. `csv_task_run` (the task "triggers.run_csv_task") claims the task with a lease and, chunk by
   chunk, turns rows into start requests and hands them to the one start pipeline in batches
   of MAX_STARTS. A chunk's starts, its row errors and the task's progress commit TOGETHER: a
   worker killed mid-file leaves the task where its last chunk left it, and the next claim
   resumes there. Every start carries the row's `flowInvocationId` or `csv-<task>-<row>`, so a
   replayed chunk starts nothing twice either.
4. Cancel is a state: the loop reads it between batches, and a chunk commits only while the
   task is still running under this worker's lease, so no row after the cancel starts.

Row errors (a blank target, a malformed value, attributes matching no or more than
MAX_ATTRIBUTE_MATCHES customers, a missing required variable, a key reused with other
content) never stop the good rows. Only `|` in `target.usersById` makes a list: the payload
fields have no declared types, so their cells are strings (a variable whose default is a
number or a boolean takes a number or a boolean, and anything else there is malformed).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.models import Customer
from flows.definitions import resolve_variables
from flows.models import Flow, FlowStatus, Mode
from flows.selectors import FlowForStart, flow_for_start
from flows.services import FlowRefused, invocations_accept
from flows.start_requests import MAX_ID_LENGTH, MAX_STARTS, MAX_TARGETS, StartRequest
from workbench.celery import enqueue
from workbench.errors import Refused

from .models import CsvChunk, CsvRowError, CsvTask, CsvTaskStatus

logger = logging.getLogger(__name__)

SOURCE = "csv"
TASK_NAME = "triggers.run_csv_task"
CHECK_TASK_NAME = "triggers.check_csv_task"
# Rows of the dry run shown as start requests, and how long a dry run may show no result
# before the sweep asks a worker again.
DRY_RUN_SAMPLE_ROWS = 5
CHECK_GRACE = timedelta(minutes=1)
CHECK_LIMIT = timedelta(minutes=10)
CHUNK_ROWS = 2000
# How long one task message processes chunks before sending the task on (csv_task_run).
SLICE_SECONDS = 60.0
CHUNK_MAX_CHARS = 4 * 1024 * 1024  # wide rows: a chunk stays a few MiB whatever its rows hold
BATCH_SIZE = MAX_STARTS  # what one start request may hold
MAX_ATTRIBUTE_MATCHES = 10
MAX_REPORTED_ERRORS = 1000
READ_BYTES = 64 * 1024
# Refusals that concern the flow, not a row: every row would get them, so the task fails.
TASK_REFUSALS = {"flow_archived", "flow_not_published", "recursion_limit"}

USERS_BY_ID = "target.usersById"
ATTRIBUTE_PREFIX = "target.attributes."
INVOCATION_ID = "flowInvocationId"
PAYLOAD_SECTIONS = {
    "payload.variables.": "variables",
    "payload.metadata.": "metadata",
    "payload.notificationDetail.": "notification_detail",
    "payload.cardOptions.": "card_options",
}
# target.attributes.<field>: the profile's text fields; any other name is a custom field
# (`customFields.<key>` names one explicitly).
PROFILE_COLUMNS = {
    "userId": "user_id",
    "email": "email",
    "phone": "phone",
    "name": "name",
    "city": "city",
    "region": "region",
    "country": "country",
    "timezone": "timezone",
}
CUSTOM_PREFIX = "customFields."
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def lease_seconds() -> int:
    return int(getattr(settings, "CSV_TASK_LEASE_SECONDS", 120))


# --- Columns and rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """What each column of the header means, by position."""

    names: list[str]
    users_by_id: int | None
    invocation_id: int | None
    attributes: list[tuple[int, str]]  # (position, field as written after target.attributes.)
    payload: list[tuple[int, str, str]]  # (position, StartRequest attribute, key)

    @classmethod
    def of(cls, header: list[str]) -> Columns:
        """The header's meaning, or 400 invalid_request naming what is wrong with it."""
        names = [name.strip() for name in header]
        unknown: list[str] = []
        users_by_id = invocation_id = None
        attributes: list[tuple[int, str]] = []
        payload: list[tuple[int, str, str]] = []
        for position, name in enumerate(names):
            section = next((prefix for prefix in PAYLOAD_SECTIONS if name.startswith(prefix)), None)
            if name == USERS_BY_ID:
                users_by_id = position
            elif name == INVOCATION_ID:
                invocation_id = position
            elif name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
                attributes.append((position, name[len(ATTRIBUTE_PREFIX) :]))
            elif section is not None and len(name) > len(section):
                payload.append((position, PAYLOAD_SECTIONS[section], name[len(section) :]))
            else:
                unknown.append(name)
        errors: dict[str, list[str]] = {}
        if unknown:
            errors["columns"] = [f"Unknown column: {name!r}." for name in unknown]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            errors.setdefault("columns", []).extend(f"Repeated column: {name!r}." for name in repeated)
        if errors:
            listed = ", ".join(repr(name) for name in unknown + repeated)
            raise Refused(400, "invalid_request", f"The file's header is not valid: {listed}.", errors)
        if users_by_id is None and not attributes:
            raise Refused(
                400,
                "invalid_request",
                f"The header names no target: add a {USERS_BY_ID} or {ATTRIBUTE_PREFIX}<field> column.",
                {"columns": ["No target column."]},
            )
        return cls(names, users_by_id, invocation_id, attributes, payload)


@dataclass(frozen=True)
class RowError:
    row: int
    message: str


@dataclass
class _Row:
    """A data row on its way to a start: the targets may still be attributes to resolve."""

    number: int
    flow_invocation_id: str | None
    user_ids: list[str] | None
    attributes: dict[str, str]
    payload: dict[str, dict[str, Any]]


def _cell(row: list[str], position: int | None) -> str:
    if position is None or position >= len(row):
        return ""
    return row[position]


def typed_text(value: str, default: Any) -> Any:
    """A variable's value given as text (a CSV cell, a form field) as the type of its default."""
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError("expected true or false")
        return lowered == "true"
    if isinstance(default, int | float):
        try:
            number = float(value)
        except ValueError:
            raise ValueError("expected a number") from None
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _row_of(number: int, cells: list[str], columns: Columns, defaults: dict[str, Any]) -> _Row | RowError:
    """A row's meaning, or its error. Blank cells are missing values."""
    if len(cells) != len(columns.names):
        return RowError(number, f"The row has {len(cells)} cells; the header has {len(columns.names)}.")
    if any("\x00" in cell for cell in cells):
        return RowError(number, "The row holds a NUL character.")
    invocation_id = _cell(cells, columns.invocation_id) or None
    if invocation_id is not None and len(invocation_id) > MAX_ID_LENGTH:
        return RowError(number, f"{INVOCATION_ID} is longer than {MAX_ID_LENGTH} characters.")
    users = _cell(cells, columns.users_by_id)
    attributes = {name: cells[position] for position, name in columns.attributes if cells[position] != ""}
    if users and attributes:
        return RowError(number, f"Give {USERS_BY_ID} or {ATTRIBUTE_PREFIX}<field> columns, not both.")
    if not users and not attributes:
        return RowError(number, f"Blank target: {USERS_BY_ID} or a {ATTRIBUTE_PREFIX}<field> needs a value.")
    user_ids: list[str] | None = None
    if users:
        user_ids = users.split("|")
        if any(not user_id or len(user_id) > MAX_ID_LENGTH for user_id in user_ids):
            return RowError(number, f"{USERS_BY_ID}: every id separated by | must be 1 to {MAX_ID_LENGTH} characters.")
        user_ids = list(dict.fromkeys(user_ids))
        if len(user_ids) > MAX_TARGETS:
            return RowError(number, f"{USERS_BY_ID}: at most {MAX_TARGETS:,} ids per row; got {len(user_ids):,}.")
    payload: dict[str, dict[str, Any]] = defaultdict(dict)
    for position, section, key in columns.payload:
        value = cells[position]
        if value == "":
            continue
        if section == "variables" and key in defaults:
            try:
                payload[section][key] = typed_text(value, defaults[key])
            except ValueError as error:
                return RowError(number, f"payload.variables.{key}: {value!r} is malformed ({error}).")
        else:
            payload[section][key] = value
    return _Row(number, invocation_id, user_ids, attributes, dict(payload))


def _rows_of_chunk(chunk: CsvChunk) -> Iterator[tuple[int, list[str]]]:
    for offset, cells in enumerate(csv.reader(io.StringIO(chunk.text))):
        yield chunk.first_row + offset, cells


# --- Attributes: one query per chunk ------------------------------------------------------


def _attribute_lookup(name: str) -> tuple[str, str | None]:
    """(column, None) for a profile field, ("custom_fields", key) for a custom one."""
    if name in PROFILE_COLUMNS:
        return PROFILE_COLUMNS[name], None
    key = name[len(CUSTOM_PREFIX) :] if name.startswith(CUSTOM_PREFIX) else name
    return "custom_fields", key


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolve_attributes(environment_id: int, rows: list[_Row]) -> dict[int, list[str] | str]:
    """Each attribute row's userIds, or its error message, in ONE query for all of them.

    Each row is looked up by one of its fields (its first in the header) with an IN list per
    field, and the candidates are then checked against all of the row's fields here.
    """
    wanted = [row for row in rows if row.user_ids is None]
    if not wanted:
        return {}
    names = sorted({name for row in wanted for name in row.attributes})
    aliases = {name: f"a{index}" for index, name in enumerate(names)}
    annotations: dict[str, Any] = {}
    for name in names:
        column, key = _attribute_lookup(name)
        annotations[aliases[name]] = F(column) if key is None else KT(f"custom_fields__{key}")
    by_key: dict[str, set[str]] = defaultdict(set)
    for row in wanted:
        first = next(iter(row.attributes))
        by_key[first].add(row.attributes[first])
    condition = Q()
    for name, values in by_key.items():
        condition |= Q(**{f"{aliases[name]}__in": sorted(values)})
    candidates = (
        Customer.objects.filter(environment_id=environment_id)
        .annotate(**annotations)
        .filter(condition)
        .values_list("user_id", *aliases.values())
    )
    index: dict[tuple[str, str], list[tuple[str, dict[str, str | None]]]] = defaultdict(list)
    for user_id, *values in candidates.iterator(chunk_size=2000):
        fields = {name: _as_text(value) for name, value in zip(names, values, strict=True)}
        for name in by_key:
            if fields[name] is not None:
                index[(name, fields[name] or "")].append((user_id, fields))
    resolved: dict[int, list[str] | str] = {}
    for row in wanted:
        first = next(iter(row.attributes))
        matches = [
            user_id
            for user_id, fields in index.get((first, row.attributes[first]), [])
            if all(fields[name] == value for name, value in row.attributes.items())
        ]
        described = ", ".join(f"{name} = {value!r}" for name, value in row.attributes.items())
        if not matches:
            resolved[row.number] = f"No customer matches {described}."
        elif len(matches) > MAX_ATTRIBUTE_MATCHES:
            resolved[row.number] = (
                f"{len(matches)} customers match {described}; a row may reach at most {MAX_ATTRIBUTE_MATCHES}."
            )
        else:
            resolved[row.number] = sorted(matches)
    return resolved


# --- Turning a chunk into start requests -------------------------------------------------


@dataclass
class _ChunkStarts:
    starts: list[tuple[int, StartRequest]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _chunk_starts(task: CsvTask, flow: FlowForStart, columns: Columns, chunk: CsvChunk) -> _ChunkStarts:
    """The chunk's rows as start requests (in row order) and its rows in error."""
    definition = flow.definition_run_by(task.mode)
    defaults = {variable["name"]: variable["default"] for variable in definition["variables"]}
    defaults = {name: value for name, value in defaults.items() if value is not None}
    result = _ChunkStarts()
    rows: list[_Row] = []
    for number, cells in _rows_of_chunk(chunk):
        parsed = _row_of(number, cells, columns, defaults)
        if isinstance(parsed, RowError):
            result.errors.append(parsed)
        else:
            rows.append(parsed)
    targets = _resolve_attributes(task.environment_id, rows)
    for row in rows:
        user_ids = row.user_ids if row.user_ids is not None else targets[row.number]
        if isinstance(user_ids, str):
            result.errors.append(RowError(row.number, user_ids))
            continue
        variables = row.payload.get("variables", {})
        _, missing = resolve_variables(definition, variables)
        if missing:
            names = ", ".join(missing)
            result.errors.append(RowError(row.number, f"Missing required variable: {names}."))
            continue
        start = StartRequest(
            target_user_ids=user_ids,
            flow_invocation_id=row.flow_invocation_id or f"csv-{task.pk}-{row.number}",
            variables=variables,
            notification_detail=row.payload.get("notification_detail", {}),
            metadata=row.payload.get("metadata", {}),
            card_options=row.payload.get("card_options", {}),
        )
        result.starts.append((row.number, start))
    result.errors.sort(key=lambda error: error.row)
    return result


# --- Staging the upload --------------------------------------------------------------------


def _decoded_lines(upload: IO[bytes], limit: int) -> Iterator[str]:
    """The upload as text lines ending in \n, read READ_BYTES at a time (a BOM is dropped); a
    byte that is not UTF-8 raises UnicodeDecodeError. Split on \n only: csv.reader joins the
    lines of a quoted cell, and other line breaks (U+2028, ...) are cell text."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    size = 0
    while True:
        data = upload.read(READ_BYTES)
        size += len(data)
        if size > limit:  # a body without a declared length, or a caller other than the API
            raise _too_large(limit)
        pending += decoder.decode(data, final=not data)
        if not data:
            if pending:
                yield pending
            return
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line + "\n"


def _too_large(limit: int) -> Refused:
    return Refused(413, "payload_too_large", f"The file is over the limit of {limit} bytes.")


def _not_utf8() -> Refused:
    return Refused(400, "invalid_request", "The file is not UTF-8 text.", {"file": ["Not UTF-8."]})


def csv_task_stage(
    *, flow: Flow, mode: str, upload: IO[bytes], file_name: str, by: User | None, confirm: bool
) -> CsvTask:
    """Store the upload as a task's chunks, or refuse the whole file.

    1. 409 flow_archived, 409 flow_not_published (live), 413 over CSV_MAX_BODY_BYTES.
    2. The header: 400 for an empty file, no header, unknown or repeated columns, no target.
    3. The rows, streamed into chunks in one transaction (400 if the file turns out not to be
       UTF-8 or not CSV: nothing is kept).
    4. With `confirm`, the task is confirmed and sent to a worker after the commit; without,
       its dry run is sent to a worker.
    """
    start_flow = flow_for_start(flow=flow)
    if start_flow.status == FlowStatus.ARCHIVED:
        raise Refused(409, "flow_archived", "This flow is archived; it starts nothing.")
    if mode == Mode.LIVE and start_flow.latest_version_number is None:
        raise Refused(409, "flow_not_published", "Live starts need a published flow; publish it first.")
    limit = settings.CSV_MAX_BODY_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise _too_large(limit)
    lines = _decoded_lines(upload, limit)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise Refused(400, "invalid_request", "The file is empty.", {"file": ["Empty file."]})
        if not any(name.strip() for name in header):
            raise Refused(400, "invalid_request", "The file has no header row.", {"file": ["No header row."]})
        columns = Columns.of(header)
        with transaction.atomic():
            task = CsvTask.objects.create(
                environment_id=flow.environment_id,
                flow=flow,
                mode=mode,
                file_name=file_name[:255],
                columns=columns.names,
                created_by=by,
            )
            task.rows_total = _store_chunks(task, reader)
            if task.rows_total == 0:
                raise Refused(400, "invalid_request", "The file has a header but no rows.", {"file": ["No rows."]})
            update = ["rows_total"]
            if confirm:
                task.confirmed_at = timezone.now()
                update.append("confirmed_at")
                _send_after_commit(task.pk)
            else:
                task_id = task.pk
                transaction.on_commit(lambda: enqueue(CHECK_TASK_NAME, task_id))
            task.save(update_fields=update)
    except UnicodeDecodeError:
        raise _not_utf8() from None
    except csv.Error as error:
        raise Refused(
            400,
            "invalid_request",
            f"The file is not valid CSV (line {reader.line_num}): {error}.",
            {"file": [str(error)]},
        ) from None
    return task


def _store_chunks(task: CsvTask, reader: Iterable[list[str]]) -> int:
    """Write the data rows as chunks; the number of data rows (blank lines are not rows, but
    they keep their row numbers, as in a spreadsheet)."""
    rows_total = 0
    number = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    first_row = 0
    count = 0

    def flush() -> None:
        nonlocal number, count, buffer, writer
        CsvChunk.objects.create(task=task, number=number, first_row=first_row, row_count=count, text=buffer.getvalue())
        number += 1
        count = 0
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

    row_number = 1  # the header
    for cells in reader:
        row_number += 1
        if not any(cells):
            # A blank line (or one of empty cells, as spreadsheets export it) is no row. A
            # chunk holds consecutive rows, so it ends here.
            if count:
                flush()
            continue
        if count == 0:
            first_row = row_number
        writer.writerow(cells)
        count += 1
        rows_total += 1
        if count >= CHUNK_ROWS or buffer.tell() >= CHUNK_MAX_CHARS:
            flush()
    if count:
        flush()
    return rows_total


def _send_after_commit(task_id: int) -> None:
    transaction.on_commit(lambda: enqueue(TASK_NAME, task_id))


def csv_task_confirm(*, task: CsvTask, by: User | None) -> CsvTask:
    """Let the task start (the Workbench, after its dry run); a second confirm changes nothing."""
    with transaction.atomic():
        confirmed = CsvTask.objects.filter(pk=task.pk, confirmed_at__isnull=True, status=CsvTaskStatus.QUEUED).update(
            confirmed_at=timezone.now()
        )
        if confirmed:
            _send_after_commit(task.pk)
    task.refresh_from_db()
    return task


def csv_task_cancel(*, task: CsvTask) -> CsvTask:
    """Stop the task: rows not started by now never start (a chunk in flight commits only
    while its task is still running). Cancelling a finished task changes nothing."""
    now = timezone.now()
    CsvTask.objects.filter(pk=task.pk, status__in=[CsvTaskStatus.QUEUED, CsvTaskStatus.RUNNING]).update(
        status=CsvTaskStatus.CANCELLED, cancelled_at=now, finished_at=now, lease_until=None
    )
    task.refresh_from_db()
    return task


# --- The dry run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvDryRun:
    rows_total: int
    sample: list[dict[str, Any]]  # the first rows as canonical start requests, each with "row"
    errors: list[RowError]  # the first MAX_REPORTED_ERRORS
    rows_failed: int
    target_count: int

    def as_json(self) -> dict[str, Any]:
        return {
            "rowsTotal": self.rows_total,
            "sample": self.sample,
            "errors": [{"row": error.row, "message": error.message} for error in self.errors],
            "rowsFailed": self.rows_failed,
            "targetCount": self.target_count,
        }

    @classmethod
    def of_json(cls, data: dict[str, Any]) -> CsvDryRun:
        return cls(
            rows_total=data["rowsTotal"],
            sample=data["sample"],
            errors=[RowError(error["row"], error["message"]) for error in data["errors"]],
            rows_failed=data["rowsFailed"],
            target_count=data["targetCount"],
        )


def csv_task_dry_run(
    *, task: CsvTask, sample_rows: int = 5, progress: Callable[[int], None] | None = None
) -> CsvDryRun:
    """What the task would do, validated row by row, without starting anything; streams the
    chunks one at a time, telling `progress` the rows checked after each. Keys reused with
    other content show only when the rows start."""
    flow = flow_for_start(flow=task.flow)
    columns = Columns.of(task.columns)
    sample: list[dict[str, Any]] = []
    errors: list[RowError] = []
    rows_failed = target_count = rows_checked = 0
    for chunk in CsvChunk.objects.filter(task=task).order_by("number").iterator(chunk_size=1):
        found = _chunk_starts(task, flow, columns, chunk)
        for number, start in found.starts:
            target_count += len(start.target_user_ids)
            if len(sample) < sample_rows:
                sample.append({"row": number, **start.as_canonical()})
        rows_failed += len(found.errors)
        errors.extend(found.errors[: MAX_REPORTED_ERRORS - len(errors)])
        rows_checked += chunk.row_count
        if progress is not None:
            progress(rows_checked)
    if not task.confirmed_at:
        CsvTask.objects.filter(pk=task.pk, confirmed_at__isnull=True).update(target_count=target_count)
        task.target_count = target_count
    return CsvDryRun(
        rows_total=task.rows_total, sample=sample, errors=errors, rows_failed=rows_failed, target_count=target_count
    )


def csv_task_check(*, task_id: int, sample_rows: int = DRY_RUN_SAMPLE_ROWS) -> CsvDryRun | None:
    """The Workbench's dry run of an unconfirmed task, made by a worker and kept on the task
    (its page polls `dry_run_rows` until `dry_run` is there). Idempotent: a task already
    checked, confirmed or gone is left as it is."""
    task = CsvTask.objects.select_related("flow").filter(pk=task_id, confirmed_at__isnull=True).first()
    if task is None or task.dry_run is not None or task.status != CsvTaskStatus.QUEUED:
        return None

    def progress(rows: int) -> None:
        CsvTask.objects.filter(pk=task_id).update(dry_run_rows=rows)

    dry_run = csv_task_dry_run(task=task, sample_rows=sample_rows, progress=progress)
    CsvTask.objects.filter(pk=task_id).update(dry_run=dry_run.as_json(), dry_run_rows=task.rows_total)
    return dry_run


def csv_checks_to_resend(*, now: Any = None) -> list[int]:
    """Unconfirmed tasks whose dry run nobody is making: not begun a minute after the upload
    (a lost message), or still not done after CHECK_LIMIT (a worker that died while checking;
    the largest file is checked in a few minutes)."""
    now = now or timezone.now()
    not_begun = Q(dry_run_rows=0, created_at__lt=now - CHECK_GRACE)
    return list(
        CsvTask.objects.filter(status=CsvTaskStatus.QUEUED, confirmed_at__isnull=True, dry_run__isnull=True)
        .filter(not_begun | Q(created_at__lt=now - CHECK_LIMIT))
        .values_list("pk", flat=True)[:100]
    )


# --- Processing ------------------------------------------------------------------------------


class _LostClaim(Exception):
    """The task was cancelled, or another worker took it over: this chunk must not commit."""


def csv_task_run(*, task_id: int, slice_seconds: float = SLICE_SECONDS) -> str:
    """Process the task if it can be claimed; its status afterwards (see the module docstring).

    1. Claim: a conditional UPDATE takes a confirmed, unfinished task whose lease is free or
       expired, under a new token.
    2. Each chunk from `next_chunk`, in one transaction: its starts in batches (the cancel
       checked between them), its row errors, and the progress, written only while the
       task is still running under this token.
    3. After the last chunk the task is completed, whatever its rows' errors.
    4. After `slice_seconds` the task hands itself on instead (lease released, the task sent
       again): a file of a million rows outlasts Celery's time limit for one task, and other
       work waiting in the queue gets its turn between slices.
    """
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        CsvTask.objects.filter(
            pk=task_id, confirmed_at__isnull=False, status__in=[CsvTaskStatus.QUEUED, CsvTaskStatus.RUNNING]
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            status=CsvTaskStatus.RUNNING,
            lease_token=token,
            lease_until=now + timedelta(seconds=lease_seconds()),
            started_at=Coalesce("started_at", now),
        )
    )
    if claimed != 1:
        return "not claimed"
    task = CsvTask.objects.select_related("flow").get(pk=task_id)
    columns = Columns.of(task.columns)
    flow = flow_for_start(flow=task.flow)
    chunk_count = CsvChunk.objects.filter(task=task).count()
    if task.next_chunk >= chunk_count:
        _finish(task, token, CsvTaskStatus.COMPLETED)
        return CsvTaskStatus.COMPLETED
    slice_ends = time.monotonic() + slice_seconds
    for number in range(task.next_chunk, chunk_count):
        if number > task.next_chunk and time.monotonic() > slice_ends:
            return _hand_on(task, token)
        try:
            with transaction.atomic():
                _run_chunk(task, flow, columns, number, token, last=number == chunk_count - 1)
        except _LostClaim:
            return "stopped"
        except FlowRefused as refused:  # the flow itself refuses: every row would be refused
            _finish(task, token, CsvTaskStatus.FAILED, f"{refused.code}: {refused.detail}")
            return CsvTaskStatus.FAILED
        except Exception as error:
            # Left to the sweep once the lease expires; the chunk rolled back whole.
            CsvTask.objects.filter(pk=task.pk, lease_token=token).update(last_error=repr(error)[:2000])
            raise
    return CsvTaskStatus.COMPLETED


def _hand_on(task: CsvTask, token: str) -> str:
    """End this slice: release the lease (the task stays running) and send the task again;
    should the message be lost, the sweep sends it (a running task without a lease)."""
    if CsvTask.objects.filter(pk=task.pk, status=CsvTaskStatus.RUNNING, lease_token=token).update(lease_until=None):
        _send_after_commit(task.pk)
        return "continues"
    return "stopped"


def _finish(task: CsvTask, token: str, status: str, error: str = "") -> None:
    CsvTask.objects.filter(pk=task.pk, status=CsvTaskStatus.RUNNING, lease_token=token).update(
        status=status, finished_at=timezone.now(), lease_until=None, last_error=error
    )


def _still_ours(task: CsvTask, token: str) -> bool:
    return CsvTask.objects.filter(pk=task.pk, status=CsvTaskStatus.RUNNING, lease_token=token).exists()


def _run_chunk(task: CsvTask, flow: FlowForStart, columns: Columns, number: int, token: str, *, last: bool) -> None:
    chunk = CsvChunk.objects.get(task=task, number=number)
    found = _chunk_starts(task, flow, columns, chunk)
    errors = list(found.errors)
    reached = 0
    for index in range(0, len(found.starts), BATCH_SIZE):
        if not _still_ours(task, token):
            raise _LostClaim
        batch = found.starts[index : index + BATCH_SIZE]
        batch_reached, batch_errors = _accept_batch(task, flow, batch)
        reached += batch_reached
        errors.extend(batch_errors)
    if errors:
        CsvRowError.objects.bulk_create(
            [CsvRowError(task=task, row=error.row, message=error.message) for error in errors], ignore_conflicts=True
        )
    now = timezone.now()
    progress: dict[str, Any] = {
        "rows_done": F("rows_done") + chunk.row_count,
        "rows_failed": F("rows_failed") + len(errors),
        "target_count": (F("target_count") + reached) if number else reached,
        "next_chunk": number + 1,
        "lease_until": now + timedelta(seconds=lease_seconds()),
    }
    if last:
        progress.update(status=CsvTaskStatus.COMPLETED, finished_at=now, lease_until=None)
    # Only while running under this claim: a cancel committed meanwhile rolls the chunk back.
    if CsvTask.objects.filter(pk=task.pk, status=CsvTaskStatus.RUNNING, lease_token=token).update(**progress) != 1:
        raise _LostClaim


def _accept_batch(
    task: CsvTask, flow: FlowForStart, batch: list[tuple[int, StartRequest]]
) -> tuple[int, list[RowError]]:
    """Customers reached and row errors. A refused batch is retried row by row, so one bad
    row (say a key used before with other content) keeps none of the others from starting."""
    try:
        with transaction.atomic():
            return _accept(task, flow, [start for _, start in batch]), []
    except FlowRefused as refused:
        if refused.code in TASK_REFUSALS:
            raise
        if len(batch) == 1:
            return 0, [RowError(batch[0][0], _refusal_message(refused))]
    reached = 0
    errors: list[RowError] = []
    for number, start in batch:
        try:
            with transaction.atomic():
                reached += _accept(task, flow, [start])
        except FlowRefused as refused:
            if refused.code in TASK_REFUSALS:
                raise
            errors.append(RowError(number, _refusal_message(refused)))
    return reached, errors


def _accept(task: CsvTask, flow: FlowForStart, starts: list[StartRequest]) -> int:
    result = invocations_accept(
        flow=flow, mode=task.mode, starts=starts, source=SOURCE, started_by_id=task.created_by_id
    )
    return sum(outcome.target_count for outcome in result.outcomes if outcome.status == "accepted")


def _refusal_message(refused: FlowRefused) -> str:
    details = [message for messages in (refused.errors or {}).values() for message in messages]
    return " ".join([refused.detail, *details]) if details else refused.detail


# --- Reading a task ----------------------------------------------------------------------


def csv_task_errors(*, task: CsvTask, limit: int = MAX_REPORTED_ERRORS) -> list[RowError]:
    return [
        RowError(row, message)
        for row, message in CsvRowError.objects.filter(task=task).order_by("row").values_list("row", "message")[:limit]
    ]


def csv_task_as_json(task: CsvTask) -> dict[str, Any]:
    return {
        "taskId": task.pk,
        "status": task.status,
        "rowsTotal": task.rows_total,
        "rowsDone": task.rows_done,
        "rowsFailed": task.rows_failed,
        "errors": [{"row": error.row, "message": error.message} for error in csv_task_errors(task=task)],
    }


def _formula_safe(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_task_errors_csv(*, task: CsvTask) -> Iterator[str]:
    """The error report as CSV lines (row, message), every row in error; a cell that a
    spreadsheet would run as a formula is prefixed with '."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_formula_safe(cell) for cell in cells])
        return buffer.getvalue()

    yield line(["row", "message"])
    errors = CsvRowError.objects.filter(task=task).order_by("row").values_list("row", "message")
    for row, message in errors.iterator(chunk_size=2000):
        yield line([str(row), message])


# --- The sweep -------------------------------------------------------------------------------


def csv_tasks_to_resend(*, now: Any = None) -> list[int]:
    """Confirmed, unfinished tasks nobody holds: a lease that expired (its worker died) or,
    after SWEEP_STALE_SECONDS, a task never picked up (its message was lost)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=int(getattr(settings, "SWEEP_STALE_SECONDS", 30)))
    return list(
        CsvTask.objects.filter(status__in=[CsvTaskStatus.QUEUED, CsvTaskStatus.RUNNING], confirmed_at__isnull=False)
        .filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True, confirmed_at__lt=stale))
        .values_list("pk", flat=True)[:1000]
    )
