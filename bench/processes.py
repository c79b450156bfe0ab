"""Server processes the live benchmarks start: gunicorn, a Celery worker, and the wrk client.

Every process is started in a session of its own and stopped (TERM, then KILL) by its
process group id when the benchmark ends, whatever happened; nothing outlives `python -m bench`.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import BenchError, database_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def broker_url() -> str:
    """The Redis broker the live benchmarks publish to (CELERY_BROKER_URL, else local Redis)."""
    url = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        raise BenchError(f"The live benchmarks need a Redis broker; CELERY_BROKER_URL is {url}")
    return url


def new_queue(prefix: str) -> str:
    """A queue of this run's own, so that no other worker takes its messages and none take ours."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def drop_queue(queue: str) -> None:
    """Delete what the run left in Redis: the queue's lists (one per priority) and its binding."""
    import redis

    client = redis.Redis.from_url(broker_url(), socket_timeout=5)
    try:
        keys = [*client.scan_iter(match=f"{queue}*"), f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        client.delete(*keys)
    finally:
        client.close()


def service_environment(queue: str, settings_module: str = "workbench.settings", **extra: str) -> dict[str, str]:
    """The environment of a server or worker process working on the benchmark database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "CELERY_QUEUE": queue,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-secret-key-not-for-any-server",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A subprocess in its own process group, logging to a temporary file."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str]):
        self.name = name
        self.log = Path(tempfile.gettempdir()) / f"bench-{name}-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as log:
            self.popen = subprocess.Popen(
                list(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def fail(self, why: str) -> BenchError:
        tail = "\n".join(self.log_text().splitlines()[-20:])
        return BenchError(f"{self.name} {why}; log {self.log}:\n{tail}")

    def stop(self) -> None:
        """TERM the whole group, KILL whatever is left after 20 s, and reap the leader."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Children of a dead leader (prefork pool, gunicorn workers) still hold the group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.unlink(missing_ok=True)


@dataclass(frozen=True)
class GunicornConfig:
    worker_class: str = "gthread"
    workers: int = 2
    threads: int = 4

    def arguments(self) -> list[str]:
        arguments = ["--worker-class", self.worker_class, "--workers", str(self.workers)]
        if self.worker_class == "gthread":
            arguments += ["--threads", str(self.threads)]
        return arguments

    def __str__(self) -> str:
        threads = f" --threads {self.threads}" if self.worker_class == "gthread" else ""
        return f"gunicorn -k {self.worker_class} -w {self.workers}{threads}"


@contextlib.contextmanager
def gunicorn(config: GunicornConfig, env: dict[str, str]) -> Iterator[str]:
    """Serve workbench.wsgi with `config` on a free loopback port; yield the base URL."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "workbench.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += [*config.arguments(), "--timeout", "60", "--keep-alive", "30", "--log-level", "warning"]
    server = Process("gunicorn", command, env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if not server.alive():
                raise server.fail("exited at start-up")
            try:
                with urllib.request.urlopen(f"{base}/bench/ping", timeout=5) as answer:  # noqa: S310 (loopback)
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise server.fail("did not answer in 60 s")
            time.sleep(0.2)
        yield base
        if not server.alive():
            raise server.fail("died during the benchmark")
    finally:
        server.stop()


@contextlib.contextmanager
def celery_worker(queue: str, concurrency: int, env: dict[str, str]) -> Iterator[Process]:
    """A `celery -A workbench worker -c N` on the queue; yields once it says it is ready."""
    command = [
        sys.executable, "-m", "celery", "-A", "workbench", "worker", "-Q", queue, "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"{queue}@%h",
    ]  # fmt: skip
    worker = Process("celery-worker", command, env)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in worker.log_text():
            if not worker.alive():
                raise worker.fail("exited at start-up")
            if time.monotonic() > deadline:
                raise worker.fail("was not ready in 60 s")
            time.sleep(0.1)
        yield worker
    finally:
        worker.stop()


# --- The load generator ---------------------------------------------------------------------

# One distinct userId per request: the thread number and a counter, behind a per-run tag.
WRK_SCRIPT = """
local thread_number = 0
function setup(thread)
  thread:set("number", thread_number)
  thread_number = thread_number + 1
end
local counter = 0
function init(args)
  prefix = args[1] .. "-" .. number .. "-"
end
request = function()
  counter = counter + 1
  local body = '{"targetUserIds":["' .. prefix .. counter .. '"],"variables":{"firstName":"Ada"}}'
  return wrk.format("POST", nil, nil, body)
end
"""

# Pre-built requests read from a file, one a line: `<header value>\t<body>` (args: header name,
# file). Each request goes out once in file order, then the list starts over. Every status is
# counted and printed as `status <code> <count>` lines, so a caller can demand exactly 202s.
FILE_REQUESTS_SCRIPT = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
local requests = {}
local index = 0
statuses = {}
function init(args)
  local header = args[1]
  for line in io.lines(args[2]) do
    local tab = string.find(line, "\\t", 1, true)
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    headers[header] = string.sub(line, 1, tab - 1)
    requests[#requests + 1] = wrk.format("POST", nil, headers, string.sub(line, tab + 1))
  end
end
request = function()
  index = index + 1
  if index > #requests then
    index = 1
  end
  return requests[index]
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\\n", status, count))
    end
  end
end
"""


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent by the web server's processes (every gunicorn process: only the
    benchmark's run while it does) and by PostgreSQL's (a local server's processes, with what
    its exited backends left to the postmaster)."""

    web: float
    database: float

    def __sub__(self, other: CpuUse) -> CpuUse:
        return CpuUse(web=self.web - other.web, database=self.database - other.database)


def cpu_use() -> CpuUse | None:
    """The CPU seconds spent so far, read from /proc; None where there is no /proc (or the
    database is not on this machine, when the database side reads 0)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    web = database = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name, fields = stat[stat.index("(") + 1 : stat.rfind(")")], stat[stat.rfind(")") + 2 :].split()
            # Only an interpreter's command line is read: a gunicorn server runs in one.
            is_web = ("python" in name or "gunicorn" in name) and b"gunicorn" in (entry / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        # utime and stime, and those of the children it has waited for (exited backends)
        spent = sum(int(value) for value in fields[11:15]) / ticks
        if name.startswith("postgres"):
            database += spent
        elif is_web:
            web += spent
    return CpuUse(web=web, database=database)


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int  # non-2xx answers, socket errors and timeouts
    client_cpu_seconds: float
    # Answers by HTTP status, when the script reports them (FILE_REQUESTS_SCRIPT does).
    statuses: dict[int, int] = field(default_factory=dict)
    # What serving the window cost the server and the database, where it can be read.
    server_cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request(self) -> float | None:
        """Microseconds of web and database CPU per answered request: unlike the rate, it
        hardly moves when something else on the machine takes a share of the cores."""
        if self.server_cpu is None or not self.requests:
            return None
        return (self.server_cpu.web + self.server_cpu.database) / self.requests * 1e6

    @property
    def client_cpu_share(self) -> float:
        """The share of one core the client used: far below 1.0 means it was not the bottleneck."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian when missing and we may (root, apt-get present)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("  installing wrk (apt-get install -y wrk) ...", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 180}
        if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, **quiet).returncode != 0:  # type: ignore[call-overload]
            subprocess.run(["apt-get", "update"], check=False, **quiet)  # type: ignore[call-overload]
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, **quiet)  # type: ignore[call-overload]
        found = shutil.which("wrk")
    if not found:
        raise BenchError("The live benchmarks need wrk (apt-get install -y wrk).")
    return found


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    headers: dict[str, str],
    tag: str = "",
    script_text: str = WRK_SCRIPT,
    script_args: Sequence[str] | None = None,
) -> LoadResult:
    """POST to `url` for `seconds` from one wrk thread; count what came back.

    By default each request is start-shaped JSON with a distinct userId behind `tag`; another
    Lua script can be given with its own arguments (`script_args`, else `[tag]`).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    command = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", script.name]
    for name, value in {"Content-Type": "application/json", **headers}.items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", *(script_args if script_args is not None else [tag])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = cpu_use()
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        Path(script.name).unlink(missing_ok=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = cpu_use()
    output = finished.stdout
    if finished.returncode != 0:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stderr or output}")
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", output)
    if match is None:
        raise BenchError(f"Cannot read wrk's output:\n{output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(value) for value in socket_errors.groups())
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    statuses = {int(code): int(count) for code, count in re.findall(r"^status (\d+) (\d+)$", output, re.MULTILINE)}
    return LoadResult(
        requests=int(match.group(1)),
        seconds=float(match.group(2)) * scale,
        errors=errors,
        client_cpu_seconds=cpu,
        statuses=statuses,
        server_cpu=server_after - server_before if server_after and server_before else None,
    )
