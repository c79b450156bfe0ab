"""JSON we cannot keep is a clear 400 at the edge, never a 500 later (issue 9, item 3).

Python's json accepts NaN, Infinity, 1e999 (infinity), lone UTF-16 surrogates (\\ud800) and
U+0000, and its readers fail with RecursionError on deep nesting; PostgreSQL stores none of
them. Every JSON endpoint refuses them with a code: `invalid_json` on the API,
`invalid_payload` (and a request-log entry) on webhooks. Nothing is written.
"""

from __future__ import annotations

import pytest

from customers.models import Customer, TestUser
from flows.models import Flow, Invocation
from triggers.models import WebhookRequest

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000
JUST_TOO_DEEP = '{"targetUserIds": ["u1"], "metadata": ' + "[" * 100 + "]" * 100 + "}"
UNSTORABLE = {
    "nested 1,000 deep": DEEP,
    "nested 101 deep": JUST_TOO_DEEP,
    "NaN": '{"targetUserIds": ["u1"], "variables": {"n": NaN}}',
    "Infinity": '{"targetUserIds": ["u1"], "variables": {"n": -Infinity}}',
    "1e999": '{"targetUserIds": ["u1"], "variables": {"n": 1e999}}',
    "a lone surrogate": '{"targetUserIds": ["u1"], "variables": {"s": "\\ud800"}}',
    "a lone surrogate in a key": '{"targetUserIds": ["u1"], "variables": {"\\udfff": 1}}',
    "an encoded surrogate": b'{"targetUserIds": ["u1"], "variables": {"s": "\xed\xa0\x80"}}',
    "a NUL in a value": '{"targetUserIds": ["u1"], "variables": {"firstName": "A\\u0000B"}}',
    "a NUL in a target": '{"targetUserIds": ["u\\u0000"]}',
    "a NUL in a key": '{"targetUserIds": ["u1"], "metadata": {"k\\u0000": 1}}',
}
CASES = pytest.mark.parametrize("body", UNSTORABLE.values(), ids=UNSTORABLE.keys())


@CASES
def test_a_start_the_database_could_not_keep_is_a_400_and_starts_nothing(events_a, flow, body) -> None:
    for mode in ("start", "test"):
        response = events_a.post(
            f"/api/v1/acme/action-flow/{flow.pk}/{mode}", data=body, content_type="application/json"
        )

        assert response.status_code == 400
        assert response.json()["code"] == "invalid_json"
        assert response.json()["detail"].startswith("The request body could not be parsed")
    assert Invocation.objects.count() == 0


@CASES
def test_a_profile_the_database_could_not_keep_is_refused(events_a, body) -> None:
    single = events_a.put("/api/v1/acme/customers/u1", data=body, content_type="application/json")
    batch = events_a.post("/api/v1/acme/customers", data=body, content_type="application/json")

    assert (single.status_code, single.json()["code"]) == (400, "invalid_json")
    assert (batch.status_code, batch.json()["code"]) == (400, "invalid_json")
    assert not Customer.objects.exists()


@CASES
def test_configuration_endpoints_refuse_it_too(workbench_a, body) -> None:
    flows = workbench_a.post("/api/v1/acme/flows", data=body, content_type="application/json")
    test_users = workbench_a.post("/api/v1/acme/test-users", data=body, content_type="application/json")

    assert (flows.status_code, flows.json()["code"]) == (400, "invalid_json")
    assert (test_users.status_code, test_users.json()["code"]) == (400, "invalid_json")
    assert not Flow.objects.exists()
    assert not TestUser.objects.exists()


@CASES
def test_a_webhook_body_the_database_could_not_keep_is_400_invalid_payload_and_logged(
    post_hook, webhook_trigger, test_user, body
) -> None:
    trigger = webhook_trigger()

    response = post_hook(trigger, body)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_payload")
    assert Invocation.objects.count() == 0
    logged = WebhookRequest.objects.get(trigger=trigger)
    assert (logged.status_code, logged.code) == (400, "invalid_payload")
    assert logged.detail == response.json()["detail"]


def test_the_answer_says_what_was_wrong(events_a, flow) -> None:
    details = {
        name: events_a.post(
            f"/api/v1/acme/action-flow/{flow.pk}/start", data=UNSTORABLE[name], content_type="application/json"
        ).json()["detail"]
        for name in ("nested 1,000 deep", "NaN", "1e999", "a lone surrogate", "a NUL in a value")
    }

    assert "nested deeper than 100 levels" in details["nested 1,000 deep"]
    assert "NaN is not a JSON number" in details["NaN"]
    assert "1e999" in details["1e999"]
    assert "lone UTF-16 surrogate" in details["a lone surrogate"]
    assert "NUL" in details["a NUL in a value"]


def test_ordinary_bodies_still_pass_nesting_to_the_limit_and_emoji_included(events_a, flow, test_user) -> None:
    nested = "[" * 98 + "]" * 98  # with the request object and metadata: 100 levels
    body = '{"targetUserIds": ["%s"], "variables": {"firstName": "\\ud83d\\ude00 Ada"}, "metadata": {"deep": %s}}'

    response = events_a.post(
        f"/api/v1/acme/action-flow/{flow.pk}/test",
        data=body % (test_user.user_id, nested),
        content_type="application/json",
    )

    assert response.status_code == 202, response.json()
    assert Invocation.objects.get().variables == {"firstName": "\U0001f600 Ada"}


def test_an_escaped_backslash_before_u0000_is_not_a_nul(events_a, flow, test_user) -> None:
    body = '{"targetUserIds": ["%s"], "variables": {"firstName": "C:\\\\u0000"}}' % test_user.user_id  # noqa: UP031

    response = events_a.post(f"/api/v1/acme/action-flow/{flow.pk}/test", data=body, content_type="application/json")

    assert response.status_code == 202
    assert Invocation.objects.get().variables == {"firstName": "C:\\u0000"}
