"""Hot paths hand their follow-up work to `enqueue_batched`: one message for many items."""

from __future__ import annotations

import threading
import time

import pytest

from workbench import celery as workbench_celery
from workbench.celery import enqueue_batched


class RecordingTask:
    """Stands in for a Celery task: records what it was sent."""

    def __init__(self, name: str, fail: bool = False):
        self.name = name
        self.fail = fail
        self.sent: list[list[int]] = []
        self.sent_event = threading.Event()

    def apply_async(self, args, countdown=None):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(args[0])
        self.sent_event.set()


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_in_eager_mode_the_task_runs_at_once_with_every_item(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    task = RecordingTask("fan-out")

    enqueue_batched(task, [1, 2, 3])

    assert task.sent == [[1, 2, 3]]


def test_nothing_is_sent_for_no_items(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    task = RecordingTask("fan-out")

    enqueue_batched(task, [])

    assert task.sent == []


def test_items_of_several_callers_go_out_as_one_message_per_task():
    batcher = workbench_celery._Batcher()
    fan_out, other = RecordingTask("fan-out"), RecordingTask("other")

    batcher.put(fan_out, [1])
    batcher.put(fan_out, [2, 3])
    batcher.put(other, [9])
    wait_for(lambda: fan_out.sent and other.sent)

    # The thread lingered after the first item, so the rest joined its message.
    assert fan_out.sent == [[1, 2, 3]]
    assert other.sent == [[9]]


def test_a_batch_never_exceeds_the_largest_message(monkeypatch):
    monkeypatch.setattr(workbench_celery, "MAX_BATCH", 2)
    batcher = workbench_celery._Batcher()
    task = RecordingTask("fan-out")

    batcher.put(task, [1, 2, 3, 4, 5])
    wait_for(lambda: sum(len(items) for items in task.sent) == 5)

    assert all(len(items) <= 2 for items in task.sent)
    assert sorted(item for items in task.sent for item in items) == [1, 2, 3, 4, 5]


def test_flush_sends_what_is_queued_in_the_calling_thread():
    batcher = workbench_celery._Batcher()
    task = RecordingTask("fan-out")
    batcher._pid = -1  # no thread has started: only flush can send
    for item in (1, 2):
        batcher._items.put((task, item))

    batcher.flush()

    assert task.sent == [[1, 2]]


def test_a_broker_that_is_down_loses_nothing_but_the_message(caplog):
    """The work is durable in the database; the sweep resends it. The thread keeps going."""
    batcher = workbench_celery._Batcher()
    broken, working = RecordingTask("broken", fail=True), RecordingTask("working")

    batcher.put(broken, [1])
    time.sleep(workbench_celery.BATCH_LINGER_SECONDS * 3)
    batcher.put(working, [2])
    wait_for(lambda: working.sent)

    assert working.sent == [[2]]
    assert "the sweep will retry" in caplog.text


@pytest.mark.parametrize("items", [[1], [1, 2]])
def test_items_given_as_any_iterable_are_sent(settings, items):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    task = RecordingTask("fan-out")

    enqueue_batched(task, iter(items))

    assert task.sent == [items]
