"""Test users over the Configuration API (SPEC section 3): {"id", "userId", "name"}."""

from __future__ import annotations

import pytest

from customers.models import TestUser
from tests.factories import MembershipFactory, TestUserFactory
from workbench.models import Role

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/acme/test-users"


def detail_url(pk: int, env: str = "acme") -> str:
    return f"/api/v1/{env}/test-users/{pk}"


def items(body):
    """The list body in DRF's usual shapes: a plain list or a paginated page."""
    return body["results"] if isinstance(body, dict) else body


def snapshot() -> list[tuple]:
    return list(TestUser.objects.order_by("pk").values_list("environment_id", "user_id", "name", "membership_id"))


def test_the_list_shows_external_and_member_test_users_of_the_environment_only(workbench_a, env_a, env_b, editor):
    external = TestUserFactory(environment=env_a, user_id="qa-1", name="QA phone")
    membership = editor.memberships.get(environment=env_a)
    own = TestUserFactory(environment=env_a, user_id="edward-phone", name="Edward", membership=membership)
    TestUserFactory(environment=env_b, user_id="theirs")

    response = workbench_a.get(LIST_URL)

    assert response.status_code == 200
    assert sorted(items(response.json()), key=lambda row: row["userId"]) == [
        {"id": own.pk, "userId": "edward-phone", "name": "Edward"},
        {"id": external.pk, "userId": "qa-1", "name": "QA phone"},
    ]


def test_a_test_user_is_created_with_201(workbench_a, env_a):
    response = workbench_a.post(LIST_URL, {"userId": "qa-1", "name": "QA phone"}, format="json")

    assert response.status_code == 201
    test_user = TestUser.objects.get(environment=env_a)
    assert response.json() == {"id": test_user.pk, "userId": "qa-1", "name": "QA phone"}
    assert test_user.membership is None


def test_a_userid_that_is_already_a_test_user_is_refused(workbench_a, env_a):
    TestUserFactory(environment=env_a, user_id="qa-1")
    before = snapshot()

    response = workbench_a.post(LIST_URL, {"userId": "qa-1"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "userId" in response.json()["errors"]
    assert snapshot() == before


def test_a_userid_taken_in_another_environment_is_free_here(workbench_a, env_a, env_b):
    TestUserFactory(environment=env_b, user_id="qa-1")

    response = workbench_a.post(LIST_URL, {"userId": "qa-1"}, format="json")

    assert response.status_code == 201
    assert TestUser.objects.filter(user_id="qa-1").count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "userId"),
        ({"userId": 42}, "userId"),
        ({"userId": ""}, "userId"),
        ({"userId": "qa-1", "name": ["QA"]}, "name"),
        ({"userId": "qa-1", "membership": 1}, "membership"),
    ],
)
def test_an_invalid_test_user_is_refused_and_nothing_is_written(workbench_a, body, field):
    response = workbench_a.post(LIST_URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]
    assert not TestUser.objects.exists()


def test_one_test_user_is_read_by_id(workbench_a, env_a):
    test_user = TestUserFactory(environment=env_a, user_id="qa-1", name="QA")

    response = workbench_a.get(detail_url(test_user.pk))

    assert response.status_code == 200
    assert response.json() == {"id": test_user.pk, "userId": "qa-1", "name": "QA"}


def test_a_partial_update_changes_only_what_is_given(workbench_a, env_a):
    test_user = TestUserFactory(environment=env_a, user_id="qa-1", name="QA")

    renamed = workbench_a.patch(detail_url(test_user.pk), {"name": "QA tablet"}, format="json")
    moved = workbench_a.patch(detail_url(test_user.pk), {"userId": "qa-2"}, format="json")

    assert renamed.json() == {"id": test_user.pk, "userId": "qa-1", "name": "QA tablet"}
    assert moved.json() == {"id": test_user.pk, "userId": "qa-2", "name": "QA tablet"}
    test_user.refresh_from_db()
    assert (test_user.user_id, test_user.name) == ("qa-2", "QA tablet")


def test_a_partial_update_to_a_taken_userid_is_refused(workbench_a, env_a):
    TestUserFactory(environment=env_a, user_id="qa-1")
    other = TestUserFactory(environment=env_a, user_id="qa-2")
    before = snapshot()

    response = workbench_a.patch(detail_url(other.pk), {"userId": "qa-1"}, format="json")

    assert response.status_code == 400
    assert "userId" in response.json()["errors"]
    assert snapshot() == before


def test_a_partial_update_to_its_own_userid_is_fine(workbench_a, env_a):
    test_user = TestUserFactory(environment=env_a, user_id="qa-1", name="QA")

    response = workbench_a.patch(detail_url(test_user.pk), {"userId": "qa-1", "name": "Same"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Same"


def test_a_deleted_test_user_is_gone(workbench_a, env_a):
    test_user = TestUserFactory(environment=env_a, user_id="qa-1")

    response = workbench_a.delete(detail_url(test_user.pk))

    assert response.status_code == 204
    assert not TestUser.objects.exists()
    assert workbench_a.get(detail_url(test_user.pk)).status_code == 404


def test_deleting_a_members_test_user_keeps_the_membership(workbench_a, env_a):
    membership = MembershipFactory(environment=env_a, role=Role.EDITOR)
    test_user = TestUserFactory(environment=env_a, user_id="phone", membership=membership)

    assert workbench_a.delete(detail_url(test_user.pk)).status_code == 204

    membership.refresh_from_db()
    assert not TestUser.objects.exists()


def test_an_unknown_test_user_is_404(workbench_a):
    response = workbench_a.get(detail_url(999_999))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_another_environments_test_user_is_404_through_our_own_path(workbench_a, env_b):
    theirs = TestUserFactory(environment=env_b, user_id="theirs", name="Theirs")
    before = snapshot()

    responses = [
        workbench_a.get(detail_url(theirs.pk)),
        workbench_a.patch(detail_url(theirs.pk), {"name": "Mine now"}, format="json"),
        workbench_a.delete(detail_url(theirs.pk)),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert snapshot() == before


# --- who may call -----------------------------------------------------------------------


@pytest.fixture
def existing(env_a) -> TestUser:
    return TestUserFactory(environment=env_a, user_id="qa-1", name="QA")


ENDPOINTS = {
    "list": ("get", lambda pk: LIST_URL, None),
    "create": ("post", lambda pk: LIST_URL, {"userId": "intruder"}),
    "read": ("get", detail_url, None),
    "update": ("patch", detail_url, {"name": "Mallory"}),
    "delete": ("delete", detail_url, None),
}


def call(client, endpoint: str, pk: int):
    method, path, body = ENDPOINTS[endpoint]
    return getattr(client, method)(path(pk), body, format="json")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_environments_credential_gets_404_and_changes_nothing(session_with, existing, endpoint):
    before = snapshot()

    response = call(session_with("outsider", "workbench"), endpoint, existing.pk)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "qa-1" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", ["events", "auth"])
def test_a_role_other_than_workbench_gets_403_and_changes_nothing(api_client, env_a, existing, endpoint, role):
    before = snapshot()

    response = call(api_client(env_a, role), endpoint, existing.pk)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "invalid", "expired", "revoked"])
def test_a_missing_invalid_expired_or_revoked_token_gets_401(session_with, env_a, existing, endpoint, kind):
    client = session_with(kind, "workbench", env_a)
    before = snapshot()

    response = call(client, endpoint, existing.pk)

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert snapshot() == before
