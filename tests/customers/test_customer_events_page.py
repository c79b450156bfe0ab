"""A customer's recent events on the profile page, and custom events in Django admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from customers.models import Event
from customers.services import events_record
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

PROFILE_URL = "/e/acme/customers/u1"


def record(environment, *events, received_at=None):
    return events_record(environment=environment, events=list(events), received_at=received_at)


def test_the_profile_lists_the_customers_events_newest_first_with_their_properties(login, viewer, env_a):
    record(
        env_a,
        {"userId": "u1", "name": "signup", "timestamp": "2026-03-01T09:00:00Z"},
        {"userId": "u1", "name": "purchase", "timestamp": "2026-03-02T10:30:00Z", "properties": {"plan": "pro"}},
        {"userId": "someone-else", "name": "not-theirs"},
    )

    response = login(viewer).get(PROFILE_URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Recent events" in page
    assert page.index("purchase") < page.index("signup")
    assert "2026-03-02 10:30:00" in page
    assert "{&quot;plan&quot;: &quot;pro&quot;}" in page
    assert "not-theirs" not in page


def test_the_profile_shows_the_50_newest_events_only(login, viewer, env_a):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    record(
        env_a,
        *(
            {"userId": "u1", "name": f"tick-{i:02d}", "timestamp": (start + timedelta(minutes=i)).isoformat()}
            for i in range(60)
        ),
    )

    response = login(viewer).get(PROFILE_URL)

    names = [row.name for row in response.context["events"]]
    assert names == [f"tick-{i:02d}" for i in range(59, 9, -1)]
    assert "The 50 most recent events." in response.content.decode()


def test_long_properties_are_cut_with_the_whole_text_in_a_tooltip(login, viewer, env_a):
    record(env_a, {"userId": "u1", "name": "big", "properties": {"text": "y" * 400}})

    page = login(viewer).get(PROFILE_URL).content.decode()

    assert "y" * 400 in page  # the title attribute
    assert "…" in page


def test_without_events_the_profile_says_how_events_arrive(login, viewer, env_a):
    CustomerFactory(environment=env_a, user_id="u1")

    page = login(viewer).get(PROFILE_URL).content.decode()

    assert "No events yet." in page
    assert "POST /api/v1/acme/events" in page


def test_another_environments_events_are_not_shown(login, viewer, env_a, env_b):
    CustomerFactory(environment=env_a, user_id="u1")
    record(env_b, {"userId": "u1", "name": "globex-only"})

    page = login(viewer).get(PROFILE_URL).content.decode()

    assert "globex-only" not in page
    assert "No events yet." in page


def test_the_outsider_gets_404_on_the_profile(login, outsider, env_a):
    record(env_a, {"userId": "u1", "name": "purchase"})

    assert login(outsider).get(PROFILE_URL).status_code == 404


def test_the_events_of_a_profile_take_a_fixed_number_of_queries(login, viewer, env_a, django_assert_max_num_queries):
    record(env_a, *({"userId": "u1", "name": f"e{i}", "properties": {"i": i}} for i in range(30)))
    client = login(viewer)
    client.get(PROFILE_URL)  # warm the session

    with django_assert_max_num_queries(12):
        client.get(PROFILE_URL)


def test_admin_lists_events_read_only_and_searches_by_user_id_and_name(admin_client, env_a):
    record(env_a, {"userId": "lars-1", "name": "purchase"}, {"userId": "maya-2", "name": "signup"})
    event = Event.objects.get(user_id="lars-1")

    by_user = admin_client.get("/admin/customers/event/", {"q": "lars"})
    by_name = admin_client.get("/admin/customers/event/", {"q": "signup"})
    detail = admin_client.get(f"/admin/customers/event/{event.pk}/change/")
    add = admin_client.get("/admin/customers/event/add/")

    assert by_user.status_code == 200
    assert [e.user_id for e in by_user.context["cl"].result_list] == ["lars-1"]
    assert [e.user_id for e in by_name.context["cl"].result_list] == ["maya-2"]
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert add.status_code == 403
