"""Every accepted shape of the start request normalises to the same canonical starts."""

from __future__ import annotations

from typing import Any

import pytest

from flows.start_requests import StartRequest, declared_schema_for, parse_start_requests
from workbench.errors import Invalid

CANONICAL = {
    "targetUserIds": ["76DHG129387"],
    "flowInvocationId": "6fad5d419180",
    "variables": {"firstName": "Lars"},
    "notificationDetail": {"title": "Hi"},
    "metadata": {"source": "crm"},
    "cardOptions": {"priority": 5},
}
EXPECTED = StartRequest(
    target_user_ids=["76DHG129387"],
    flow_invocation_id="6fad5d419180",
    variables={"firstName": "Lars"},
    notification_detail={"title": "Hi"},
    metadata={"source": "crm"},
    card_options={"priority": 5},
)


def errors_of(body: Any) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as raised:
        parse_start_requests(body)
    return raised.value.errors


def test_the_canonical_shape_is_taken_as_it_is() -> None:
    assert parse_start_requests(CANONICAL) == [EXPECTED]


def test_only_target_user_ids_is_required() -> None:
    assert parse_start_requests({"targetUserIds": ["a"]}) == [StartRequest(target_user_ids=["a"])]


def test_atomics_flows_envelope_normalises_to_the_canonical_shape() -> None:
    body = {
        "flows": [
            {
                "target": {"usersById": ["76DHG129387"]},
                "flowInvocationId": "6fad5d419180",
                "payload": {
                    "variables": {"firstName": "Lars"},
                    "metadata": {"source": "crm"},
                    "notificationDetail": {"title": "Hi"},
                    "cardOptions": {"priority": 5},
                },
            }
        ]
    }

    assert parse_start_requests(body) == [EXPECTED]


def test_the_older_connector_shape_reads_detail_as_variables() -> None:
    body = {
        "payload": {
            "target": {"usersById": ["76DHG129387"]},
            "detail": {"firstName": "Lars"},
            "notificationDetail": {"title": "Hi"},
            "metadata": {"source": "crm"},
        }
    }

    [start] = parse_start_requests(body)

    assert start.variables == {"firstName": "Lars"}
    assert start.target_user_ids == ["76DHG129387"]
    assert start.metadata == {"source": "crm"}


def test_an_array_is_a_batch_of_canonical_starts() -> None:
    starts = parse_start_requests([CANONICAL, {"targetUserIds": ["b"]}])

    assert [start.target_user_ids for start in starts] == [["76DHG129387"], ["b"]]


def test_a_user_listed_twice_in_one_start_is_targeted_once() -> None:
    [start] = parse_start_requests({"targetUserIds": ["a", "b", "a"]})

    assert start.target_user_ids == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "targetUserIds"),
        ({"targetUserIds": []}, "targetUserIds"),
        ({"targetUserIds": "a"}, "targetUserIds"),
        ({"targetUserIds": [1]}, "targetUserIds"),
        ({"targetUserIds": [""]}, "targetUserIds"),
        ({"targetUserIds": [f"u{i}" for i in range(1001)]}, "targetUserIds"),
        ({"targetUserIds": ["a"], "variables": []}, "variables"),
        ({"targetUserIds": ["a"], "flowInvocationId": 7}, "flowInvocationId"),
        ({"targetUserIds": ["a"], "colour": "red"}, "colour"),
        ("not an object", "request"),
        ([], "request"),
    ],
)
def test_an_invalid_request_names_where_it_is_wrong(body: Any, location: str) -> None:
    assert location in errors_of(body)


def test_more_than_one_hundred_starts_is_refused() -> None:
    assert "request" in errors_of([{"targetUserIds": ["a"]}] * 101)


def test_one_hundred_starts_are_accepted() -> None:
    assert len(parse_start_requests([{"targetUserIds": ["a"]}] * 100)) == 100


def test_a_batch_with_one_invalid_start_starts_nothing_and_names_the_bad_item() -> None:
    errors = errors_of([{"targetUserIds": ["a"]}, {"targetUserIds": []}])

    assert list(errors) == ["1.targetUserIds"]


def test_an_atomic_envelope_without_targets_is_refused_at_its_location() -> None:
    errors = errors_of({"flows": [{"payload": {}}]})

    assert "flows.0.target" in errors


# --- The documented shape agrees with the parser ------------------------------------------------
# The parser validates (it is on every start's path); the serializers document. One table
# holds them to the same answer, so the schema cannot promise what the API refuses or the
# reverse.

ATOMIC = {"flows": [{"target": {"usersById": ["a"]}, "flowInvocationId": "k", "payload": {"variables": {}}}]}
CONNECTOR = {"payload": {"target": {"usersById": ["a"]}, "detail": {"x": 1}, "metadata": None}}
AGREED: list[tuple[Any, bool]] = [
    (CANONICAL, True),
    ({"targetUserIds": ["a"]}, True),
    ({"targetUserIds": [" "], "flowInvocationId": " "}, True),
    ({"targetUserIds": ["a", "a"], "variables": None, "flowInvocationId": None}, True),
    ({"targetUserIds": ["x" * 255]}, True),
    ({"targetUserIds": [f"u{i}" for i in range(1000)]}, True),
    (ATOMIC, True),
    ({"flows": [{"target": {"usersById": ["a"]}}]}, True),
    (CONNECTOR, True),
    ([CANONICAL, {"targetUserIds": ["b"]}], True),
    ([{"targetUserIds": ["a"]}] * 100, True),
    ({}, False),
    ({"targetUserIds": []}, False),
    ({"targetUserIds": "a"}, False),
    ({"targetUserIds": [1]}, False),
    ({"targetUserIds": [""]}, False),
    ({"targetUserIds": ["x" * 256]}, False),
    ({"targetUserIds": ["a\x00"]}, False),
    ({"targetUserIds": [f"u{i}" for i in range(1001)]}, False),
    ({"targetUserIds": ["a"], "variables": []}, False),
    ({"targetUserIds": ["a"], "metadata": "x"}, False),
    ({"targetUserIds": ["a"], "flowInvocationId": 7}, False),
    ({"targetUserIds": ["a"], "flowInvocationId": ""}, False),
    ({"targetUserIds": ["a"], "flowInvocationId": "k" * 256}, False),
    ({"targetUserIds": ["a"], "colour": "red"}, False),
    ({"flows": []}, False),
    ({"flows": {}}, False),
    ({"flows": [{"payload": {}}]}, False),
    ({"flows": [{"target": {"usersById": ["a"]}, "payload": None}]}, False),
    ({"flows": [{"target": {"usersById": ["a"]}, "payload": {"detail": {}}}]}, False),
    ({"flows": [{"target": {"usersById": ["a"]}, "extra": 1}]}, False),
    ({"flows": [{"target": {"usersById": ["a"]}}], "extra": 1}, False),
    ({"flows": [{"target": {"usersById": ["a"]}}] * 101}, False),
    ({"payload": {"target": {"usersById": []}}}, False),
    ({"payload": {"target": {}}}, False),
    ({"payload": {"target": {"usersById": ["a"]}, "variables": {}}}, False),
    ({"payload": {"detail": {}}}, False),
    ([], False),
    ([{"targetUserIds": ["a"]}] * 101, False),
    ([{"targetUserIds": ["a"]}, "x"], False),
    ("not an object", False),
    (7, False),
    (None, False),
]


@pytest.mark.parametrize(("body", "valid"), AGREED)
def test_the_documented_shape_and_the_parser_agree(body: Any, valid: bool) -> None:
    try:
        parse_start_requests(body)
        parsed = True
    except Invalid:
        parsed = False
    declared = declared_schema_for(body).is_valid()

    assert (parsed, declared) == (valid, valid)
