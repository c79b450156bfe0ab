"""customers_upsert and the test user services, called as views, tasks and commands call them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from customers.models import Customer, TestUser
from customers.services import customers_upsert, member_test_user_set, testuser_create
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_an_upsert_reports_which_userids_it_created_and_which_it_updated(env_a):
    CustomerFactory(environment=env_a, user_id="old")

    result = customers_upsert(
        environment=env_a, profiles=[{"user_id": "old", "name": "Old"}, {"user_id": "new", "name": "New"}]
    )

    assert (result.created, result.updated) == (["new"], ["old"])


def test_an_upsert_never_touches_another_environment(env_a, env_b):
    CustomerFactory(environment=env_b, user_id="u1", name="B's", custom_fields={"b": 1})

    customers_upsert(environment=env_a, profiles=[{"user_id": "u1", "name": "A's", "custom_fields": {"a": 1}}])

    theirs = Customer.objects.get(environment=env_b, user_id="u1")
    assert (theirs.name, theirs.custom_fields) == ("B's", {"b": 1})
    assert Customer.objects.get(environment=env_a, user_id="u1").custom_fields == {"a": 1}


def test_an_upsert_keeps_created_at_of_an_existing_customer(env_a):
    created = datetime(2023, 5, 1, tzinfo=UTC)
    CustomerFactory(environment=env_a, user_id="u1", created_at=created)

    customers_upsert(environment=env_a, profiles=[{"user_id": "u1", "city": "Oslo"}])

    assert Customer.objects.get(environment=env_a, user_id="u1").created_at == created


def test_an_empty_upsert_does_nothing(env_a, django_assert_num_queries):
    with django_assert_num_queries(0):
        result = customers_upsert(environment=env_a, profiles=[])

    assert (result.created, result.updated) == ([], [])


def test_a_userid_is_a_test_user_only_once_per_environment(env_a, env_b):
    testuser_create(environment=env_a, user_id="qa-1")
    testuser_create(environment=env_b, user_id="qa-1")

    with pytest.raises(ValidationError):
        testuser_create(environment=env_a, user_id="qa-1")

    assert TestUser.objects.filter(user_id="qa-1").count() == 2


def test_a_member_sets_changes_and_clears_their_own_test_user(editor, env_a):
    membership = editor.memberships.get(environment=env_a)

    first = member_test_user_set(membership=membership, user_id="phone-1")
    second = member_test_user_set(membership=membership, user_id="phone-2")

    assert first.pk == second.pk
    assert list(TestUser.objects.values_list("user_id", "membership_id")) == [("phone-2", membership.pk)]
    assert member_test_user_set(membership=membership, user_id="") is None
    assert not TestUser.objects.exists()
