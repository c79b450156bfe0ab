"""Customer profiles over the API (SPEC section 3): PUT/GET customers/{userId}, POST customers."""

from __future__ import annotations

import math

import pytest
from django.db import connection

from customers.models import Customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

BATCH_URL = "/api/v1/acme/customers"


def url(user_id: str, env: str = "acme") -> str:
    return f"/api/v1/{env}/customers/{user_id}"


def snapshot() -> list[dict]:
    """Every customer row, to show that a refused request wrote nothing."""
    return list(Customer.objects.order_by("environment_id", "user_id").values())


def assert_invalid(response, *fields: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["detail"]
    for field in fields:
        assert field in body["errors"], body["errors"]
    return body["errors"]


# --- PUT customers/{userId} -------------------------------------------------------------


def test_put_creates_a_profile_with_201_and_updates_it_with_200(events_a, env_a):
    created = events_a.put(url("76DHG129387"), {"name": "Lars", "email": "lars@example.com"}, format="json")
    updated = events_a.put(url("76DHG129387"), {"city": "Oslo"}, format="json")

    assert created.status_code == 201
    assert created.json()["data"]["userId"] == "76DHG129387"
    assert updated.status_code == 200
    assert Customer.objects.filter(environment=env_a).count() == 1


def test_fields_given_replace_their_values_and_fields_omitted_keep_theirs(events_a, env_a):
    events_a.put(
        url("u1"),
        {"name": "Lars", "email": "lars@example.com", "tags": ["vip", "beta"], "country": "NO"},
        format="json",
    )

    response = events_a.put(url("u1"), {"email": "lars@new.example", "tags": ["gold"]}, format="json")

    data = response.json()["data"]
    assert (data["name"], data["email"], data["country"], data["tags"]) == ("Lars", "lars@new.example", "NO", ["gold"])
    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert (customer.name, customer.email, customer.tags) == ("Lars", "lars@new.example", ["gold"])


def test_null_clears_a_text_field(events_a):
    events_a.put(url("u1"), {"name": "Lars", "phone": "+47 123"}, format="json")

    response = events_a.put(url("u1"), {"phone": None}, format="json")

    assert response.json()["data"]["phone"] is None
    assert response.json()["data"]["name"] == "Lars"


def test_custom_fields_merge_key_by_key_and_null_removes_a_key(events_a, env_a):
    events_a.put(url("u1"), {"customFields": {"plan": "basic", "balance": 10, "beta": True}}, format="json")

    response = events_a.put(
        url("u1"), {"customFields": {"plan": "premium", "beta": None, "since": "2024-01-31"}}, format="json"
    )

    expected = {"plan": "premium", "balance": 10, "since": "2024-01-31"}
    assert response.json()["data"]["customFields"] == expected
    assert Customer.objects.get(environment=env_a, user_id="u1").custom_fields == expected


def test_removing_a_custom_field_that_does_not_exist_is_harmless(events_a):
    response = events_a.put(url("u1"), {"customFields": {"ghost": None}}, format="json")

    assert response.status_code == 201
    assert response.json()["data"]["customFields"] == {}


def test_activity_fields_are_stored_as_timezone_aware_moments(events_a, env_a):
    response = events_a.put(
        url("u1"),
        {"createdAt": "2024-03-01T10:00:00Z", "lastSeenIosAt": "2024-03-02T12:30:00+02:00"},
        format="json",
    )

    data = response.json()["data"]
    assert data["createdAt"].startswith("2024-03-01T10:00:00")
    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert customer.last_seen_ios_at.isoformat() == "2024-03-02T10:30:00+00:00"
    assert customer.last_seen_android_at is None


def test_the_body_may_repeat_the_path_userid(events_a):
    response = events_a.put(url("u1"), {"userId": "u1", "name": "Ada"}, format="json")

    assert response.status_code == 201


def test_a_body_userid_that_differs_from_the_path_is_refused(events_a):
    response = events_a.put(url("u1"), {"userId": "u2", "name": "Ada"}, format="json")

    assert_invalid(response, "userId")
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": 42}, "userId"),
        ({"name": 42}, "name"),
        ({"email": True}, "email"),
        ({"tags": "vip"}, "tags"),
        ({"tags": [1, 2]}, "tags"),
        ({"customFields": {"address": {"city": "Oslo"}}}, "customFields"),
        ({"customFields": {"codes": [1, 2]}}, "customFields"),
        ({"customFields": ["plan"]}, "customFields"),
        ({"lastSeenAt": "yesterday"}, "lastSeenAt"),
        ({"createdAt": None}, "createdAt"),
        ({"plan": "premium"}, "plan"),
    ],
)
def test_a_profile_with_a_wrong_type_or_unknown_field_is_refused_and_nothing_is_written(events_a, body, field):
    CustomerFactory(environment=events_a.credential.environment, user_id="u1", name="Before", tags=["old"])
    before = snapshot()

    response = events_a.put(url("u1"), body, format="json")

    assert_invalid(response, field)
    assert snapshot() == before


def test_a_path_userid_longer_than_255_characters_is_refused(events_a):
    response = events_a.put(url("x" * 256), {"name": "Ada"}, format="json")

    assert_invalid(response, "userId")
    assert not Customer.objects.exists()


def test_a_userid_of_255_characters_is_fine(events_a):
    response = events_a.put(url("x" * 255), {"name": "Ada"}, format="json")

    assert response.status_code == 201
    assert Customer.objects.get().user_id == "x" * 255


@pytest.mark.parametrize("body", [[{"name": "Ada"}], "Ada", 42])
def test_a_put_body_that_is_not_an_object_is_refused(events_a, body):
    response = events_a.put(url("u1"), body, format="json")

    assert_invalid(response)
    assert not Customer.objects.exists()


# --- GET customers/{userId} -------------------------------------------------------------


def test_get_returns_the_whole_profile(events_a):
    events_a.put(
        url("u1"),
        {"name": "Ada", "tags": ["vip"], "customFields": {"plan": "premium"}, "lastSeenAt": "2024-03-01T10:00:00Z"},
        format="json",
    )

    response = events_a.get(url("u1"))

    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {
        "userId",
        "name",
        "email",
        "phone",
        "city",
        "country",
        "region",
        "timezone",
        "tags",
        "customFields",
        "createdAt",
        "firstSeenAt",
        "lastSeenAt",
        "lastSeenIosAt",
        "lastSeenAndroidAt",
        "lastSeenWebAt",
    }
    assert (data["userId"], data["name"], data["tags"], data["customFields"]) == (
        "u1",
        "Ada",
        ["vip"],
        {"plan": "premium"},
    )
    assert data["createdAt"]
    assert data["email"] is None


def test_get_of_an_unknown_user_is_404_not_found(events_a):
    response = events_a.get(url("nobody"))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_same_userid_in_two_environments_is_two_customers(events_a, api_client, env_b):
    events_b = api_client(env_b, "events")
    events_a.put(url("u1"), {"name": "Ada in A"}, format="json")

    created_in_b = events_b.put(url("u1", "globex"), {"name": "Ada in B"}, format="json")

    assert created_in_b.status_code == 201
    assert events_a.get(url("u1")).json()["data"]["name"] == "Ada in A"
    assert events_b.get(url("u1", "globex")).json()["data"]["name"] == "Ada in B"


# --- POST customers (batch) -------------------------------------------------------------


def test_a_batch_creates_new_profiles_and_merges_into_existing_ones(events_a, env_a):
    CustomerFactory(environment=env_a, user_id="old", name="Old name", custom_fields={"a": 1, "b": 2})

    response = events_a.post(
        BATCH_URL,
        [
            {"userId": "old", "email": "old@example.com", "customFields": {"a": None, "c": 3}},
            {"userId": "new", "name": "New"},
        ],
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {"data": {"created": 1, "updated": 1}}
    old = Customer.objects.get(environment=env_a, user_id="old")
    assert (old.name, old.email, old.custom_fields) == ("Old name", "old@example.com", {"b": 2, "c": 3})
    assert Customer.objects.get(environment=env_a, user_id="new").name == "New"


def test_the_same_userid_twice_in_a_batch_merges_in_order(events_a, env_a):
    response = events_a.post(
        BATCH_URL,
        [
            {"userId": "u1", "name": "First", "customFields": {"a": 1}},
            {"userId": "u1", "name": "Second", "customFields": {"b": 2}},
        ],
        format="json",
    )

    assert response.json() == {"data": {"created": 1, "updated": 0}}
    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert (customer.name, customer.custom_fields) == ("Second", {"a": 1, "b": 2})


def insert_statements_for(rows: int) -> int:
    """How many INSERTs the database needs at the least for `rows` customers.

    PostgreSQL takes 1,000 rows in one statement; Django caps an SQLite statement at 999
    parameters, so there it is one statement per ~50 rows.
    """
    fields = [field for field in Customer._meta.concrete_fields if not field.primary_key]
    per_statement = connection.ops.bulk_batch_size(fields, [None] * rows)
    return math.ceil(rows / per_statement)


def test_a_batch_of_1000_profiles_is_written_in_a_bounded_number_of_queries(
    events_a, env_a, django_assert_max_num_queries
):
    CustomerFactory.create_batch(300, environment=env_a)
    existing = list(Customer.objects.values_list("user_id", flat=True))
    profiles = [{"userId": user_id, "city": "Oslo"} for user_id in existing]
    profiles += [{"userId": f"new-{i}", "name": f"New {i}", "tags": ["t"]} for i in range(700)]

    # Token, credential, savepoint, one locking SELECT, the upsert itself, then segments' read
    # of the environment's segments (customers_changed: should any of them look again?).
    with django_assert_max_num_queries(7 + insert_statements_for(1000)):
        response = events_a.post(BATCH_URL, profiles, format="json")

    assert response.status_code == 200
    assert response.json() == {"data": {"created": 700, "updated": 300}}
    assert Customer.objects.filter(environment=env_a).count() == 1000
    assert Customer.objects.filter(environment=env_a, city="Oslo").count() == 300


def test_a_batch_of_1001_profiles_is_refused_and_nothing_is_written(events_a):
    profiles = [{"userId": f"u{i}"} for i in range(1001)]

    response = events_a.post(BATCH_URL, profiles, format="json")

    assert_invalid(response, "request")
    assert not Customer.objects.exists()


def test_an_empty_batch_is_refused(events_a):
    assert_invalid(events_a.post(BATCH_URL, [], format="json"), "request")


def test_a_batch_that_is_not_an_array_is_refused(events_a):
    response = events_a.post(BATCH_URL, {"userId": "u1"}, format="json")

    assert_invalid(response, "request")
    assert not Customer.objects.exists()


def test_one_invalid_profile_refuses_the_whole_batch_and_says_which(events_a, env_a):
    CustomerFactory(environment=env_a, user_id="u0", name="Before")
    before = snapshot()

    response = events_a.post(
        BATCH_URL,
        [{"userId": "u0", "name": "After"}, {"userId": "u1", "tags": "vip"}, {"name": "no id"}],
        format="json",
    )

    errors = assert_invalid(response)
    assert "tags" in errors["1"]
    assert "userId" in errors["2"]
    assert "0" not in errors
    assert snapshot() == before


def test_a_batch_refuses_unknown_fields(events_a):
    response = events_a.post(BATCH_URL, [{"userId": "u1", "favouriteColour": "blue"}], format="json")

    errors = assert_invalid(response)
    assert "favouriteColour" in errors["0"]
    assert not Customer.objects.exists()


# --- who may call -----------------------------------------------------------------------

ENDPOINTS = {
    "get": ("get", url("u1"), None),
    "put": ("put", url("u1"), {"name": "Mallory"}),
    "batch": ("post", BATCH_URL, [{"userId": "u1", "name": "Mallory"}]),
}


@pytest.fixture
def existing(env_a) -> Customer:
    return CustomerFactory(environment=env_a, user_id="u1", name="Ada")


def call(client, endpoint: str):
    method, path, body = ENDPOINTS[endpoint]
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_environments_credential_gets_404_and_changes_nothing(session_with, existing, endpoint):
    before = snapshot()

    response = call(session_with("outsider", "events"), endpoint)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "Ada" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", ["workbench", "auth"])
def test_a_role_other_than_events_gets_403_and_changes_nothing(api_client, env_a, existing, endpoint, role):
    before = snapshot()

    response = call(api_client(env_a, role), endpoint)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401(session_with, env_a, existing, endpoint, kind):
    client = session_with(kind, "events", env_a)
    before = snapshot()

    response = call(client, endpoint)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert snapshot() == before
