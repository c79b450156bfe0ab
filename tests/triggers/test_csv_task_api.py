"""The csv-task API (SPEC sections 3 and 6) as an integration calls it: multipart uploads,
progress, cancel; every refusal a 4xx with a code; another environment's credential gets 404."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from flows.models import Invocation
from triggers.csv_tasks import csv_task_stage
from triggers.models import CsvTask

HEADER = "target.usersById,payload.variables.firstName,flowInvocationId\n"


def upload_url(flow: Any, mode: str = "live", env: str = "acme") -> str:
    return f"/api/v1/{env}/action-flow/{flow.pk}/csv-task" + ("/test" if mode == "test" else "")


@pytest.fixture
def upload(django_capture_on_commit_callbacks) -> Any:
    """`upload(client, flow, content)`: POST the file; the task has run when it returns."""

    def post(client: Any, flow: Any, content: str | bytes, mode: str = "live", env: str = "acme", **extra: Any) -> Any:
        data = content.encode() if isinstance(content, str) else content
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                upload_url(flow, mode, env),
                {"file": SimpleUploadedFile("send.csv", data, content_type="text/csv"), **extra},
                format="multipart",
            )

    return post


def test_an_upload_is_answered_202_and_its_progress_read_back(events_a, flow, upload):
    response = upload(events_a, flow, HEADER + "u1,Ann,order-1\n,Bob,\nu3,,\n")

    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert set(data) == {"taskId", "status"}
    progress = events_a.get(f"/api/v1/acme/csv-task/{data['taskId']}")
    assert progress.status_code == 200
    assert progress.json() == {
        "data": {
            "taskId": data["taskId"],
            "status": "completed",
            "rowsTotal": 3,
            "rowsDone": 3,
            "rowsFailed": 1,
            "errors": [
                {"row": 3, "message": "Blank target: target.usersById or a target.attributes.<field> needs a value."}
            ],
        }
    }
    invocation = Invocation.objects.get(flow_invocation_id="order-1")
    assert (invocation.source, invocation.mode, invocation.variables) == ("csv", "live", {"firstName": "Ann"})


def test_a_test_upload_starts_tests(events_a, flow, upload, test_user):
    response = upload(events_a, flow, HEADER + "tester-1,,\n", mode="test")

    assert response.status_code == 202
    assert Invocation.objects.get(flow=flow).mode == "test"


@pytest.mark.parametrize(
    ("content", "code", "status"),
    [
        (b"", "invalid_request", 400),
        (b"target.usersById,colour\nu1,red\n", "invalid_request", 400),
        (b"\xff\xfeu\x00", "invalid_request", 400),
        (b"target.usersById\n", "invalid_request", 400),
    ],
)
def test_a_file_that_cannot_be_read_as_rows_is_refused_with_a_code(events_a, flow, upload, content, code, status):
    response = upload(events_a, flow, content)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert CsvTask.objects.count() == 0


def test_unknown_columns_are_named_in_the_refusal(events_a, flow, upload):
    response = upload(events_a, flow, "target.usersById,colour,payload.variabls.x\nu1,red,1\n")

    assert response.status_code == 400
    assert "'colour'" in response.json()["detail"]
    assert "'payload.variabls.x'" in response.json()["detail"]


def test_a_request_without_a_file_is_refused(events_a, flow):
    response = events_a.post(upload_url(flow), {"other": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "file" in response.json()["errors"]


def test_a_json_body_is_refused_as_the_wrong_media_type(events_a, flow):
    response = events_a.post(upload_url(flow), {"file": "x"}, format="json")

    assert response.status_code == 415


def test_a_live_upload_for_an_unpublished_flow_is_refused(events_a, draft_flow, upload):
    response = upload(events_a, draft_flow, HEADER + "u1,,\n")

    assert response.status_code == 409
    assert response.json()["code"] == "flow_not_published"


def test_an_upload_over_128_mib_is_refused_before_it_is_read(events_a, flow):
    response = events_a.post(
        upload_url(flow),
        b"x",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(128 * 1024 * 1024 + 1),
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_an_upload_over_1_mib_is_staged(events_a, flow):
    rows = "".join(f"user-{index:05d},{'x' * 600},\n" for index in range(2_000))  # ~1.2 MB
    file = SimpleUploadedFile("big.csv", (HEADER + rows).encode(), content_type="text/csv")

    response = events_a.post(upload_url(flow), {"file": file}, format="multipart")  # not run: no commit

    assert response.status_code == 202
    task = CsvTask.objects.get()
    assert (task.rows_total, task.status, task.confirmed_at is not None) == (2_000, "queued", True)


def test_the_same_file_uploaded_twice_starts_keyed_rows_once(events_a, flow, upload):
    content = HEADER + "u1,Ann,k-1\nu2,Bob,k-2\n"

    assert upload(events_a, flow, content).status_code == 202
    assert upload(events_a, flow, content).status_code == 202

    assert Invocation.objects.filter(flow=flow).count() == 2


def test_cancel_answers_the_task(events_a, flow):
    # Staged, not confirmed: it stays queued.
    task = csv_task_stage(
        flow=flow, mode="live", upload=io.BytesIO(b"target.usersById\nu1\n"), file_name="a.csv", by=None, confirm=False
    )

    response = events_a.post(f"/api/v1/acme/csv-task/{task.pk}/cancel")

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"
    assert events_a.post(f"/api/v1/acme/csv-task/{task.pk}/cancel").json()["data"]["status"] == "cancelled"
    assert Invocation.objects.count() == 0


def test_a_cancel_after_the_end_changes_nothing(events_a, flow, upload):
    task_id = upload(events_a, flow, HEADER + "u1,,\n").json()["data"]["taskId"]

    response = events_a.post(f"/api/v1/acme/csv-task/{task_id}/cancel")

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "completed"


def test_another_environments_credential_gets_nothing(events_a, flow, upload, session_with):
    task_id = upload(events_a, flow, HEADER + "u1,,\n").json()["data"]["taskId"]
    outsider = session_with("outsider", "events")

    assert outsider.get(f"/api/v1/acme/csv-task/{task_id}").status_code == 404
    assert outsider.post(f"/api/v1/acme/csv-task/{task_id}/cancel").status_code == 404
    assert upload(outsider, flow, HEADER + "u2,,\n").status_code == 404
    assert upload(outsider, flow, HEADER + "u2,,\n", env="globex").status_code == 404  # not its flow
    assert outsider.get(f"/api/v1/globex/csv-task/{task_id}").status_code == 404
    assert Invocation.objects.count() == 1


@pytest.mark.parametrize("role", ["workbench", "auth"])
def test_only_the_events_role_may_use_csv_tasks(api_client, env_a, events_a, flow, upload, role):
    task_id = upload(events_a, flow, HEADER + "u1,,\n").json()["data"]["taskId"]
    other = api_client(env_a, role)

    assert upload(other, flow, HEADER + "u1,,\n").status_code == 403
    assert other.get(f"/api/v1/acme/csv-task/{task_id}").status_code == 403
    assert other.post(f"/api/v1/acme/csv-task/{task_id}/cancel").status_code == 403


def test_an_unknown_task_is_not_found(events_a):
    assert events_a.get("/api/v1/acme/csv-task/999999").status_code == 404
    assert events_a.get("/api/v1/acme/csv-task/abc").json()["code"] == "not_found"
