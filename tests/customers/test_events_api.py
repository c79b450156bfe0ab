"""The Events API (SPEC section 5): POST events, its validation, dedup, clock skew and profiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from customers import hooks
from customers.models import Customer, Event, EventDailyCount, EventMessageKey
from customers.services import event_message_keys_prune, events_record
from tests.factories import CustomerFactory
from workbench.errors import Invalid

pytestmark = pytest.mark.django_db

URL = "/api/v1/acme/events"
ONE_MIB = 1024 * 1024


def post(session, body, env: str = "acme"):
    return session.post(f"/api/v1/{env}/events", json.dumps(body), content_type="application/json")


def stored() -> dict[str, int]:
    """How many rows each events table holds: a refused request changes none of them."""
    return {
        "events": Event.objects.count(),
        "counts": EventDailyCount.objects.count(),
        "keys": EventMessageKey.objects.count(),
        "customers": Customer.objects.count(),
    }


def assert_invalid(response, *fields: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_request"
    for field in fields:
        assert field in body["errors"], body["errors"]
    return body["errors"]


@pytest.fixture
def announced():
    """What the customers hooks announce, in order, while the test runs."""
    calls: list[tuple[str, dict]] = []

    def changed(**kwargs):
        calls.append(("customers_changed", kwargs))

    def recorded(**kwargs):
        calls.append(("events_recorded", kwargs))

    hooks.customers_changed.subscribe(changed)
    hooks.events_recorded.subscribe(recorded)
    yield calls
    hooks.customers_changed._subscribers.remove(changed)
    hooks.events_recorded._subscribers.remove(recorded)


# --- accepted events ------------------------------------------------------------------------


def test_events_are_stored_and_answered_202_with_the_counts(events_a, env_a):
    response = post(
        events_a,
        [
            {"userId": "u1", "name": "purchase", "properties": {"plan": "pro", "amount": 49.5}},
            {"userId": "u2", "name": "signup"},
        ],
    )

    assert response.status_code == 202, response.content
    assert response.json() == {"data": {"accepted": 2, "duplicates": 0}}
    purchase = Event.objects.get(environment=env_a, user_id="u1")
    assert (purchase.name, purchase.properties) == ("purchase", {"plan": "pro", "amount": 49.5})
    assert Event.objects.get(user_id="u2").properties == {}


def test_an_unknown_user_id_gets_a_minimal_profile_seen_when_the_event_happened(events_a, env_a):
    post(events_a, [{"userId": "new-1", "name": "app_open", "timestamp": "2026-03-01T10:00:00Z"}])

    customer = Customer.objects.get(environment=env_a, user_id="new-1")
    assert customer.last_seen_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert customer.first_seen_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (customer.name, customer.tags, customer.custom_fields) == (None, [], {})


def test_last_seen_moves_to_the_latest_event_and_never_backwards(events_a, env_a):
    CustomerFactory(environment=env_a, user_id="u1", name="Lars", last_seen_at=datetime(2026, 3, 5, tzinfo=UTC))

    post(events_a, [{"userId": "u1", "name": "old", "timestamp": "2026-03-01T00:00:00Z"}])
    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert customer.last_seen_at == datetime(2026, 3, 5, tzinfo=UTC)
    assert customer.first_seen_at == datetime(2026, 3, 1, tzinfo=UTC)  # was empty

    post(
        events_a,
        [
            {"userId": "u1", "name": "later", "timestamp": "2026-03-09T00:00:00Z"},
            {"userId": "u1", "name": "between", "timestamp": "2026-03-07T00:00:00Z"},
        ],
    )
    customer.refresh_from_db()
    assert customer.last_seen_at == datetime(2026, 3, 9, tzinfo=UTC)
    assert customer.first_seen_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert customer.name == "Lars"


def test_events_add_to_the_daily_counts_per_customer_name_and_utc_day(events_a, env_a):
    post(
        events_a,
        [
            {"userId": "u1", "name": "purchase", "timestamp": "2026-03-01T23:30:00+00:00"},
            {"userId": "u1", "name": "purchase", "timestamp": "2026-03-02T00:30:00+02:00"},  # 1 March UTC
            {"userId": "u1", "name": "purchase", "timestamp": "2026-03-02T08:00:00Z"},
        ],
    )
    post(events_a, [{"userId": "u1", "name": "purchase", "timestamp": "2026-03-01T08:00:00Z"}])

    counts = dict(EventDailyCount.objects.filter(environment=env_a).values_list("day", "count"))
    assert {day.isoformat(): count for day, count in counts.items()} == {"2026-03-01": 3, "2026-03-02": 1}


# --- time -----------------------------------------------------------------------------------


def test_without_a_timestamp_the_time_of_receipt_is_used(env_a):
    received = datetime(2026, 4, 1, 12, tzinfo=UTC)

    events_record(
        environment=env_a,
        events=[{"userId": "u1", "name": "a", "sentAt": "2026-04-01T11:00:00Z"}],
        received_at=received,
    )

    assert Event.objects.get().occurred_at == received


def test_with_sent_at_the_senders_clock_skew_is_corrected(env_a):
    # The sender's clock is 10 minutes behind: it sent at 11:50 (its clock) what we got at 12:00.
    events_record(
        environment=env_a,
        events=[
            {
                "userId": "u1",
                "name": "a",
                "timestamp": "2026-04-01T11:45:00Z",
                "sentAt": "2026-04-01T11:50:00Z",
            }
        ],
        received_at=datetime(2026, 4, 1, 12, tzinfo=UTC),
    )

    assert Event.objects.get().occurred_at == datetime(2026, 4, 1, 11, 55, tzinfo=UTC)


def test_a_timestamp_alone_is_taken_as_it_is(env_a):
    events_record(
        environment=env_a,
        events=[{"userId": "u1", "name": "a", "timestamp": "2026-04-01T13:45:00+02:00"}],
        received_at=datetime(2026, 4, 1, 12, tzinfo=UTC),
    )

    assert Event.objects.get().occurred_at == datetime(2026, 4, 1, 11, 45, tzinfo=UTC)


# --- messageId ------------------------------------------------------------------------------


def test_a_repeated_message_id_is_a_duplicate_counted_once(events_a, env_a):
    event = {"userId": "u1", "name": "purchase", "messageId": "m-1"}
    first = post(events_a, [event])

    again = post(events_a, [event, {"userId": "u1", "name": "purchase", "messageId": "m-2"}])
    only_duplicates = post(events_a, [event])

    assert first.json()["data"] == {"accepted": 1, "duplicates": 0}
    assert again.status_code == 202
    assert again.json()["data"] == {"accepted": 1, "duplicates": 1}
    assert only_duplicates.status_code == 202
    assert only_duplicates.json()["data"] == {"accepted": 0, "duplicates": 1}
    assert Event.objects.filter(environment=env_a).count() == 2
    assert EventDailyCount.objects.get(environment=env_a).count == 2


def test_the_second_event_with_a_message_id_in_one_request_is_a_duplicate(events_a, env_a):
    response = post(
        events_a,
        [
            {"userId": "u1", "name": "first", "messageId": "same"},
            {"userId": "u1", "name": "second", "messageId": "same"},
            {"userId": "u1", "name": "no-id"},
            {"userId": "u1", "name": "no-id"},
        ],
    )

    assert response.json()["data"] == {"accepted": 3, "duplicates": 1}
    assert sorted(Event.objects.values_list("name", flat=True)) == ["first", "no-id", "no-id"]


def test_a_message_id_counts_again_after_24_hours(env_a):
    start = datetime(2026, 4, 1, 12, tzinfo=UTC)
    event = {"userId": "u1", "name": "a", "messageId": "m-1"}

    first = events_record(environment=env_a, events=[event], received_at=start)
    within = events_record(environment=env_a, events=[event], received_at=start + timedelta(hours=23, minutes=59))
    after = events_record(environment=env_a, events=[event], received_at=start + timedelta(hours=24))
    again = events_record(environment=env_a, events=[event], received_at=start + timedelta(hours=25))

    assert (first.accepted, within.accepted, after.accepted, again.accepted) == (1, 0, 1, 0)
    assert Event.objects.count() == 2


def test_message_ids_are_kept_per_environment(events_a, api_client, env_b):
    event = {"userId": "u1", "name": "a", "messageId": "m-1"}

    post(events_a, [event])
    other = post(api_client(env_b, "events"), [event], env="globex")

    assert other.json()["data"] == {"accepted": 1, "duplicates": 0}


def test_pruning_forgets_only_message_ids_older_than_24_hours(env_a):
    now = datetime(2026, 4, 2, 12, tzinfo=UTC)
    events_record(
        environment=env_a,
        events=[{"userId": "u", "name": "a", "messageId": "old"}],
        received_at=now - timedelta(hours=25),
    )
    events_record(
        environment=env_a,
        events=[{"userId": "u", "name": "a", "messageId": "new"}],
        received_at=now - timedelta(hours=1),
    )

    assert event_message_keys_prune(now=now) == 1

    assert list(EventMessageKey.objects.values_list("message_id", flat=True)) == ["new"]


# --- hooks ----------------------------------------------------------------------------------


def test_accepted_events_and_changed_profiles_are_announced(events_a, env_a, announced):
    CustomerFactory(environment=env_a, user_id="known", last_seen_at=datetime(2020, 1, 1, tzinfo=UTC))
    post(events_a, [{"userId": "x", "name": "a", "messageId": "m-1"}])
    announced.clear()

    post(
        events_a,
        [
            {"userId": "known", "name": "purchase", "properties": {"plan": "pro"}, "messageId": "m-2"},
            {"userId": "fresh", "name": "signup"},
            {"userId": "x", "name": "a", "messageId": "m-1"},  # a duplicate: not announced
        ],
    )

    by_hook = {name: kwargs for name, kwargs in announced if name == "events_recorded"}
    recorded = by_hook["events_recorded"]["events"]
    assert [(e.user_id, e.name, e.message_id) for e in recorded] == [
        ("known", "purchase", "m-2"),
        ("fresh", "signup", None),
    ]
    assert recorded[0].properties == {"plan": "pro"}
    assert recorded[0].environment_id == env_a.pk
    assert {e.event_id for e in recorded} == set(
        Event.objects.filter(user_id__in=["known", "fresh"]).values_list("id", flat=True)
    )
    changes = [kwargs for name, kwargs in announced if name == "customers_changed"]
    assert {"environment_id": env_a.pk, "user_ids": ["fresh"], "fields": {"*"}} in changes
    assert any(c["user_ids"] == ["known"] and "lastSeenAt" in c["fields"] for c in changes)


def test_an_event_that_moves_nothing_announces_no_profile_change(env_a, announced):
    CustomerFactory(
        environment=env_a,
        user_id="u1",
        first_seen_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_seen_at=datetime(2026, 5, 1, tzinfo=UTC),
    )

    events_record(environment=env_a, events=[{"userId": "u1", "name": "a", "timestamp": "2026-04-01T00:00:00Z"}])

    assert [name for name, _ in announced] == ["events_recorded"]


def test_profile_upserts_announce_the_fields_they_were_given(events_a, env_a, announced):
    CustomerFactory(environment=env_a, user_id="old")

    events_a.post(
        "/api/v1/acme/customers",
        [{"userId": "old", "country": "NO", "tags": ["vip"], "customFields": {"plan": "pro"}}, {"userId": "new"}],
        format="json",
    )

    changes = [kwargs for name, kwargs in announced if name == "customers_changed"]
    assert {"environment_id": env_a.pk, "user_ids": ["new"], "fields": {"*"}} in changes
    assert {
        "environment_id": env_a.pk,
        "user_ids": ["old"],
        "fields": {"country", "tags", "customFields.plan"},
    } in changes


# --- refused requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"name": "a"}, "[1].userId"),
        ({"userId": "u"}, "[1].name"),
        ({"userId": "", "name": "a"}, "[1].userId"),
        ({"userId": "   ", "name": "a"}, "[1].userId"),
        ({"userId": 42, "name": "a"}, "[1].userId"),
        ({"userId": "u", "name": None}, "[1].name"),
        ({"userId": "u" * 256, "name": "a"}, "[1].userId"),
        ({"userId": "u", "name": "n" * 256}, "[1].name"),
        ({"userId": "u", "name": "a", "properties": ["x"]}, "[1].properties"),
        ({"userId": "u", "name": "a", "properties": "x"}, "[1].properties"),
        ({"userId": "u", "name": "a", "timestamp": "yesterday"}, "[1].timestamp"),
        ({"userId": "u", "name": "a", "timestamp": 1700000000}, "[1].timestamp"),
        ({"userId": "u", "name": "a", "sentAt": "2026-13-01T00:00:00Z"}, "[1].sentAt"),
        ({"userId": "u", "name": "a", "messageId": "m" * 101}, "[1].messageId"),
        ({"userId": "u", "name": "a", "messageId": 7}, "[1].messageId"),
        ({"userId": "u", "name": "a", "type": "track"}, "[1].type"),
        ("not an object", "[1]"),
    ],
)
def test_an_invalid_event_refuses_the_whole_request_and_stores_nothing(events_a, event, field):
    before = stored()

    response = post(events_a, [{"userId": "fine", "name": "ok", "messageId": "m-ok"}, event])

    assert_invalid(response, field)
    assert stored() == before


def test_every_invalid_event_is_named_by_its_index(events_a):
    response = post(
        events_a, [{"userId": "u", "name": "a"}, {"name": "b"}, {"userId": "u"}, {"userId": "u", "name": "c"}]
    )

    assert set(assert_invalid(response)) == {"[1].userId", "[2].name"}


def test_a_skew_correction_out_of_the_calendar_takes_the_time_of_receipt(env_a):
    received = datetime(2026, 4, 1, 12, tzinfo=UTC)

    events_record(
        environment=env_a,
        events=[{"userId": "u", "name": "a", "timestamp": "9999-12-31T23:00:00Z", "sentAt": "2000-01-01T00:00:00Z"}],
        received_at=received,
    )

    assert Event.objects.get().occurred_at == received


def test_an_event_over_32_kib_is_refused_by_its_index(events_a):
    before = stored()
    big = {"userId": "u", "name": "a", "properties": {"text": "x" * (32 * 1024)}}

    response = post(events_a, [{"userId": "u", "name": "small"}, big])

    assert_invalid(response, "[1]")
    assert stored() == before


def test_an_event_just_under_32_kib_is_taken(events_a):
    event = {"userId": "u", "name": "a", "properties": {"text": ""}}
    event["properties"]["text"] = "x" * (32 * 1024 - len(json.dumps(event, separators=(",", ":"))))

    response = post(events_a, [event])

    assert response.status_code == 202, response.content


@pytest.mark.parametrize("body", [{"userId": "u", "name": "a"}, [], "events", None])
def test_anything_but_an_array_of_events_is_refused(events_a, body):
    response = post(events_a, body)

    assert_invalid(response, "request")
    assert stored()["events"] == 0


def test_more_than_1000_events_are_refused_and_1000_are_taken(events_a):
    many = [{"userId": f"u{i % 50}", "name": "tick"} for i in range(1001)]

    refused = post(events_a, many)
    taken = post(events_a, many[:1000])

    assert_invalid(refused, "request")
    assert taken.json()["data"] == {"accepted": 1000, "duplicates": 0}
    assert Customer.objects.count() == 50


def test_a_body_over_one_mib_is_refused_with_413_and_nothing_is_stored(events_a):
    events = [{"userId": "u", "name": "a", "properties": {"text": "x" * 30_000}} for _ in range(40)]

    response = post(events_a, events)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert stored()["events"] == 0


def test_malformed_json_is_refused(events_a):
    response = events_a.post(URL, '[{"userId": "u"', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


# --- who may send ---------------------------------------------------------------------------


def test_another_environments_credential_gets_404_and_stores_nothing(session_with):
    response = post(session_with("outsider", "events"), [{"userId": "u", "name": "a"}])

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert stored()["events"] == 0


@pytest.mark.parametrize("role", ["workbench", "auth"])
def test_other_roles_are_refused_with_403(api_client, env_a, role):
    response = post(api_client(env_a, role), [{"userId": "u", "name": "a"}])

    assert response.status_code == 403


def test_without_a_token_the_answer_is_401(session_with):
    response = post(session_with("missing", "events"), [{"userId": "u", "name": "a"}])

    assert response.status_code == 401


def test_the_service_refuses_with_invalid_keyed_by_index(env_a):
    with pytest.raises(Invalid) as refused:
        events_record(environment=env_a, events=[{"userId": "u", "name": "a"}, {"userId": "u", "name": ""}])

    assert set(refused.value.errors) == {"[1].name"}


# --- the shortcut for plainly valid events --------------------------------------------------

TEXTS = ["u", "  padded  ", " ", "", "x" * 255, "x" * 256, "nul\x00", "lone\ud800", 7, None, True, ["u"]]
MOMENTS = [
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00.123456+05:30",
    "2026-03-01 10:00",
    "2026-03-01T10:00:00",  # naive: the shape makes it aware
    "2026-03-01",
    "0001-01-01T00:00:00+01:00",  # leaves the calendar in UTC
    "9999-12-31T23:59:59-01:00",
    "20260301T100000Z",
    "yesterday",
    1700000000,
    None,
]


def shape_value(raw):
    from customers.services import EventShape
    from workbench.shapes import validate_shape

    try:
        return validate_shape(EventShape(), raw, at="[0]")
    except Invalid:
        return "refused"


@pytest.mark.parametrize(
    "raw",
    [
        *({"userId": text, "name": "a"} for text in TEXTS),
        *({"userId": "u", "name": text} for text in TEXTS),
        *({"userId": "u", "name": "a", "messageId": text} for text in [*TEXTS, "m" * 100, "m" * 101]),
        *({"userId": "u", "name": "a", "timestamp": moment} for moment in MOMENTS),
        *({"userId": "u", "name": "a", "sentAt": moment} for moment in MOMENTS),
        *(
            {"userId": "u", "name": "a", "properties": value}
            for value in [{}, {"a": [1, {"b": None}]}, None, [], "x", 1]
        ),
        {"userId": "u", "name": "a", "extra": 1},
        {"userId": "u"},
        {},
        [],
        "event",
        None,
    ],
)
def test_the_shortcut_takes_only_what_the_shape_takes_and_reads_it_alike(raw):
    from django.utils import timezone

    from customers.services import _plain_event

    shortcut = _plain_event(raw, timezone.get_current_timezone())

    if shortcut is not None:
        assert shortcut == shape_value(raw)
        for key in ("timestamp", "sentAt"):
            if shortcut.get(key) is not None:
                assert shortcut[key].utcoffset() == shape_value(raw)[key].utcoffset()


def test_an_ordinary_event_takes_the_shortcut():
    from django.utils import timezone

    from customers.services import _plain_event

    event = {
        "userId": "user-1",
        "name": "purchase",
        "properties": {"plan": "pro"},
        "timestamp": "2026-03-01T10:00:00+00:00",
        "sentAt": "2026-03-01T10:00:05Z",
        "messageId": "m-1",
    }

    assert _plain_event(event, timezone.get_current_timezone()) is not None


def test_the_hourly_prune_forgets_message_ids_older_than_a_day(events_a):
    from customers.tasks import prune_message_keys

    post(events_a, [{"userId": "u1", "name": "opened", "messageId": "m-old"}])
    EventMessageKey.objects.update(created_at=datetime.now(UTC) - timedelta(hours=25))
    post(events_a, [{"userId": "u1", "name": "opened", "messageId": "m-new"}])

    prune_message_keys()

    assert list(EventMessageKey.objects.values_list("message_id", flat=True)) == ["m-new"]


def test_a_user_id_of_control_characters_is_an_id_not_blank_as_the_schema_says(events_a):
    # ECMAScript's \s (the schema's pattern) is narrower than Python's white space.
    response = post(events_a, [{"userId": "\u001f", "name": "opened"}])

    assert response.status_code == 202, response.content
    assert Event.objects.get().user_id == "\u001f"
