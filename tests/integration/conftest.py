"""Integration tests against the real services: PostgreSQL, a broker, and a real Celery worker process.

They run whenever DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL are set; CI always sets
them and, with CI set, an unconfigured or unreachable service fails the run instead of
skipping it. The worker is a separate `celery worker` process pointed at the test database
and at a queue of its own, so stray messages of other runs cannot reach it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from kombu import Connection

from tests.gunicorn import GunicornServer
from workbench.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _services_configured() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(os.environ.get("CELERY_BROKER_URL"))


@pytest.fixture(autouse=True)
def _require_services(request: pytest.FixtureRequest) -> Iterator[None]:
    """Service tests send tasks through the real broker (the rest of the suite runs them
    in-process); unconfigured services skip them, or fail them in CI."""
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    if not _services_configured():
        message = "needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL"
        if IN_CI:
            pytest.fail(f"CI must run the service tests: {message}")
        pytest.skip(message)
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


def _database_url(name: str) -> str:
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _broker_reachable() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=5) as broker:
        try:
            broker.ensure_connection(max_retries=2, interval_start=0.5)
        except Exception as error:  # the broker's own errors differ per transport
            pytest.fail(f"The broker at {settings.CELERY_BROKER_URL} is unreachable: {error}")


def service_environment(database_name: str, queue: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker or server process that shares this test run's database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "workbench.settings_test",
        "DATABASE_URL": _database_url(database_name),
        "CELERY_QUEUE": queue,
        # Tests cannot wait the production 30 s for the sweep to consider work stale.
        "SWEEP_STALE_SECONDS": "1",
        "WORKBENCH_TEST_EAGER": "0",
        **overrides,
    }


class WorkerProcess:
    """A `celery worker` subprocess that tests can kill and restart."""

    def __init__(self, queue: str, database_name: str, log_path: Path):
        self.queue = queue
        self.database_name = database_name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = service_environment(self.database_name, self.queue)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "workbench", "worker",
                "-Q", self.queue, "--concurrency", "2", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--hostname", f"test-{self.queue}@%h",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"The Celery worker exited at start-up; see {self.log_path}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        pytest.fail(f"The Celery worker did not become ready in {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as on an out-of-memory kill or a lost machine."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        # The prefork children die with their parent's pipe; make sure none lingers.
        subprocess.run(["pkill", "-9", "-f", f"test-{self.queue}@"], check=False)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    if not _services_configured():
        pytest.fail("celery_worker_process needs DATABASE_URL and CELERY_BROKER_URL") if IN_CI else pytest.skip(
            "needs DATABASE_URL and CELERY_BROKER_URL"
        )
    _broker_reachable()
    queue = f"test-{uuid.uuid4().hex[:10]}"
    celery_app.conf.task_default_queue = queue
    worker = WorkerProcess(queue, connection.settings_dict["NAME"], tmp_path_factory.mktemp("celery") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> bool:
    """Poll until `condition()` holds; the worker runs in another process, so we must wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@pytest.fixture
def api_server(celery_worker_process: WorkerProcess, tmp_path: Path) -> Iterator[Callable[..., GunicornServer]]:
    """Start gunicorn processes; `api_server(CELERY_BROKER_URL="redis://127.0.0.1:1/0")` overrides settings."""
    servers: list[GunicornServer] = []

    def start(**overrides: str) -> GunicornServer:
        env = service_environment(celery_worker_process.database_name, celery_worker_process.queue, **overrides)
        flags = ("--workers", "2", "--threads", "8", "--timeout", "60")
        server = GunicornServer(env, tmp_path / f"gunicorn-{len(servers)}.log", *flags)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
