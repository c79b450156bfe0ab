"""A CSV bulk send through the API against PostgreSQL's COPY of the same file (issue 13).

The measured side: `POST /api/v1/{env}/action-flow/{flowId}/csv-task` with a file of
BENCH_CSV_ROWS rows (default 1,000,000; `target.usersById` and two variables), served by
gunicorn, processed by one Celery worker process (two children); the clock runs from the start of the
upload until every row's start is accepted and its run created and sent to execution (the
execute messages wait in a queue of their own: executing runs is bench_fanout's subject). The
reference: `COPY` of the same file into a plain table of three text columns, in the same run.
Also reported: the peak RSS (VmHWM) of the web processes and of the worker's processes,
against the issue's 200 MB each (a line whose ratio is 200 MB / peak: at least 1 passes).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.harness import BenchError, Result, empty_scratch_environment
from bench.processes import GunicornConfig, celery_worker, drop_queue, gunicorn, new_queue, service_environment

GOAL = 0.2
RSS_BUDGET_MB = 200.0
ENVIRONMENT_SLUG = "bench-csv"
ROWS = int(os.environ.get("BENCH_CSV_ROWS", "1000000"))
CONFIG = GunicornConfig(worker_class="gthread", workers=1, threads=2)
# One worker process with two children: the task's chunks in one, its fan-outs in the other.
WORKER_CONCURRENCY = 2
REFERENCE_TABLE = "bench_csv_copy"
BOUNDARY = "bench-csv-" + uuid.uuid4().hex


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("target.usersById,payload.variables.firstName,payload.variables.code\n")
        for number in range(rows):
            file.write(f"user-{number:07d},Ada {number % 97},C{number}\n")


def copy_seconds(path: Path) -> float:
    """COPY the file into a plain table (dropped afterwards): PostgreSQL's fastest load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE_TABLE}")
        cursor.execute(f"CREATE TABLE {REFERENCE_TABLE} (user_ids text, first_name text, code text)")
    try:
        started = time.perf_counter()
        with connection.cursor() as cursor, path.open("rb") as file:
            copy_sql = f"COPY {REFERENCE_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)"
            with cursor.cursor.copy(copy_sql) as copy:
                while data := file.read(1024 * 1024):
                    copy.write(data)
        return time.perf_counter() - started
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE_TABLE}")


# What the pipeline must durably write for one CSV row, by table: the columns that must
# differ from row to row (unique keys), beside the primary key.
WRITTEN_PER_ROW = {
    "flows_invocation": ("flow_invocation_id",),
    "flows_flowrun": ("user_id",),
    "flows_analyticsevent": ("flow_invocation_id",),
    "customers_customer": ("user_id",),
}


def durable_floor_seconds(flow_id: int, rows: int) -> float:
    """The durable floor of a CSV row: the seconds PostgreSQL takes to write the rows one
    CSV row leaves (an invocation, its run, its accepted event, a minimal profile) for `rows`
    rows, each table's in ONE INSERT … SELECT from generate_series into a scratch copy of the
    table with its indexes and defaults, copying a row the measured run wrote. No client, no
    parsing, no per-row decision: what remains is PostgreSQL's own cost of these rows.
    """
    from django.db import connection

    samples = {
        "flows_invocation": "SELECT max(id) FROM flows_invocation WHERE flow_id = %s",
        "flows_flowrun": "SELECT max(id) FROM flows_flowrun WHERE flow_id = %s",
        "flows_analyticsevent": "SELECT max(id) FROM flows_analyticsevent WHERE flow_id = %s",
        "customers_customer": (
            "SELECT max(c.id) FROM customers_customer c JOIN flows_flow f ON f.environment_id = c.environment_id "
            "WHERE f.id = %s"
        ),
    }
    total = 0.0
    for table, varying in WRITTEN_PER_ROW.items():
        scratch = f"bench_floor_{table}"
        with connection.cursor() as cursor:
            cursor.execute(samples[table], [flow_id])
            sample_id = cursor.fetchone()[0]
            cursor.execute(f"SELECT * FROM {table} LIMIT 0")
            columns = [column.name for column in cursor.description]
            cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
            cursor.execute(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)")
        values = [
            "g" if column == "id" else f"s.{column} || '-' || g" if column in varying else f"s.{column}"
            for column in columns
        ]
        insert = (
            f"INSERT INTO {scratch} ({', '.join(columns)}) SELECT {', '.join(values)} "
            f"FROM {table} s, generate_series(1, %s) g WHERE s.id = %s"
        )
        try:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(insert, [rows, sample_id])
            total += time.perf_counter() - started
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
    return total


def prepare() -> tuple[Any, str, str]:
    from flows.services import flow_create, flow_publish
    from triggers.models import CsvTask
    from workbench.models import CredentialRole, Environment
    from workbench.services import credential_create

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark CSV"})
    CsvTask.objects.filter(environment=environment).delete()
    empty_scratch_environment(environment)
    flow = flow_create(
        environment=environment,
        name="Bench CSV",
        variables=[{"name": "firstName", "default": "there"}, {"name": "code", "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "Code {{code}}", "actions": []}}],
    )
    flow_publish(flow=flow)
    issued = credential_create(environment=environment, role=CredentialRole.EVENTS, label="bench")
    return flow, issued.credential.client_id, issued.client_secret


def token_for(base: str, client_id: str, client_secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{base}/oauth/token",
        data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        return str(json.load(answer)["access_token"])


def upload(base: str, token: str, flow_id: int, path: Path) -> int:
    """Stream the multipart body from disk (never whole in this process either); the task id."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)

    def body() -> Any:
        yield head
        with path.open("rb") as file:
            while data := file.read(256 * 1024):
                yield data
        yield tail

    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(length),
    }
    connection.request("POST", f"/api/v1/{ENVIRONMENT_SLUG}/action-flow/{flow_id}/csv-task", body(), headers)
    answer = connection.getresponse()
    content = answer.read()
    connection.close()
    if answer.status != 202:
        raise BenchError(f"The upload was answered {answer.status}: {content[:500]!r}")
    return int(json.loads(content)["data"]["taskId"])


def wait_until_done(task_id: int, flow_id: int, rows: int, timeout: float) -> None:
    """Until the task is completed and none of the flow's invocations waits for its fan-out;
    then every run must be there. The poll reads the task row and the accepted invocations
    only (an index range that empties as fan-outs go), so that polling does not compete with
    the work it waits for (a count of a million runs every half second did)."""
    from django.db import connection

    from triggers.models import CsvTask

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = CsvTask.objects.get(pk=task_id)
        if task.status in ("failed", "cancelled"):
            raise BenchError(f"The CSV task ended {task.status}: {task.last_error}")
        if task.status == "completed":
            if task.rows_failed:
                raise BenchError(f"{task.rows_failed} rows failed")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM flows_invocation WHERE status = 'accepted' AND flow_id = %s)",
                    [flow_id],
                )
                if not cursor.fetchone()[0]:
                    cursor.execute("SELECT count(*) FROM flows_flowrun WHERE flow_id = %s", [flow_id])
                    runs = cursor.fetchone()[0]
                    if runs < rows:
                        raise BenchError(f"Every start was taken up, yet {runs:,} runs for {rows:,} rows")
                    return
        time.sleep(1)
    raise BenchError(f"The CSV task did not finish in {timeout:.0f} s")


def group_peak_rss_mb(leader_pid: int) -> float:
    """The largest VmHWM among the leader and its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    peak, pending = 0, [leader_pid]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def run() -> list[Result]:
    from django.db import connection

    flow, client_id, client_secret = prepare()
    queue = new_queue("bench-csv")
    # The runs' execution (cards) is the fan-out benchmark's subject, not this one's: its
    # messages wait in a queue of their own that no worker here consumes (CELERY_RUNS_QUEUE).
    runs_queue = f"{queue}-runs"
    env = service_environment(queue, CELERY_RUNS_QUEUE=runs_queue)
    web_env = service_environment(queue, settings_module="bench.bare_site")  # it serves /bench/ping
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.csv"
        write_file(path, ROWS)
        reference = copy_seconds(path)
        connection.close()
        try:
            with gunicorn(CONFIG, web_env) as base, celery_worker(queue, WORKER_CONCURRENCY, env) as worker:
                token = token_for(base, client_id, client_secret)
                web_pid = _listener_pid(base)
                started = time.perf_counter()
                task_id = upload(base, token, flow.pk, path)
                answered = time.perf_counter() - started
                wait_until_done(task_id, flow.pk, ROWS, timeout=max(600.0, ROWS / 50))
                elapsed = time.perf_counter() - started
                web_mb = group_peak_rss_mb(web_pid)
                worker_mb = group_peak_rss_mb(worker.popen.pid)
        finally:
            drop_queue(queue)
            drop_queue(runs_queue)
    floor = durable_floor_seconds(flow.pk, ROWS)
    print(
        f"CSV {ROWS:,} rows ({path.name}): upload answered in {answered:.1f} s, done in {elapsed:.1f} s; "
        f"COPY {reference:.2f} s; the rows they leave written by INSERT … SELECT {floor:.2f} s; "
        f"peak RSS web {web_mb:.0f} MB, worker {worker_mb:.0f} MB"
    )
    return [
        Result(
            name=f"CSV bulk send, {ROWS:,} rows (upload to every run queued)",
            unit="rows/s",
            measured=ROWS / elapsed,
            reference=ROWS / reference,
            reference_name="COPY of the file into a plain table",
            goal=GOAL,
        ),
        Result(
            name=f"CSV bulk send, {ROWS:,} rows, against its durable floor",
            unit="rows/s",
            measured=ROWS / elapsed,
            reference=ROWS / floor,
            reference_name="INSERT … SELECT of each row's invocation, run, event and profile",
            goal=None,
        ),
        Result(
            name=f"CSV bulk send: web peak RSS {web_mb:.0f} MB",
            unit="MB",
            measured=RSS_BUDGET_MB,
            reference=web_mb,
            reference_name="budget / peak",
            goal=1.0,
        ),
        Result(
            name=f"CSV bulk send: worker peak RSS {worker_mb:.0f} MB",
            unit="MB",
            measured=RSS_BUDGET_MB,
            reference=worker_mb,
            reference_name="budget / peak",
            goal=1.0,
        ),
    ]


def _listener_pid(base: str) -> int:
    """The gunicorn master's pid: the process group leader that owns the listening port."""
    port = urllib.parse.urlsplit(base).port
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = path.read_bytes().replace(b"\x00", b" ").decode(errors="replace")
        except OSError:
            continue
        if "gunicorn" in command and f"127.0.0.1:{port}" in command:
            return int(path.parent.name)
    raise BenchError("The gunicorn master was not found")
