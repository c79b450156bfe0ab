"""How a start's work reaches the workers: sent after the commit, waits resumed by the sweep."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from flows.models import Card, FlowRun, Invocation, InvocationStatus, RunStatus
from tests.flows.conftest import start_url
from workbench import inprocess

pytestmark = pytest.mark.django_db

WAIT_THEN_CARD = [
    {"type": "wait", "seconds": 1},
    {"type": "send_card", "card": {"title": "After the wait", "body": "", "actions": []}},
]


def test_with_a_broker_a_start_sends_one_fan_out_by_name_after_its_commit(
    broker, events_a, flow, django_capture_on_commit_callbacks
):
    body = [{"targetUserIds": ["u1"]}, {"targetUserIds": ["u2"]}]
    with django_capture_on_commit_callbacks() as after_commit:
        response = events_a.post(start_url(flow), body, format="json")
    assert response.status_code == 202
    assert broker.call_count == 0  # nothing is sent for work that could still roll back

    for callback in after_commit:
        callback()
    deadline = time.monotonic() + 5  # the process's publishing thread sends it
    while not broker.call_count and time.monotonic() < deadline:
        time.sleep(0.01)

    ids = sorted(Invocation.objects.values_list("pk", flat=True))
    broker.assert_called_once_with("flows.fan_out_invocations", args=(ids,))


def test_make_run_s_schedule_thread_resumes_a_due_wait_as_beat_would(events_a, make_flow, start_flow):
    """`make run` has no beat: a thread sends beat's schedule, so the sweep resumes the wait."""
    flow = make_flow(name="Wait a second", variables=[], steps=WAIT_THEN_CARD)
    started_at = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=started_at):
        assert start_flow(events_a, flow, {"targetUserIds": ["u1"]}).status_code == 202
    assert (FlowRun.objects.get().status, Card.objects.count()) == (RunStatus.WAITING, 0)
    next_due: dict[str, Any] = {}

    with (
        mock.patch("django.utils.timezone.now", return_value=started_at + timedelta(seconds=1)),
        mock.patch.object(inprocess, "close_old_connections"),
    ):
        inprocess.run_due(next_due, now=0.0)

    assert list(Card.objects.values_list("title", flat=True)) == ["After the wait"]
    assert Invocation.objects.get().status == InvocationStatus.COMPLETED
