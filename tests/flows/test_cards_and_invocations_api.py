"""GET users/{userId}/cards (the feed) and GET invocations/{flowInvocationId} (SPEC section 3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows.models import Card, Invocation
from tests.flows.conftest import row_counts

pytestmark = pytest.mark.django_db


def feed_url(user_id: str, env: str = "acme") -> str:
    return f"/api/v1/{env}/users/{user_id}/cards"


def invocation_url(key: str, env: str = "acme") -> str:
    return f"/api/v1/{env}/invocations/{key}"


@pytest.fixture
def started(events_a, flow, start_flow, test_user) -> dict[str, Any]:
    """tester-1 got a live card ("live-1"), then a test card ("test-1"); u2 got a live card."""
    start_flow(events_a, flow, {"targetUserIds": ["tester-1"], "flowInvocationId": "live-1"})
    start_flow(events_a, flow, {"targetUserIds": ["tester-1"], "flowInvocationId": "test-1"}, "test")
    start_flow(events_a, flow, {"targetUserIds": ["u2"], "flowInvocationId": "live-2"})
    # Publication times a second apart, so "newest first" has one meaning.
    base = timezone.now()
    for offset, key in enumerate(["live-1", "test-1", "live-2"]):
        Card.objects.filter(flow_invocation_id=key).update(published_at=base + timedelta(seconds=offset))
    return {"flow": flow}


# --- the feed -----------------------------------------------------------------------------


def test_the_feed_shows_the_users_cards_newest_first(events_a, started):
    response = events_a.get(feed_url("tester-1"))

    assert response.status_code == 200
    cards = response.json()["data"]
    assert [(card["flowInvocationId"], card["test"]) for card in cards] == [("test-1", True), ("live-1", False)]
    newest = cards[0]
    assert newest["id"] == Card.objects.get(flow_invocation_id="test-1").pk
    assert newest["flowId"] == started["flow"].pk
    assert (newest["title"], newest["body"]) == ("Hello there", "Welcome aboard.")
    assert newest["actions"] == [{"label": "Open", "url": "https://example.com/welcome"}]
    assert newest["publishedAt"]


@pytest.mark.parametrize(
    ("query", "expected"), [("true", ["test-1"]), ("false", ["live-1"]), ("", ["test-1", "live-1"])]
)
def test_the_feed_can_show_only_test_or_only_live_cards(events_a, started, query, expected):
    response = events_a.get(feed_url("tester-1"), {"test": query})

    assert [card["flowInvocationId"] for card in response.json()["data"]] == expected


def test_a_test_filter_that_is_not_a_boolean_is_refused(events_a, started):
    response = events_a.get(feed_url("tester-1"), {"test": "maybe"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "test" in response.json()["errors"]


def test_the_feed_does_not_show_another_users_cards(events_a, started):
    response = events_a.get(feed_url("u2"))

    assert [card["flowInvocationId"] for card in response.json()["data"]] == ["live-2"]


def test_a_user_without_cards_has_an_empty_feed(events_a, started):
    response = events_a.get(feed_url("nobody"))

    assert response.status_code == 200
    assert response.json() == {"data": []}


def test_the_feed_does_not_show_the_same_user_id_in_another_environment(api_client, env_b, started):
    response = api_client(env_b, "events").get(feed_url("tester-1", "globex"))

    assert response.status_code == 200
    assert response.json() == {"data": []}


@pytest.mark.parametrize("cards", [1, 30])
def test_the_feed_costs_the_same_queries_for_one_card_or_many(
    events_a, flow, start_flow, django_assert_max_num_queries, cards
):
    start_flow(events_a, flow, [{"targetUserIds": ["u1"]} for _ in range(cards)])
    assert Card.objects.filter(user_id="u1").count() == cards

    with django_assert_max_num_queries(2):  # the token with its credential; the cards
        response = events_a.get(feed_url("u1"))

    assert len(response.json()["data"]) == cards


# --- invocations ----------------------------------------------------------------------------


def test_an_invocation_shows_its_runs_and_cards(events_a, started):
    response = events_a.get(invocation_url("live-1"))

    assert response.status_code == 200
    [invocation] = response.json()["data"]
    assert invocation["flowInvocationId"] == "live-1"
    assert invocation["flowId"] == started["flow"].pk
    assert (invocation["mode"], invocation["source"], invocation["status"]) == ("live", "api", "completed")
    assert invocation["runs"] == [{"userId": "tester-1", "status": "completed"}]
    [card] = invocation["cards"]
    assert (card["flowInvocationId"], card["title"], card["test"]) == ("live-1", "Hello there", False)


def test_the_same_key_in_test_and_live_shows_both_invocations(events_a, flow, start_flow, test_user):
    body = {"targetUserIds": ["tester-1", "stranger"], "flowInvocationId": "both"}
    start_flow(events_a, flow, body)
    start_flow(events_a, flow, body, "test")

    response = events_a.get(invocation_url("both"))

    data = {item["mode"]: item for item in response.json()["data"]}
    assert set(data) == {"live", "test"}
    assert [run["userId"] for run in data["live"]["runs"]] == ["stranger", "tester-1"]
    assert [run["userId"] for run in data["test"]["runs"]] == ["tester-1"]
    assert data["test"]["ignoredUserIds"] == ["stranger"]
    assert all(card["test"] for card in data["test"]["cards"])


def test_a_workbench_credential_may_read_an_invocation(workbench_a, started):
    response = workbench_a.get(invocation_url("live-1"))

    assert response.status_code == 200
    assert response.json()["data"][0]["flowInvocationId"] == "live-1"


def test_an_unknown_key_answers_404(events_a, started):
    response = events_a.get(invocation_url("never-used"))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_invocation_accepted_but_not_yet_run_shows_no_runs(events_a, flow):
    # Posted without running the after-commit fan-out: accepted, waiting for a worker.
    response = events_a.post(
        f"/api/v1/acme/action-flow/{flow.pk}/start", {"targetUserIds": ["u1"], "flowInvocationId": "k"}, format="json"
    )
    assert response.status_code == 202

    [invocation] = events_a.get(invocation_url("k")).json()["data"]

    assert (invocation["status"], invocation["runs"], invocation["cards"]) == ("accepted", [], [])


# --- who may call -------------------------------------------------------------------------

ENDPOINTS = {"feed": feed_url("tester-1"), "invocation": invocation_url("live-1")}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_environments_credential_gets_404_and_changes_nothing(session_with, started, endpoint):
    before = row_counts()

    response = session_with("outsider", "events").get(ENDPOINTS[endpoint])

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "Hello" not in response.content.decode()
    assert row_counts() == before


def test_another_environment_cannot_read_our_invocation_on_its_own_path(session_with, started):
    response = session_with("outsider", "events").get(invocation_url("live-1", "globex"))

    assert response.status_code == 404
    assert "Hello" not in response.content.decode()


@pytest.mark.parametrize(
    ("endpoint", "role"), [("feed", "workbench"), ("feed", "auth"), ("invocation", "auth")], ids=str
)
def test_a_role_without_the_right_gets_403(api_client, env_a, started, endpoint, role):
    response = api_client(env_a, role).get(ENDPOINTS[endpoint])

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401(session_with, env_a, started, endpoint, kind):
    response = session_with(kind, "events", env_a).get(ENDPOINTS[endpoint])

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert Invocation.objects.count() == 3


# --- button URLs filled in by variables -----------------------------------------------------


@pytest.fixture
def link_flow(make_flow):
    """A card whose button URL comes whole from a variable of each start."""
    return make_flow(
        name="Linked",
        variables=[{"name": "link", "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Open", "actions": [{"label": "Go", "url": "{{link}}"}]}}],
    )


def test_a_button_url_filled_in_from_a_variable_reaches_the_feed(events_a, link_flow, start_flow):
    start_flow(events_a, link_flow, {"targetUserIds": ["u1"], "variables": {"link": "myapp://offers/7"}})

    [card] = events_a.get(feed_url("u1")).json()["data"]

    assert card["actions"] == [{"label": "Go", "url": "myapp://offers/7"}]


@pytest.mark.parametrize("link", ["javascript:alert(document.cookie)", "JavaScript://%0Aalert(1)", "data:text/html,x"])
def test_a_button_that_a_variable_made_unsafe_never_reaches_the_feed_or_the_invocation(
    events_a, link_flow, start_flow, link
):
    start_flow(events_a, link_flow, {"targetUserIds": ["u1"], "flowInvocationId": "k", "variables": {"link": link}})

    [card] = events_a.get(feed_url("u1")).json()["data"]
    [invocation] = events_a.get(invocation_url("k")).json()["data"]

    assert card["title"] == "Open"
    assert card["actions"] == []
    assert invocation["cards"][0]["actions"] == []
