"""Work is sent one way: by task name, never failing the caller (the sweep is the net)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings

from workbench import celery as workbench_celery
from workbench import inprocess
from workbench.celery import app, enqueue, enqueue_items
from workbench.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_with_a_broker_the_task_is_published_by_name(broker):
    assert enqueue("flows.fan_out_invocations", [1, 2]) is True

    broker.assert_called_once_with("flows.fan_out_invocations", args=([1, 2],))


def test_a_broker_that_is_down_fails_nobody_and_leaves_the_work_to_the_sweep(broker, caplog):
    broker.side_effect = ConnectionError("broker down")

    assert enqueue("flows.fan_out_invocations", [1]) is False

    assert "the sweep will retry" in caplog.text


def test_without_a_broker_the_named_task_runs_at_once():
    assert enqueue("workbench.record_worker_heartbeat", "in-process") is True

    assert WorkerHeartbeat.objects.filter(hostname="in-process").exists()


def test_without_a_broker_a_failing_task_is_logged_and_the_caller_goes_on(caplog):
    with mock.patch("flows.services.flows_sweep", side_effect=RuntimeError("boom")):
        assert enqueue("flows.sweep") is False

    assert "the sweep will retry" in caplog.text


def test_the_removed_one_invocation_task_is_no_longer_registered():
    """A message of it still queued is rejected by a worker; the sweep fans its start out."""
    app.loader.import_default_modules()

    assert "flows.fan_out_invocations" in app.tasks
    assert "flows.fan_out_invocation" not in app.tasks


def test_services_never_import_tasks():
    """Tasks import services; a service names the task it sends instead of importing it."""
    code = (
        "import sys, django; django.setup(); import flows.services, customers.services, triggers.services; "
        "print(sorted(name for name in sys.modules if name.endswith('.tasks') and not name.startswith('asyncio')))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "workbench.settings_test", "PATH": "/usr/bin:/bin"}
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "[]"
    for services in ROOT.glob("*/services.py"):
        assert ".tasks" not in services.read_text(), services


def test_the_in_process_schedule_sends_each_entry_when_it_is_due():
    next_due: dict[str, float] = {}

    with mock.patch.object(inprocess, "enqueue") as sent, mock.patch.object(inprocess, "close_old_connections"):
        inprocess.run_due(next_due, now=100.0)
        inprocess.run_due(next_due, now=100.5)

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {"flows-sweep", "segments-sweep"} <= set(schedule)
    # Each entry once, at the first tick; at the second (half a second on) only what is due again.
    assert [call.args for call in sent.call_args_list] == [(entry["task"],) for entry in schedule.values()]
    assert next_due == {name: 100.0 + float(entry["schedule"]) for name, entry in schedule.items()}


# A request's items go out through the publishing thread (enqueue_items) ---------------------


class RecordingBroker:
    """Stands in for publishing: records each message per task name (`enqueue`'s send_task)."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing
        self.sent: dict[str, list[list[int]]] = {}

    def send_task(self, task_name: str, args: tuple[Any, ...]) -> None:
        if task_name in self.failing:
            raise ConnectionError("broker down")
        self.sent.setdefault(task_name, []).append(args[0])


@pytest.fixture
def recording_broker() -> Iterator[RecordingBroker]:
    recorded = RecordingBroker()
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        with mock.patch.object(app, "send_task", side_effect=recorded.send_task):
            yield recorded
    finally:
        app.conf.task_always_eager = eager


def wait_for(condition: Callable[[], Any], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_without_a_broker_a_requests_items_are_handled_at_once(monkeypatch):
    ran: list[list[int]] = []
    monkeypatch.setattr(workbench_celery, "enqueue", lambda name, items: ran.append(items))

    enqueue_items("flows.fan_out_invocations", iter([1, 2, 3]))
    enqueue_items("flows.fan_out_invocations", [])

    assert ran == [[1, 2, 3]]


def test_items_of_several_requests_go_out_as_one_message_per_task(recording_broker):
    publisher = workbench_celery._Publisher()

    publisher.put("flows.fan_out_invocations", [1])
    publisher.put("flows.fan_out_invocations", [2, 3])
    publisher.put("other", [9])
    wait_for(lambda: len(recording_broker.sent) == 2)

    # The thread lingered after the first item, so the rest joined its message.
    assert recording_broker.sent == {"flows.fan_out_invocations": [[1, 2, 3]], "other": [[9]]}


def test_a_message_never_exceeds_the_largest_batch(monkeypatch, recording_broker):
    monkeypatch.setattr(workbench_celery, "MAX_BATCH", 2)
    publisher = workbench_celery._Publisher()

    publisher.put("flows.fan_out_invocations", [1, 2, 3, 4, 5])
    wait_for(lambda: sum(map(len, recording_broker.sent.get("flows.fan_out_invocations", []))) == 5)

    messages = recording_broker.sent["flows.fan_out_invocations"]
    assert all(len(items) <= 2 for items in messages)
    assert sorted(item for items in messages for item in items) == [1, 2, 3, 4, 5]


def test_flush_at_exit_sends_what_is_queued(recording_broker):
    publisher = workbench_celery._Publisher()
    publisher._pid = os.getpid()  # as if its thread ran: only flush can send
    for item in (1, 2):
        publisher._items.put(("flows.fan_out_invocations", item))

    publisher.flush()

    assert recording_broker.sent == {"flows.fan_out_invocations": [[1, 2]]}


def test_a_broker_that_is_down_costs_the_message_only(recording_broker, caplog):
    """The work is durable in the database; the sweep sends it again. The thread goes on."""
    recording_broker.failing = ("broken",)
    publisher = workbench_celery._Publisher()

    publisher.put("broken", [1])
    time.sleep(workbench_celery.BATCH_LINGER_SECONDS * 3)
    publisher.put("flows.fan_out_invocations", [2])
    wait_for(lambda: recording_broker.sent)

    assert recording_broker.sent == {"flows.fan_out_invocations": [[2]]}
    assert "the sweep will retry" in caplog.text
