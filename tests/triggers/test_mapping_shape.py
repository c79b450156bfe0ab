"""The shape check: a body must keep the sample's paths and types (SPEC section 4)."""

from __future__ import annotations

from triggers.mapping import shape_mismatches
from triggers.mapping.shape import MAX_MISMATCHES

SAMPLE = {
    "id": "evt_1",
    "amount": 1999,
    "paid": True,
    "coupon": None,
    "customer": {"id": "user-1", "email": "ada@example.com"},
    "items": [{"sku": "SKU-1", "quantity": 1}],
    "tags": [],
}


def test_a_body_of_the_same_shape_matches() -> None:
    body = {
        "id": "evt_2",
        "amount": 12.5,
        "paid": False,
        "coupon": None,
        "customer": {"id": "user-2", "email": "grace@example.com"},
        "items": [{"sku": "SKU-9", "quantity": 3}, {"sku": "SKU-8", "quantity": 1}],
        "tags": ["vip"],
    }

    assert shape_mismatches(SAMPLE, body) == []


def test_a_missing_path_is_named() -> None:
    body = {**SAMPLE, "customer": {"email": "ada@example.com"}}

    assert shape_mismatches(SAMPLE, body) == ["$.customer.id is missing"]


def test_a_changed_type_is_named_with_both_types() -> None:
    body = {**SAMPLE, "amount": "19.99", "paid": 1, "customer": ["user-1"]}

    assert shape_mismatches(SAMPLE, body) == [
        "$.amount is a string, the sample has a number",
        "$.paid is a number, the sample has a boolean",
        "$.customer is an array, the sample has an object",
    ]


def test_null_in_either_matches_anything() -> None:
    body = {**SAMPLE, "coupon": {"code": "SPRING"}, "customer": None}

    assert shape_mismatches(SAMPLE, body) == []


def test_extra_fields_are_fine() -> None:
    body = {**SAMPLE, "livemode": True, "customer": {**SAMPLE["customer"], "name": "Ada"}}  # type: ignore[dict-item]

    assert shape_mismatches(SAMPLE, body) == []


def test_every_element_of_a_body_array_is_compared_with_the_samples_first_element() -> None:
    body = {**SAMPLE, "items": [{"sku": "SKU-1", "quantity": 1}, {"sku": 42, "quantity": 1}, {"quantity": 2}]}

    assert shape_mismatches(SAMPLE, body) == [
        "$.items[1].sku is a number, the sample has a string",
        "$.items[2].sku is missing",
    ]


def test_empty_arrays_on_either_side_match() -> None:
    assert shape_mismatches(SAMPLE, {**SAMPLE, "items": []}) == []
    assert shape_mismatches(SAMPLE, {**SAMPLE, "tags": [{"any": "thing"}]}) == []


def test_a_different_root_type_is_one_message() -> None:
    assert shape_mismatches(SAMPLE, [SAMPLE]) == ["$ is an array, the sample has an object"]


def test_keys_that_are_not_identifiers_are_quoted_in_messages() -> None:
    assert shape_mismatches({"first-name": "Ada"}, {}) == ["$['first-name'] is missing"]


def test_messages_come_in_document_order_and_are_capped() -> None:
    sample = {f"field{index}": 1 for index in range(40)}

    messages = shape_mismatches(sample, {})

    assert len(messages) == MAX_MISMATCHES
    assert messages[:2] == ["$.field0 is missing", "$.field1 is missing"]
    assert messages[-1] == f"... and {40 - MAX_MISMATCHES + 1} more differences"
