"""The customers dashboard: search, pagination, the htmx partial, the profile page."""

from __future__ import annotations

import pytest

from tests.factories import CustomerFactory, TestUserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/e/acme/customers/"


@pytest.fixture
def customers(env_a, env_b):
    CustomerFactory(environment=env_a, user_id="76DHG129387", name="Lars Nilsen", email="lars@example.com")
    CustomerFactory(environment=env_a, user_id="A9F2K0001", name="Aroha Ngata", email="aroha@kiwi.example")
    CustomerFactory(environment=env_a, user_id="C0FFEE42", name="Maya Chen", email="maya@example.com")
    CustomerFactory(environment=env_b, user_id="B-LARS", name="Lars Globex", email="lars@globex.example")


def shown_user_ids(response) -> list[str]:
    return [customer.user_id for customer in response.context["page"].object_list]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["76DHG129387", "A9F2K0001", "C0FFEE42"]),
        ("a9f2", ["A9F2K0001"]),
        ("nilsen", ["76DHG129387"]),
        ("KIWI.example", ["A9F2K0001"]),
        ("lars", ["76DHG129387"]),
        ("  maya  ", ["C0FFEE42"]),
    ],
)
def test_the_list_searches_userid_name_and_email_within_the_environment(login, viewer, customers, query, expected):
    response = login(viewer).get(LIST_URL, {"q": query})

    assert response.status_code == 200
    assert shown_user_ids(response) == expected
    for user_id in expected:
        assert user_id.encode() in response.content
    assert b"B-LARS" not in response.content


def test_a_search_without_matches_says_so(login, viewer, customers):
    response = login(viewer).get(LIST_URL, {"q": "zzz"})

    assert shown_user_ids(response) == []
    assert "No customer matches “zzz”".encode() in response.content


def test_an_environment_without_customers_explains_how_they_arrive(login, viewer, env_a):
    response = login(viewer).get(LIST_URL)

    assert b"No customers yet" in response.content
    assert b"PUT /api/v1/acme/customers/" in response.content


def test_the_list_is_paginated_by_50(login, viewer, env_a):
    CustomerFactory.create_batch(120, environment=env_a)
    client = login(viewer)

    first = client.get(LIST_URL)
    last = client.get(LIST_URL, {"page": 3})
    beyond = client.get(LIST_URL, {"page": 99})

    assert len(shown_user_ids(first)) == 50
    assert b"1\xe2\x80\x9350 of 120" in first.content
    assert b"page=2" in first.content
    assert len(shown_user_ids(last)) == 20
    assert b"101\xe2\x80\x93120 of 120" in last.content
    assert shown_user_ids(beyond) == shown_user_ids(last)
    assert set(shown_user_ids(first)).isdisjoint(shown_user_ids(last))


def test_pagination_keeps_the_search(login, viewer, env_a):
    CustomerFactory.create_batch(60, environment=env_a, name="Smith")
    CustomerFactory.create_batch(5, environment=env_a, name="Jones")

    response = login(viewer).get(LIST_URL, {"q": "smith", "page": 2})

    assert len(shown_user_ids(response)) == 10
    assert b"51\xe2\x80\x9360 of 60" in response.content
    assert b"?q=smith&amp;page=1" in response.content


def test_the_list_takes_a_fixed_number_of_queries(login, viewer, env_a, django_assert_max_num_queries):
    client = login(viewer)
    CustomerFactory.create_batch(5, environment=env_a)
    with django_assert_max_num_queries(12) as few:
        client.get(LIST_URL)
    CustomerFactory.create_batch(60, environment=env_a)

    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(LIST_URL)


def test_an_htmx_request_gets_only_the_table(login, viewer, customers):
    response = login(viewer).get(LIST_URL, {"q": "maya"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<div id="customer-table">')
    assert "<html" not in html
    assert 'name="q"' not in html
    assert "C0FFEE42" in html
    assert "76DHG129387" not in html


def test_a_normal_request_gets_the_whole_page_with_the_table_inside(login, viewer, customers):
    response = login(viewer).get(LIST_URL)

    html = response.content.decode()
    assert "<html" in html
    assert 'name="q"' in html
    assert 'id="customer-table"' in html


def test_the_profile_page_shows_the_customer(login, viewer, env_a):
    CustomerFactory(
        environment=env_a,
        user_id="76DHG129387",
        name="Lars Nilsen",
        email="lars@example.com",
        city="Oslo",
        tags=["vip"],
        custom_fields={"plan": "premium"},
    )

    response = login(viewer).get("/e/acme/customers/76DHG129387")

    assert response.status_code == 200
    for text in ("Lars Nilsen", "lars@example.com", "Oslo", "vip", "plan", "premium", "76DHG129387"):
        assert text.encode() in response.content
    assert b"test user</span>" not in response.content


def test_the_profile_page_marks_a_test_user(login, viewer, env_a):
    CustomerFactory(environment=env_a, user_id="qa-1")
    TestUserFactory(environment=env_a, user_id="qa-1")

    response = login(viewer).get("/e/acme/customers/qa-1")

    assert b"test user</span>" in response.content


def test_a_userid_with_slashes_and_spaces_has_a_profile_page(login, viewer, env_a):
    CustomerFactory(environment=env_a, user_id="team/ada lovelace", name="Ada")

    listing = login(viewer).get(LIST_URL)
    response = login(viewer).get("/e/acme/customers/team/ada%20lovelace")

    assert b"/e/acme/customers/team/ada%20lovelace" in listing.content
    assert response.status_code == 200
    assert b"Ada" in response.content


def test_an_unknown_customer_is_404(login, viewer, env_a):
    assert login(viewer).get("/e/acme/customers/nobody").status_code == 404


def test_another_environments_customer_is_404_even_for_a_member_of_ours(login, viewer, customers):
    response = login(viewer).get("/e/acme/customers/B-LARS")

    assert response.status_code == 404
    assert b"Globex" not in response.content


@pytest.mark.parametrize("path", [LIST_URL, "/e/acme/customers/76DHG129387"])
def test_the_outsider_gets_404_on_our_customer_pages(login, outsider, customers, path):
    response = login(outsider).get(path)

    assert response.status_code == 404
    assert b"Lars Nilsen" not in response.content
