"""POST action-flow/{flowId}/start and /test: every rule of the start request (SPEC section 2)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from flows import services
from flows.models import AnalyticsEvent, Card, FlowRun, Invocation, Mode
from tests.factories import CustomerFactory, TestUserFactory
from tests.flows.conftest import row_counts, start_url

pytestmark = pytest.mark.django_db

ONE_MIB = 1024 * 1024


def invocations_of(response) -> list[dict[str, Any]]:
    return response.json()["data"]["invocations"]


def cards_of(user_id: str) -> list[tuple[str, bool]]:
    return list(Card.objects.filter(user_id=user_id).order_by("pk").values_list("title", "test"))


def assert_refused(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["detail"]
    return body.get("errors") or {}


# --- the four shapes ----------------------------------------------------------------------

SHAPES = {
    "canonical": {
        "targetUserIds": ["76DHG129387"],
        "flowInvocationId": "6fad5d419180",
        "variables": {"firstName": "Lars"},
    },
    "atomic envelope": {
        "flows": [
            {
                "target": {"usersById": ["76DHG129387"]},
                "flowInvocationId": "6fad5d419180",
                "payload": {"variables": {"firstName": "Lars"}, "metadata": {}, "notificationDetail": {}},
            }
        ]
    },
    "connector": {
        "payload": {
            "target": {"usersById": ["76DHG129387"]},
            "flowInvocationId": "6fad5d419180",
            "detail": {"firstName": "Lars"},
        }
    },
    "array": [
        {"targetUserIds": ["76DHG129387"], "flowInvocationId": "6fad5d419180", "variables": {"firstName": "Lars"}}
    ],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_accepted_shape_starts_the_flow_and_publishes_the_card(events_a, flow, start_flow, shape):
    response = start_flow(events_a, flow, SHAPES[shape])

    assert response.status_code == 202, response.content
    assert invocations_of(response) == [
        {"flowInvocationId": "6fad5d419180", "status": "accepted", "targetCount": 1, "ignoredUserIds": []}
    ]
    assert cards_of("76DHG129387") == [("Hello Lars", False)]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_the_same_start_so_a_repeat_in_another_shape_is_a_duplicate(events_a, flow, start_flow, shape):
    start_flow(events_a, flow, SHAPES["canonical"])

    response = start_flow(events_a, flow, SHAPES[shape])

    assert response.status_code == 200, response.content
    assert invocations_of(response)[0]["status"] == "duplicate"
    assert Invocation.objects.count() == 1


def test_a_batch_starts_each_of_its_starts(events_a, flow, start_flow):
    body = [{"targetUserIds": ["u1", "u2"]}, {"targetUserIds": ["u3"], "variables": {"firstName": "Kim"}}]

    response = start_flow(events_a, flow, body)

    assert response.status_code == 202
    assert [item["targetCount"] for item in invocations_of(response)] == [2, 1]
    assert cards_of("u2") == [("Hello there", False)]
    assert cards_of("u3") == [("Hello Kim", False)]


def test_a_missing_flow_invocation_id_is_generated_and_returned(events_a, flow, start_flow):
    response = start_flow(events_a, flow, {"targetUserIds": ["u1"]})

    [answer] = invocations_of(response)
    assert answer["flowInvocationId"]
    assert Invocation.objects.get().flow_invocation_id == answer["flowInvocationId"]
    assert Card.objects.get().flow_invocation_id == answer["flowInvocationId"]


def test_two_starts_without_a_key_are_two_invocations(events_a, flow, start_flow):
    first = start_flow(events_a, flow, {"targetUserIds": ["u1"]})
    second = start_flow(events_a, flow, {"targetUserIds": ["u1"]})

    assert (first.status_code, second.status_code) == (202, 202)
    assert invocations_of(first)[0]["flowInvocationId"] != invocations_of(second)[0]["flowInvocationId"]
    assert len(cards_of("u1")) == 2


def test_a_user_listed_twice_gets_one_run(events_a, flow, start_flow):
    response = start_flow(events_a, flow, {"targetUserIds": ["u1", "u1"]})

    assert invocations_of(response)[0]["targetCount"] == 1
    assert FlowRun.objects.filter(user_id="u1").count() == 1


# --- invalid requests start nothing -------------------------------------------------------

INVALID = {
    "no targets": ({"targetUserIds": []}, "targetUserIds"),
    "targets missing": ({"variables": {}}, "targetUserIds"),
    "over 1000 targets": ({"targetUserIds": [f"u{i}" for i in range(1001)]}, "targetUserIds"),
    "over 100 starts": ([{"targetUserIds": [f"u{i}"]} for i in range(101)], "request"),
    "targets not a list": ({"targetUserIds": "u1"}, "targetUserIds"),
    "a target not a string": ({"targetUserIds": ["u1", 42]}, "targetUserIds"),
    "variables not an object": ({"targetUserIds": ["u1"], "variables": ["Lars"]}, "variables"),
    "key not a string": ({"targetUserIds": ["u1"], "flowInvocationId": 7}, "flowInvocationId"),
    "unknown field": ({"targetUserIds": ["u1"], "priority": 1}, "priority"),
    "one bad start in a batch": ([{"targetUserIds": ["u1"]}, {"targetUserIds": []}], "1.targetUserIds"),
    "an empty batch": ([], "request"),
    "not an object": ("u1", "request"),
}


@pytest.mark.parametrize("case", INVALID)
@pytest.mark.parametrize("mode", ["live", "test"])
def test_an_invalid_request_is_refused_with_400_and_nothing_is_written(
    events_a, flow, start_flow, test_user, case, mode
):
    body, location = INVALID[case]
    before = row_counts()

    response = start_flow(events_a, flow, body, mode)

    errors = assert_refused(response, 400, "invalid_request")
    assert location in errors, errors
    assert row_counts() == before


def test_malformed_json_is_refused_with_400_and_nothing_is_written(events_a, flow, start_flow):
    before = row_counts()

    response = events_a.post(start_url(flow), '{"targetUserIds": ["u1"', content_type="application/json")

    assert_refused(response, 400, "invalid_json")
    assert row_counts() == before


def test_a_body_over_one_mib_is_refused_with_413_and_nothing_is_written(events_a, flow):
    body = json.dumps({"targetUserIds": ["u1"], "variables": {"firstName": "x" * ONE_MIB}})
    before = row_counts()

    response = events_a.post(start_url(flow), body, content_type="application/json")

    assert_refused(response, 413, "payload_too_large")
    assert row_counts() == before


# --- idempotency --------------------------------------------------------------------------


def test_a_repeat_with_the_same_content_returns_the_original_result_and_starts_nothing(
    events_a, flow, start_flow, test_user
):
    body = {"targetUserIds": ["tester-1", "stranger"], "flowInvocationId": "order-1"}
    first = start_flow(events_a, flow, body, "test")
    before = row_counts()

    repeat = start_flow(events_a, flow, body, "test")

    assert (first.status_code, repeat.status_code) == (202, 200)
    assert invocations_of(repeat) == [
        {"flowInvocationId": "order-1", "status": "duplicate", "targetCount": 1, "ignoredUserIds": ["stranger"]}
    ]
    assert row_counts() == before


def test_a_request_with_some_new_starts_answers_202_and_marks_the_duplicates(events_a, flow, start_flow):
    start_flow(events_a, flow, {"targetUserIds": ["u1"], "flowInvocationId": "a"})

    response = start_flow(
        events_a,
        flow,
        [{"targetUserIds": ["u1"], "flowInvocationId": "a"}, {"targetUserIds": ["u2"], "flowInvocationId": "b"}],
    )

    assert response.status_code == 202
    assert [item["status"] for item in invocations_of(response)] == ["duplicate", "accepted"]
    assert len(cards_of("u1")) == 1
    assert len(cards_of("u2")) == 1


def test_a_repeat_with_other_content_is_refused_with_409_and_starts_nothing(events_a, flow, start_flow):
    start_flow(events_a, flow, {"targetUserIds": ["u1"], "flowInvocationId": "order-1"})
    before = row_counts()

    response = start_flow(
        events_a,
        flow,
        [
            {"targetUserIds": ["u2"], "flowInvocationId": "order-2"},
            {"targetUserIds": ["u1"], "flowInvocationId": "order-1", "variables": {"firstName": "Eve"}},
        ],
    )

    assert_refused(response, 409, "idempotency_mismatch")
    assert row_counts() == before
    assert not Invocation.objects.filter(flow_invocation_id="order-2").exists()


def test_a_repeat_after_the_flow_was_archived_still_returns_the_original_result(events_a, flow, start_flow):
    body = {"targetUserIds": ["u1"], "flowInvocationId": "order-1"}
    start_flow(events_a, flow, body)
    services.flow_archive(flow=flow)
    before = row_counts()

    repeat = start_flow(events_a, flow, body)
    new_key = start_flow(events_a, flow, {**body, "flowInvocationId": "order-2"})

    assert repeat.status_code == 200, repeat.content
    assert invocations_of(repeat) == [
        {"flowInvocationId": "order-1", "status": "duplicate", "targetCount": 1, "ignoredUserIds": []}
    ]
    assert_refused(new_key, 409, "flow_archived")
    assert row_counts() == before


def test_a_repeat_after_a_required_variable_was_published_still_returns_the_original_result(events_a, flow, start_flow):
    body = {"targetUserIds": ["u1"], "flowInvocationId": "order-1"}
    start_flow(events_a, flow, body)
    services.flow_update(flow=flow, variables=[{"name": "firstName", "required": True}])
    services.flow_publish(flow=flow)

    repeat = start_flow(events_a, flow, body)

    assert repeat.status_code == 200, repeat.content
    assert invocations_of(repeat)[0]["status"] == "duplicate"
    assert Invocation.objects.count() == 1


def test_the_same_key_in_test_and_live_modes_are_separate_starts(events_a, flow, start_flow, test_user):
    body = {"targetUserIds": ["tester-1"], "flowInvocationId": "k1"}

    live = start_flow(events_a, flow, body, "live")
    test = start_flow(events_a, flow, body, "test")

    assert (live.status_code, test.status_code) == (202, 202)
    assert sorted(Invocation.objects.values_list("mode", flat=True)) == ["live", "test"]
    assert sorted(cards_of("tester-1"), key=lambda card: card[1]) == [("Hello there", False), ("Hello there", True)]


def test_the_same_key_on_two_flows_are_separate_starts(events_a, flow, make_flow, start_flow):
    other = make_flow(name="Other")
    body = {"targetUserIds": ["u1"], "flowInvocationId": "k1"}

    responses = [start_flow(events_a, flow, body).status_code, start_flow(events_a, other, body).status_code]

    assert responses == [202, 202]
    assert Invocation.objects.count() == 2


# --- the flow decides ---------------------------------------------------------------------


@pytest.fixture
def needs_name(make_flow):
    return make_flow(
        name="Needs a name",
        variables=[{"name": "firstName", "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Hi {{firstName}}"}}],
    )


def test_a_required_variable_without_a_value_or_default_is_refused_and_nothing_is_written(
    events_a, needs_name, start_flow
):
    before = row_counts()

    response = start_flow(events_a, needs_name, {"targetUserIds": ["u1"], "variables": {"other": "x"}})

    errors = assert_refused(response, 400, "missing_variables")
    assert "firstName" in errors["variables"][0]
    assert row_counts() == before


def test_a_batch_with_one_start_missing_a_variable_starts_none_of_them(events_a, needs_name, start_flow):
    before = row_counts()

    response = start_flow(
        events_a, needs_name, [{"targetUserIds": ["u1"], "variables": {"firstName": "Ann"}}, {"targetUserIds": ["u2"]}]
    )

    errors = assert_refused(response, 400, "missing_variables")
    assert list(errors) == ["1.variables"]
    assert row_counts() == before


def test_a_required_variable_given_is_rendered(events_a, needs_name, start_flow):
    response = start_flow(events_a, needs_name, {"targetUserIds": ["u1"], "variables": {"firstName": "Ann"}})

    assert response.status_code == 202
    assert cards_of("u1") == [("Hi Ann", False)]


def test_a_live_start_of_an_unpublished_flow_is_refused_with_409(events_a, draft_flow, start_flow):
    before = row_counts()

    response = start_flow(events_a, draft_flow, {"targetUserIds": ["u1"]})

    assert_refused(response, 409, "flow_not_published")
    assert row_counts() == before


def test_a_test_start_of_an_unpublished_flow_runs_the_draft(events_a, draft_flow, start_flow, test_user):
    response = start_flow(events_a, draft_flow, {"targetUserIds": ["tester-1"]}, "test")

    assert response.status_code == 202
    assert cards_of("tester-1") == [("Hello there", True)]


@pytest.mark.parametrize("mode", ["live", "test"])
def test_an_archived_flow_starts_nothing(events_a, flow, start_flow, test_user, mode):
    services.flow_archive(flow=flow)
    before = row_counts()

    response = start_flow(events_a, flow, {"targetUserIds": ["tester-1"]}, mode)

    assert_refused(response, 409, "flow_archived")
    assert row_counts() == before


def test_test_starts_reach_only_test_users_and_list_the_others_as_ignored(events_a, flow, start_flow, test_user):
    CustomerFactory(environment=flow.environment, user_id="real-customer")

    response = start_flow(events_a, flow, {"targetUserIds": ["real-customer", "tester-1", "nobody"]}, "test")

    assert response.status_code == 202
    assert invocations_of(response)[0]["targetCount"] == 1
    assert invocations_of(response)[0]["ignoredUserIds"] == ["real-customer", "nobody"]
    assert cards_of("tester-1") == [("Hello there", True)]
    assert cards_of("real-customer") == []
    assert cards_of("nobody") == []
    assert not FlowRun.objects.filter(user_id__in=["real-customer", "nobody"]).exists()


def test_another_environments_test_users_are_not_ours(events_a, flow, start_flow, env_b):
    TestUserFactory(environment=env_b, user_id="globex-tester")

    response = start_flow(events_a, flow, {"targetUserIds": ["globex-tester"]}, "test")

    assert invocations_of(response)[0]["ignoredUserIds"] == ["globex-tester"]
    assert cards_of("globex-tester") == []


def test_a_test_start_uses_the_draft_and_a_live_start_the_published_version(
    events_a, workbench_a, flow, start_flow, test_user
):
    new_steps = [{"type": "send_card", "card": {"title": "Draft text"}}]
    assert workbench_a.patch(f"/api/v1/acme/flows/{flow.pk}", {"steps": new_steps}, format="json").status_code == 200

    start_flow(events_a, flow, {"targetUserIds": ["tester-1"], "flowInvocationId": "live"}, "live")
    start_flow(events_a, flow, {"targetUserIds": ["tester-1"], "flowInvocationId": "test"}, "test")

    feed = {card["flowInvocationId"]: card for card in events_a.get("/api/v1/acme/users/tester-1/cards").json()["data"]}
    assert (feed["live"]["title"], feed["live"]["test"]) == ("Hello there", False)
    assert (feed["test"]["title"], feed["test"]["test"]) == ("Draft text", True)


def test_a_live_start_uses_the_latest_of_several_published_versions(events_a, flow, start_flow):
    services.flow_update(flow=flow, steps=[{"type": "send_card", "card": {"title": "Version two"}}])
    services.flow_publish(flow=flow)

    start_flow(events_a, flow, {"targetUserIds": ["u1"]})

    assert cards_of("u1") == [("Version two", False)]
    assert Card.objects.get().version_number == 2


def test_a_live_start_to_an_unknown_user_creates_a_minimal_profile(events_a, flow, start_flow, env_a):
    CustomerFactory(environment=env_a, user_id="known", name="Known Person")

    start_flow(events_a, flow, {"targetUserIds": ["known", "brand-new"]})

    new = Customer.objects.get(environment=env_a, user_id="brand-new")
    assert (new.name, new.email, new.tags, new.custom_fields) == (None, None, [], {})
    assert Customer.objects.get(environment=env_a, user_id="known").name == "Known Person"
    assert Customer.objects.filter(environment=env_a).count() == 2


def test_a_test_start_creates_no_profile(events_a, flow, start_flow, test_user):
    start_flow(events_a, flow, {"targetUserIds": ["tester-1", "stranger"]}, "test")

    assert not Customer.objects.exists()


def test_a_start_remembers_who_started_it(events_a, flow, start_flow):
    start_flow(events_a, flow, {"targetUserIds": ["u1"], "metadata": {"crm": "x"}, "cardOptions": {"priority": 5}})

    invocation = Invocation.objects.get()
    assert (invocation.mode, invocation.source) == (Mode.LIVE, "api")
    assert invocation.trigger_id == flow.triggers.get(type="api").pk
    assert (invocation.metadata, invocation.card_options) == ({"crm": "x"}, {"priority": 5})


# --- query counts -------------------------------------------------------------------------


def insert_batches(model: Any, rows: int) -> int:
    """How many INSERT statements the database needs for `rows` rows of `model` in one bulk_create."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    return math.ceil(rows / connection.ops.bulk_batch_size(fields, [None] * rows))


# The answer (its credential and flow read together) and, with Celery eager, the run itself
# (its profile looked up first).
SINGLE_TARGET_START_QUERIES = 22


def test_a_single_target_start_runs_a_pinned_number_of_queries(
    events_a, flow, start_flow, django_assert_max_num_queries
):
    with django_assert_max_num_queries(SINGLE_TARGET_START_QUERIES):
        response = start_flow(events_a, flow, {"targetUserIds": ["u1"]})

    assert response.status_code == 202
    assert cards_of("u1") == [("Hello there", False)]


def test_the_queries_of_a_start_do_not_grow_with_its_targets(events_a, flow, start_flow, django_assert_max_num_queries):
    """1,000 targets cost what one does, plus the INSERT batches the database needs and
    one more execution chunk (runs execute RUN_CHUNK_SIZE at a time); nothing per target."""
    targets = 1000
    chunks = math.ceil(targets / services.RUN_CHUNK_SIZE)
    events_per_chunk = 3 * services.RUN_CHUNK_SIZE  # started, card-published, completed
    batches = (
        insert_batches(Customer, targets)
        + insert_batches(FlowRun, targets)
        + chunks * (insert_batches(Card, services.RUN_CHUNK_SIZE) + insert_batches(AnalyticsEvent, events_per_chunk))
    )
    per_chunk = 5  # savepoint, lock the runs, update their states, release, complete the invocations
    allowed = SINGLE_TARGET_START_QUERIES + (chunks - 1) * per_chunk + batches

    with django_assert_max_num_queries(allowed):
        response = start_flow(events_a, flow, {"targetUserIds": [f"u{i}" for i in range(targets)]})

    assert response.status_code == 202
    assert Card.objects.count() == targets
    assert allowed < targets / 5  # the bound itself is far from one query per target


# --- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["live", "test"])
@pytest.mark.parametrize("env", ["acme", "globex"], ids=["on A's path", "on its own path"])
def test_another_environments_credential_gets_404_and_starts_nothing(
    session_with, flow, start_flow, test_user, mode, env
):
    before = row_counts()

    response = start_flow(session_with("outsider", "events"), flow, {"targetUserIds": ["tester-1"]}, mode, env)

    assert_refused(response, 404, "not_found")
    assert row_counts() == before


@pytest.mark.parametrize("mode", ["live", "test"])
@pytest.mark.parametrize("role", ["workbench", "auth"])
def test_a_role_other_than_events_gets_403_and_starts_nothing(
    api_client, env_a, flow, start_flow, test_user, mode, role
):
    before = row_counts()

    response = start_flow(api_client(env_a, role), flow, {"targetUserIds": ["tester-1"]}, mode)

    assert_refused(response, 403, "permission_denied")
    assert row_counts() == before


@pytest.mark.parametrize("mode", ["live", "test"])
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401_and_starts_nothing(
    session_with, env_a, flow, start_flow, test_user, mode, kind
):
    client = session_with(kind, "events", env_a)
    before = row_counts()

    response = start_flow(client, flow, {"targetUserIds": ["tester-1"]}, mode)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert row_counts() == before


def test_an_unknown_flow_id_answers_404(events_a, flow, start_flow):
    response = events_a.post("/api/v1/acme/action-flow/not-a-number/start", {"targetUserIds": ["u1"]}, format="json")

    assert_refused(response, 404, "not_found")
    assert not Invocation.objects.exists()


@pytest.mark.parametrize("mode", ["live", "test"])
def test_a_flow_of_another_environment_answers_404_to_this_environments_credential(
    events_a, env_b, make_flow, start_flow, mode
):
    """The start reads its flow with its credential, in the credential's environment only."""
    other = make_flow(name="B's flow", environment=env_b)
    before = row_counts()

    response = start_flow(events_a, other, {"targetUserIds": ["u1"]}, mode)

    assert_refused(response, 404, "not_found")
    assert row_counts() == before


def test_a_start_is_one_read_and_one_write_on_postgresql(events_a, flow, django_capture_on_commit_callbacks):
    """Its credential with its flow in one statement, its invocation in one. (A failing write
    falls back to slower paths that answer the same: only the count shows the fast one.)"""
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=False):
        response = events_a.post(start_url(flow, "live", "acme"), {"targetUserIds": ["u1"]}, format="json")

    assert response.status_code == 202
    if connection.vendor == "postgresql":  # elsewhere the write is the ORM's, a statement a row
        # The credential's last use is written at most once a minute: it may be a third.
        # Without the savepoint around the write: a test runs in a transaction, a server's
        # request does not.
        statements = [
            str(query["sql"])
            for query in queries
            if not str(query["sql"]).startswith(("UPDATE", "SAVEPOINT", "RELEASE"))
        ]
        assert len(statements) == 2, statements
    assert Invocation.objects.get().target_user_ids == ["u1"]
