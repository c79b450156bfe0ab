"""CSV bulk sends (SPEC section 6) as the service runs them: staging, the dry run, processing.

Tasks run eagerly: a staged and confirmed task has been processed when
`django_capture_on_commit_callbacks(execute=True)` returns.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from customers.models import Customer
from flows.models import Flow, FlowRun, Invocation
from flows.services import flow_archive
from tests.factories import CustomerFactory
from triggers import csv_tasks
from triggers.csv_tasks import csv_task_cancel, csv_task_dry_run, csv_task_errors_csv, csv_task_stage
from triggers.models import CsvChunk, CsvRowError, CsvTask, CsvTaskStatus
from workbench.errors import Refused

VARIABLES = [
    {"name": "firstName", "default": "there", "required": False},
    {"name": "code", "required": True},
    {"name": "count", "default": 1, "required": False},
]


@pytest.fixture
def coded_flow(make_flow) -> Flow:
    """A published flow with a required variable `code` and a number `count`."""
    return make_flow(name="Coded", variables=VARIABLES)


@pytest.fixture
def stage(django_capture_on_commit_callbacks, owner) -> Callable[..., CsvTask]:
    """`stage(flow, text_or_bytes, mode="live", confirm=True)`: upload; processed on return."""

    def upload(flow: Flow, content: str | bytes, mode: str = "live", confirm: bool = True) -> CsvTask:
        data = content.encode() if isinstance(content, str) else content
        with django_capture_on_commit_callbacks(execute=True):
            task = csv_task_stage(
                flow=flow, mode=mode, upload=io.BytesIO(data), file_name="send.csv", by=owner, confirm=confirm
            )
        task.refresh_from_db()
        return task

    return upload


def errors_of(task: CsvTask) -> dict[int, str]:
    return dict(CsvRowError.objects.filter(task=task).values_list("row", "message"))


def started(flow: Flow) -> dict[str, list[str]]:
    """Each started invocation's key and targets."""
    return dict(Invocation.objects.filter(flow=flow).values_list("flow_invocation_id", "target_user_ids"))


# --- Whole-file refusals: nothing is stored -----------------------------------------------


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "empty"),
        (b"\n\n", "no header"),
        (b"target.usersById,payload.variables.code,colour,size\nu1,A,red,XL\n", "'colour', 'size'"),
        (b"target.usersById,target.usersById\nu1,u2\n", "'target.usersById'"),
        (b"payload.variables.code\nA\n", "no target"),
        (b"target.usersById\n", "no rows"),
        ("target.usersById,payload.variables.code\nJos\xe9,A\n".encode("latin-1"), "not UTF-8"),
        (b'target.usersById\n"u1\n', "not valid CSV"),
    ],
)
def test_a_file_that_cannot_be_read_as_rows_is_refused_whole(stage, coded_flow, content, detail):
    with pytest.raises(Refused) as refused:
        stage(coded_flow, content)

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert detail.lower() in refused.value.detail.lower()
    assert CsvTask.objects.count() == CsvChunk.objects.count() == Invocation.objects.count() == 0


def test_a_live_task_of_an_unpublished_flow_is_refused_at_upload(stage, draft_flow):
    with pytest.raises(Refused) as refused:
        stage(draft_flow, "target.usersById\nu1\n")

    assert (refused.value.status, refused.value.code) == (409, "flow_not_published")
    assert CsvTask.objects.count() == 0


def test_an_archived_flow_takes_no_task(stage, flow):
    flow_archive(flow=flow)

    with pytest.raises(Refused) as refused:
        stage(flow, "target.usersById\nu1\n", mode="test")

    assert (refused.value.status, refused.value.code) == (409, "flow_archived")


def test_a_file_over_the_limit_is_refused(stage, flow, settings):
    settings.CSV_MAX_BODY_BYTES = 20

    with pytest.raises(Refused) as refused:
        stage(flow, "target.usersById\n" + "u1\n" * 10)

    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")


# --- Rows ---------------------------------------------------------------------------------


def test_every_row_starts_once_with_its_payload_and_source(stage, coded_flow, owner):
    task = stage(
        coded_flow,
        "target.usersById,payload.variables.code,payload.variables.count,payload.metadata.campaign,flowInvocationId\n"
        "u1|u2,A1,3,spring,\n"
        "u3,B2,,spring,given-key\n",
    )

    assert (task.status, task.rows_total, task.rows_done, task.rows_failed) == ("completed", 2, 2, 0)
    assert task.target_count == 3
    first = Invocation.objects.get(flow_invocation_id=f"csv-{task.pk}-2")
    assert first.target_user_ids == ["u1", "u2"]
    assert first.variables == {"firstName": "there", "code": "A1", "count": 3}
    assert first.metadata == {"campaign": "spring"}
    assert (first.source, first.started_by_id, first.mode) == ("csv", owner.pk, "live")
    assert Invocation.objects.get(flow_invocation_id="given-key").target_user_ids == ["u3"]
    assert FlowRun.objects.filter(invocation__flow=coded_flow).count() == 3


def test_bad_rows_are_reported_with_their_numbers_and_good_rows_go_ahead(stage, coded_flow):
    task = stage(
        coded_flow,
        "target.usersById,payload.variables.code,payload.variables.count\n"
        "u1,A,1\n"  # 2: good
        ",A,1\n"  # 3: blank target
        "u2,,1\n"  # 4: missing required variable
        "u3,A,many\n"  # 5: malformed number
        "u4|,A,1\n"  # 6: an empty id
        "u5,A\n"  # 7: a cell short
        "\n"  # 8: a blank line is no row
        "u6,C,2\n",  # 9: good
    )

    assert (task.status, task.rows_total, task.rows_done, task.rows_failed) == ("completed", 7, 7, 5)
    errors = errors_of(task)
    assert sorted(errors) == [3, 4, 5, 6, 7]
    assert "Blank target" in errors[3]
    assert errors[4] == "Missing required variable: code."
    assert "'many' is malformed" in errors[5]
    assert "target.usersById" in errors[6]
    assert "2 cells" in errors[7]
    assert sorted(started(coded_flow)) == [f"csv-{task.pk}-2", f"csv-{task.pk}-9"]


def test_attribute_columns_pick_the_customers_whose_fields_all_match(stage, env_a, flow, django_assert_max_num_queries):
    CustomerFactory(environment=env_a, user_id="ann", email="ann@example.com", city="Oslo")
    CustomerFactory(environment=env_a, user_id="ann-2", email="ann@example.com", city="Bergen")
    CustomerFactory(environment=env_a, user_id="bob", email="bob@example.com", custom_fields={"plan": "gold"})
    for index in range(11):
        CustomerFactory(environment=env_a, user_id=f"many-{index}", email=f"m{index}@example.com", city="Rome")

    task = stage(
        flow,
        "target.attributes.email,target.attributes.city,target.attributes.plan\n"
        "ann@example.com,Oslo,\n"  # 2: one of the two Anns
        "bob@example.com,,gold\n"  # 3: a custom field
        "bob@example.com,,silver\n"  # 4: matches nobody
        ",Rome,\n"  # 5: eleven customers
        "ann@example.com,,\n",  # 6: both Anns
    )

    assert started(flow) == {
        f"csv-{task.pk}-2": ["ann"],
        f"csv-{task.pk}-3": ["bob"],
        f"csv-{task.pk}-6": ["ann", "ann-2"],
    }
    errors = errors_of(task)
    assert errors[4].startswith("No customer matches")
    assert errors[5].startswith("11 customers match")
    assert (task.status, task.rows_failed) == ("completed", 2)


def test_attributes_are_looked_up_once_per_chunk_not_per_row(env_a, flow, owner, django_assert_max_num_queries):
    for index in range(50):
        CustomerFactory(environment=env_a, user_id=f"c{index}", email=f"c{index}@example.com")
    content = "target.attributes.email\n" + "".join(f"c{index}@example.com\n" for index in range(50))
    task = csv_task_stage(
        flow=flow, mode="live", upload=io.BytesIO(content.encode()), file_name="x.csv", by=owner, confirm=False
    )

    with django_assert_max_num_queries(4):  # the flow, its version, the chunks, the customers
        dry_run = csv_task_dry_run(task=task)

    assert (dry_run.rows_total, dry_run.rows_failed, dry_run.target_count) == (50, 0, 50)


def test_a_byte_order_mark_and_crlf_lines_are_read_as_any_other_file(stage, flow):
    task = stage(flow, '\ufefftarget.usersById,payload.variables.firstName\r\nu1,"Ann, Jr."\r\nu2,"two\r\nlines"\r\n')

    assert (task.status, task.rows_total, task.rows_failed) == ("completed", 2, 0)
    assert Invocation.objects.get(flow_invocation_id=f"csv-{task.pk}-3").variables["firstName"] == "two\r\nlines"


def test_a_key_reused_with_other_content_fails_its_row_only(stage, coded_flow):
    stage(coded_flow, "target.usersById,payload.variables.code,flowInvocationId\nu1,A,order-1\n")

    task = stage(coded_flow, "target.usersById,payload.variables.code,flowInvocationId\nu1,B,order-1\nu2,C,order-2\n")

    assert errors_of(task)[2].startswith("flowInvocationId 'order-1' was already used with different content")
    assert sorted(started(coded_flow)) == ["order-1", "order-2"]
    assert (task.status, task.rows_done, task.rows_failed) == ("completed", 2, 1)


def test_the_same_file_uploaded_twice_starts_rows_with_a_key_once(stage, coded_flow):
    content = "target.usersById,payload.variables.code,flowInvocationId\nu1,A,k-1\nu2,B,k-2\nu3,C,\n"

    first, second = stage(coded_flow, content), stage(coded_flow, content)

    assert (first.status, second.status) == ("completed", "completed")
    assert second.rows_failed == 0
    # k-1 and k-2 once; the keyless row is a new start of each task.
    assert sorted(started(coded_flow)) == sorted(["k-1", "k-2", f"csv-{first.pk}-4", f"csv-{second.pk}-4"])


def test_a_test_task_delivers_to_test_users_only(stage, flow, test_user):
    task = stage(flow, "target.usersById\ntester-1|stranger\n", mode="test")

    invocation = Invocation.objects.get(flow=flow)
    assert (invocation.mode, invocation.target_user_ids, invocation.ignored_user_ids) == (
        "test",
        ["tester-1"],
        ["stranger"],
    )
    assert task.status == "completed"


def test_rows_span_chunks_and_keep_their_numbers(stage, coded_flow, monkeypatch):
    monkeypatch.setattr(csv_tasks, "CHUNK_ROWS", 3)
    rows = "".join(f"u{index},{'' if index == 5 else 'A'}\n" for index in range(8))

    task = stage(coded_flow, "target.usersById,payload.variables.code\n" + rows)

    assert CsvChunk.objects.filter(task=task).count() == 3
    assert (task.rows_total, task.rows_done, task.rows_failed, task.next_chunk) == (8, 8, 1, 3)
    assert list(errors_of(task)) == [7]  # u5 is the file's 7th row
    assert len(started(coded_flow)) == 7


# --- Confirming, cancelling, resuming -----------------------------------------------------


def test_nothing_starts_before_the_task_is_confirmed(stage, coded_flow, django_capture_on_commit_callbacks, owner):
    task = stage(coded_flow, "target.usersById,payload.variables.code\nu1,A\n,B\nu3,\n", confirm=False)

    dry_run = csv_task_dry_run(task=task)

    assert Invocation.objects.count() == 0
    assert (task.status, dry_run.rows_total, dry_run.rows_failed, dry_run.target_count) == ("queued", 3, 2, 1)
    assert dry_run.sample == [
        {
            "row": 2,
            "targetUserIds": ["u1"],
            "flowInvocationId": f"csv-{task.pk}-2",
            "variables": {"code": "A"},
            "notificationDetail": {},
            "metadata": {},
            "cardOptions": {},
        }
    ]
    assert [(error.row, error.message) for error in dry_run.errors] == [
        (3, "Blank target: target.usersById or a target.attributes.<field> needs a value."),
        (4, "Missing required variable: code."),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        csv_tasks.csv_task_confirm(task=task, by=owner)
    task.refresh_from_db()
    assert (task.status, len(started(coded_flow))) == ("completed", 1)


def test_a_long_task_hands_itself_on_between_slices_and_resumes_where_it_was(
    stage, coded_flow, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(csv_tasks, "CHUNK_ROWS", 2)
    task = stage(coded_flow, "target.usersById,payload.variables.code\n" + "u,A\n" * 6, confirm=False)
    CsvTask.objects.filter(pk=task.pk).update(confirmed_at=task.created_at)
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(csv_tasks, "enqueue", lambda name, task_id: sent.append((name, task_id)))

    # A slice that is over after its first chunk: one chunk, then the task is sent on.
    with django_capture_on_commit_callbacks(execute=True):
        assert csv_tasks.csv_task_run(task_id=task.pk, slice_seconds=0) == "continues"

    task.refresh_from_db()
    assert (task.status, task.rows_done, task.next_chunk, task.lease_until) == ("running", 2, 1, None)
    assert sent == [("triggers.run_csv_task", task.pk)]
    later = timezone.now() + timedelta(minutes=5)
    assert csv_tasks.csv_tasks_to_resend(now=later) == [task.pk]  # should that message be lost
    assert csv_tasks.csv_task_run(task_id=task.pk) == "completed"  # the next message resumes
    task.refresh_from_db()
    assert (task.status, task.rows_done) == ("completed", 6)
    assert sorted(started(coded_flow)) == [f"csv-{task.pk}-{row}" for row in range(2, 8)]


def test_a_dry_run_is_kept_on_the_task_and_a_lost_one_is_asked_for_again(stage, coded_flow):
    task = stage(coded_flow, "target.usersById,payload.variables.code\nu1,A\n,B\n", confirm=False)
    CsvTask.objects.filter(pk=task.pk).update(dry_run=None, dry_run_rows=0)  # as if its message was lost

    later = timezone.now() + timedelta(minutes=2)
    assert csv_tasks.csv_checks_to_resend(now=later) == [task.pk]
    assert csv_tasks.csv_checks_to_resend() == []  # just uploaded: its worker may be on it
    csv_tasks.csv_task_check(task_id=task.pk)

    task.refresh_from_db()
    assert (task.dry_run_rows, task.dry_run["rowsTotal"], task.dry_run["rowsFailed"]) == (2, 2, 1)
    assert task.dry_run["errors"] == [{"row": 3, "message": task.dry_run["errors"][0]["message"]}]
    assert csv_tasks.csv_checks_to_resend(now=later) == []
    assert Invocation.objects.count() == 0  # a dry run starts nothing


def test_a_cancelled_task_starts_no_further_row(stage, coded_flow, monkeypatch):
    monkeypatch.setattr(csv_tasks, "CHUNK_ROWS", 2)
    task = stage(coded_flow, "target.usersById,payload.variables.code\n" + "u,A\n" * 6, confirm=False)
    real_run_chunk = csv_tasks._run_chunk

    def cancel_after_first_chunk(task_: CsvTask, *args: Any, **kwargs: Any) -> None:
        real_run_chunk(task_, *args, **kwargs)
        if CsvTask.objects.get(pk=task_.pk).next_chunk == 1:
            csv_task_cancel(task=task_)

    monkeypatch.setattr(csv_tasks, "_run_chunk", cancel_after_first_chunk)
    CsvTask.objects.filter(pk=task.pk).update(confirmed_at=task.created_at)

    assert csv_tasks.csv_task_run(task_id=task.pk) == "stopped"

    task.refresh_from_db()
    assert (task.status, task.rows_done) == ("cancelled", 2)
    assert sorted(started(coded_flow)) == [f"csv-{task.pk}-2", f"csv-{task.pk}-3"]


def test_a_cancel_committed_during_a_chunk_rolls_the_chunk_back(stage, coded_flow, monkeypatch):
    task = stage(coded_flow, "target.usersById,payload.variables.code\n" + "u,A\n" * 250, confirm=False)
    CsvTask.objects.filter(pk=task.pk).update(confirmed_at=task.created_at)
    real_accept = csv_tasks._accept_batch

    def cancel_during_second_batch(task_: CsvTask, *args: Any) -> Any:
        answer = real_accept(task_, *args)
        CsvTask.objects.filter(pk=task_.pk).update(status=CsvTaskStatus.CANCELLED)
        return answer

    monkeypatch.setattr(csv_tasks, "_accept_batch", cancel_during_second_batch)

    assert csv_tasks.csv_task_run(task_id=task.pk) == "stopped"
    assert Invocation.objects.count() == 0


def test_a_worker_that_died_leaves_the_task_to_resume_where_it_was(stage, coded_flow, monkeypatch):
    monkeypatch.setattr(csv_tasks, "CHUNK_ROWS", 2)
    task = stage(coded_flow, "target.usersById,payload.variables.code\n" + "u,A\n" * 5, confirm=False)
    CsvTask.objects.filter(pk=task.pk).update(confirmed_at=task.created_at)
    real_run_chunk = csv_tasks._run_chunk

    def die_in_second_chunk(task_: CsvTask, flow_: Any, columns: Any, number: int, *args: Any, **kwargs: Any):
        if number == 1:
            raise SystemExit("killed")
        return real_run_chunk(task_, flow_, columns, number, *args, **kwargs)

    monkeypatch.setattr(csv_tasks, "_run_chunk", die_in_second_chunk)
    with pytest.raises(SystemExit):
        csv_tasks.csv_task_run(task_id=task.pk)
    monkeypatch.setattr(csv_tasks, "_run_chunk", real_run_chunk)

    assert csv_tasks.csv_task_run(task_id=task.pk) == "not claimed"  # the lease still holds
    CsvTask.objects.filter(pk=task.pk).update(lease_until=task.created_at)  # it expired
    assert csv_tasks.csv_tasks_to_resend() == [task.pk]
    assert csv_tasks.csv_task_run(task_id=task.pk) == "completed"

    task.refresh_from_db()
    assert (task.status, task.rows_done, task.rows_failed) == ("completed", 5, 0)
    assert sorted(started(coded_flow)) == sorted(f"csv-{task.pk}-{row}" for row in range(2, 7))
    assert csv_tasks.csv_tasks_to_resend() == []


def test_a_flow_archived_while_the_task_waits_fails_the_task(stage, flow):
    task = stage(flow, "target.usersById\nu1\n", confirm=False)
    flow_archive(flow=flow)
    CsvTask.objects.filter(pk=task.pk).update(confirmed_at=task.created_at)

    assert csv_tasks.csv_task_run(task_id=task.pk) == "failed"

    task.refresh_from_db()
    assert task.status == "failed"
    assert "flow_archived" in task.last_error
    assert Invocation.objects.count() == 0


# --- The error report ---------------------------------------------------------------------


def test_the_error_report_cannot_run_as_a_formula(stage, coded_flow):
    task = stage(coded_flow, "target.usersById,payload.variables.code,payload.variables.count\n=cmd,A,@SUM(1)\n")

    report = "".join(csv_task_errors_csv(task=task))

    assert report.startswith("row,message\r\n2,")
    assert "'=cmd" not in report  # the id is not in the message; the message starts with the field
    lines = report.splitlines()
    assert lines[1].split(",", 1)[1].startswith("payload.variables.count")


def test_an_error_message_that_looks_like_a_formula_is_quoted():
    assert csv_tasks._formula_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_tasks._formula_safe("-1") == "'-1"
    assert csv_tasks._formula_safe("Row fine") == "Row fine"


def test_customers_are_not_created_by_a_dry_run(stage, flow):
    task = stage(flow, "target.usersById\nnew-1\n", confirm=False)

    csv_task_dry_run(task=task)

    assert Customer.objects.count() == 0
