"""CSV bulk sends in the Workbench (SPEC section 6): upload from the flow's page, the dry run
before anything starts, confirm, progress with cancel and the error report, the list of past
sends; who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from flows.models import Invocation
from tests.factories import CustomerFactory
from triggers import csv_tasks
from triggers.models import CsvTask, CsvTaskStatus

GOOD = "target.usersById,payload.variables.firstName\nde-1,Ada\n,Nobody\nde-2|de-3,Bob\n"


@pytest.fixture
def customers(env_a) -> None:
    for user_id in ("de-1", "de-2", "de-3"):
        CustomerFactory(environment=env_a, user_id=user_id)


def upload(client: Any, flow: Any, text: str = GOOD, mode: str = "live") -> Any:
    """Upload as the page does; the dry run a worker makes after the commit is made here."""
    csv_file = SimpleUploadedFile("march.csv", text.encode(), content_type="text/csv")
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(f"/e/acme/flows/{flow.pk}/triggers/csv/", {"mode": mode, "file": csv_file})


def test_while_a_worker_checks_the_rows_the_page_shows_its_progress_and_polls(login, editor, flow) -> None:
    client = login(editor)
    csv_file = SimpleUploadedFile("march.csv", GOOD.encode(), content_type="text/csv")
    client.post(f"/e/acme/flows/{flow.pk}/triggers/csv/", {"mode": "live", "file": csv_file})  # no worker yet
    task = CsvTask.objects.get()

    checking = client.get(task_url(task)).content.decode()
    csv_tasks.csv_task_check(task_id=task.pk)  # the worker
    polled = client.get(task_url(task), HTTP_HX_REQUEST="true").content.decode()

    assert "Checking every row before anything starts" in checking
    assert 'hx-trigger="every 1s"' in checking
    assert 'id="csv-confirm"' not in checking  # nothing to confirm before the dry run is there
    assert "Dry run: nothing has started" in polled
    assert 'hx-trigger="every 1s"' not in polled
    assert 'id="csv-confirm"' in polled


def task_url(task: CsvTask, tail: str = "") -> str:
    return f"/e/acme/triggers/csv/{task.pk}/{tail}"


def test_the_flow_page_offers_a_csv_send(login, editor, flow) -> None:
    html = login(editor).get(f"/e/acme/flows/{flow.pk}/").content.decode()

    assert f'href="/e/acme/flows/{flow.pk}/triggers/csv/"' in html
    assert "Send with a CSV" in html


def test_the_upload_page_explains_the_columns_and_has_no_sends_yet(login, editor, flow) -> None:
    html = login(editor).get(f"/e/acme/flows/{flow.pk}/triggers/csv/").content.decode()

    assert "target.usersById" in html
    assert "payload.variables.firstName" in html
    assert "No CSV sends yet" in html


def test_an_unpublished_flow_offers_only_a_test(login, editor, draft_flow) -> None:
    client = login(editor)
    html = client.get(f"/e/acme/flows/{draft_flow.pk}/triggers/csv/").content.decode()
    response = upload(client, draft_flow, mode="live")

    assert 'value="live" disabled' in html
    assert response.status_code == 409
    assert "publish it first" in response.content.decode()
    assert CsvTask.objects.count() == 0


def test_an_upload_shows_its_dry_run_and_starts_nothing(login, editor, flow, customers) -> None:
    client = login(editor)
    response = upload(client, flow)

    task = CsvTask.objects.get()
    assert response.status_code == 302
    assert response["Location"] == task_url(task)
    html = client.get(task_url(task)).content.decode()
    assert "Dry run: nothing has started" in html
    assert 'id="dry-rows">3<' in html
    assert 'id="dry-targets">3<' in html  # de-1, then de-2 and de-3
    assert 'id="dry-errors">1<' in html
    assert "<td>3</td>" in html  # the row in error, by its file row number (the header is row 1)
    assert "&quot;firstName&quot;: &quot;Ada&quot;" in html
    assert "Start 2 rows" in html
    assert Invocation.objects.count() == 0
    assert task.confirmed_at is None


def test_a_whole_file_refusal_names_what_is_wrong(login, editor, flow) -> None:
    response = upload(login(editor), flow, text="target.usersById,favouriteColour\nde-1,red\n")

    html = response.content.decode()
    assert response.status_code == 400
    assert "Not uploaded." in html
    assert "favouriteColour" in html


def test_a_file_that_is_not_utf8_is_refused(login, editor, flow) -> None:
    csv_file = SimpleUploadedFile("latin.csv", "target.usersById\nJos\xe9\n".encode("latin-1"))
    response = login(editor).post(f"/e/acme/flows/{flow.pk}/triggers/csv/", {"mode": "live", "file": csv_file})

    assert response.status_code == 400
    assert "UTF-8" in response.content.decode()


def test_confirming_starts_the_good_rows_and_shows_progress_and_errors(
    login, editor, flow, customers, django_capture_on_commit_callbacks
) -> None:
    client = login(editor)
    upload(client, flow)
    task = CsvTask.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(task_url(task, "confirm"))
    page = client.get(task_url(task)).content.decode()
    fragment = client.get(task_url(task), HTTP_HX_REQUEST="true").content.decode()
    report = client.get(task_url(task, "errors.csv"))

    task.refresh_from_db()
    assert response.status_code == 302
    assert task.status == CsvTaskStatus.COMPLETED
    assert Invocation.objects.filter(source="csv", started_by=editor).count() == 2
    assert 'id="csv-done">3<' in page
    assert 'id="csv-failed">1<' in page
    assert "Download the error report" in page
    assert "<html" not in fragment
    assert 'hx-trigger="every 1s"' not in fragment  # done: it stops polling
    assert report["Content-Type"].startswith("text/csv")
    body = b"".join(report.streaming_content).decode()
    assert body.startswith("row,message")
    assert "3," in body


def test_a_confirmed_send_polls_and_can_be_cancelled(login, editor, flow, customers) -> None:
    client = login(editor)
    upload(client, flow)
    task = CsvTask.objects.get()
    client.post(task_url(task, "confirm"))  # no commit callbacks: no worker has it yet

    page = client.get(task_url(task)).content.decode()
    response = client.post(task_url(task, "cancel"))

    task.refresh_from_db()
    assert 'hx-trigger="every 1s"' in page
    assert "Cancel send" in page
    assert response.status_code == 302
    assert task.status == CsvTaskStatus.CANCELLED
    assert Invocation.objects.count() == 0


def test_past_csv_sends_are_listed_with_who_when_counts_and_status(login, editor, flow, customers) -> None:
    client = login(editor)
    upload(client, flow)

    html = client.get("/e/acme/triggers/csv/").content.decode()

    assert "march.csv" in html
    assert "edward" in html
    assert "awaiting confirmation" in html
    assert flow.name in html


def test_a_viewer_sees_but_cannot_upload_or_confirm(login, viewer, editor, flow, customers) -> None:
    upload(login(editor), flow)
    task = CsvTask.objects.get()
    client = login(viewer)

    page = client.get(f"/e/acme/flows/{flow.pk}/triggers/csv/").content.decode()

    assert "Editors and owners send flows with a CSV" in page
    assert upload(client, flow).status_code == 403
    assert client.post(task_url(task, "confirm")).status_code == 403
    assert client.post(task_url(task, "cancel")).status_code == 403
    assert client.get(task_url(task)).status_code == 200
    assert CsvTask.objects.count() == 1


def test_an_outsider_gets_nothing(login, outsider, editor, flow, customers) -> None:
    upload(login(editor), flow)
    task = CsvTask.objects.get()
    client = login(outsider)

    assert client.get(f"/e/acme/flows/{flow.pk}/triggers/csv/").status_code == 404
    assert upload(client, flow).status_code == 404
    assert client.get("/e/acme/triggers/csv/").status_code == 404
    for tail in ("", "errors.csv"):
        assert client.get(task_url(task, tail)).status_code == 404
    for tail in ("confirm", "cancel"):
        assert client.post(task_url(task, tail)).status_code == 404
    assert client.get(f"/e/globex/triggers/csv/{task.pk}/").status_code == 404
