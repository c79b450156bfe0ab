"""The test sender (SPEC section 6): a batch of test starts as JSON or CSV rows, each sent on
its own, with per-row results: what started, which ids were ignored (not test users), what
was refused."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from flows.models import Invocation
from tests.factories import TestUserFactory
from triggers.models import CsvTask


def url(flow: Any) -> str:
    return f"/e/acme/flows/{flow.pk}/triggers/test-sender"


def send_json(client: Any, flow: Any, body: Any, capture: Any) -> Any:
    with capture(execute=True):
        return client.post(url(flow), {"json": json.dumps(body) if not isinstance(body, str) else body})


def test_the_testing_tab_links_to_the_test_sender(login, editor, flow) -> None:
    html = login(editor).get(f"/e/acme/flows/{flow.pk}/testing/").content.decode()

    assert f'href="{url(flow)}"' in html


def test_the_page_names_the_test_users_and_shows_an_example(login, editor, flow, test_user) -> None:
    html = login(editor).get(url(flow)).content.decode()

    assert "<code>tester-1</code>" in html
    assert "targetUserIds" in html


def test_each_row_says_what_started_and_what_was_ignored(
    login, editor, flow, test_user, django_capture_on_commit_callbacks
) -> None:
    body = [
        {"targetUserIds": ["tester-1", "stranger"], "flowInvocationId": "batch-1"},
        {"targetUserIds": []},  # invalid: the whole batch is refused, as the API would
    ]
    refused = send_json(login(editor), flow, body, django_capture_on_commit_callbacks)
    assert refused.status_code == 400
    assert "Nothing was sent." in refused.content.decode()
    assert Invocation.objects.count() == 0

    response = send_json(login(editor), flow, body[:1], django_capture_on_commit_callbacks)

    html = response.content.decode()
    invocation = Invocation.objects.get()
    assert response.status_code == 200
    assert invocation.source == "test-sender"
    assert invocation.started_by == editor
    assert invocation.mode == "test"
    assert "1 of 1 started" in html
    row = html[html.index('id="result-row-1"') :]
    assert "<code>tester-1</code>" in row.split("</td>")[2]
    assert "<code>stranger</code>" in row.split("</td>")[3]
    assert f'href="/e/acme/flows/invocations/{invocation.pk}/"' in row


def test_a_refused_row_does_not_keep_the_others_from_starting(
    login, editor, make_flow, test_user, django_capture_on_commit_callbacks
) -> None:
    needy = make_flow(name="Needs a name", variables=[{"name": "firstName", "required": True}])
    body = [
        {"targetUserIds": ["tester-1"], "variables": {"firstName": "Tess"}},
        {"targetUserIds": ["tester-1"]},
    ]

    html = send_json(login(editor), needy, body, django_capture_on_commit_callbacks).content.decode()

    assert "1 of 2 started" in html
    assert "1 refused" in html
    assert "Missing required variable: firstName" in html
    assert Invocation.objects.count() == 1


def test_a_repeated_key_starts_nothing_again(login, editor, flow, test_user, django_capture_on_commit_callbacks):
    body = {"targetUserIds": ["tester-1"], "flowInvocationId": "same-key"}
    client = login(editor)
    send_json(client, flow, body, django_capture_on_commit_callbacks)

    html = send_json(client, flow, body, django_capture_on_commit_callbacks).content.decode()

    assert "duplicate" in html
    assert "0 of 1 started" in html
    assert Invocation.objects.count() == 1


def test_text_that_is_not_json_says_so(login, editor, flow, django_capture_on_commit_callbacks) -> None:
    response = send_json(login(editor), flow, "{not json", django_capture_on_commit_callbacks)

    assert response.status_code == 400
    assert "This is not JSON" in response.content.decode()


def test_nothing_given_asks_for_json_or_a_file(login, editor, flow) -> None:
    response = login(editor).post(url(flow), {"json": ""})

    assert response.status_code == 400
    assert "Paste start requests as JSON, or choose a CSV file." in response.content.decode()


def test_csv_rows_are_sent_as_tests_with_their_row_numbers(
    login, editor, flow, env_a, test_user, django_capture_on_commit_callbacks
) -> None:
    TestUserFactory(environment=env_a, user_id="tester-2")
    text = "target.usersById,payload.variables.firstName\ntester-1,Ada\n,Nobody\ntester-2|stranger,Bob\n"
    csv_file = SimpleUploadedFile("tests.csv", text.encode(), content_type="text/csv")

    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(url(flow), {"file": csv_file})

    html = response.content.decode()
    assert response.status_code == 200
    assert "2 of 3 started" in html
    assert 'id="result-row-2"' in html
    row_3 = html[html.index('id="result-row-3"') : html.index('id="result-row-4"')]
    assert "Refused" in row_3
    row_4 = html[html.index('id="result-row-4"') :]
    assert "<code>stranger</code>" in row_4
    assert Invocation.objects.filter(source="test-sender").count() == 2
    assert CsvTask.objects.count() == 0  # the file was only read: no CSV send is left behind


def test_a_viewer_cannot_send_tests(login, viewer, flow, test_user) -> None:
    client = login(viewer)

    assert "Editors and owners send tests" in client.get(url(flow)).content.decode()
    assert client.post(url(flow), {"json": '{"targetUserIds": ["tester-1"]}'}).status_code == 403
    assert Invocation.objects.count() == 0


def test_an_outsider_gets_nothing(login, outsider, flow) -> None:
    client = login(outsider)

    assert client.get(url(flow)).status_code == 404
    assert client.post(url(flow), {"json": '{"targetUserIds": ["tester-1"]}'}).status_code == 404
