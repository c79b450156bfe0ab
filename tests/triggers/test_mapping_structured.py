"""Structured mappings and the mapping configuration (SPEC section 4, "Mapping")."""

from __future__ import annotations

from typing import Any

import pytest

from flows.start_requests import parse_start_requests
from triggers.mapping import (
    MappingError,
    WebhookInput,
    apply_mapping,
    validate_mapping_config,
)
from triggers.mapping import structured as structured_module
from workbench.errors import Invalid

ORDER = {
    "id": 820982911946154508,
    "event": {"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "type": "order.paid"},
    "customer": {"id": "user-0042", "first_name": "Ada", "address": {"city": "London", "country": "GB"}},
    "items": [
        {"sku": "SKU-1", "title": "Gear", "price": 12.5, "buyer": "user-0042"},
        {"sku": "SKU-2", "title": "Lever", "price": 7.0, "buyer": "user-0043"},
    ],
    "total": 19.5,
    "coupon": None,
}


def webhook(body: Any) -> WebhookInput:
    return WebhookInput(body=body, headers={"x-topic": "orders/paid"}, query={"shop": "acme"}, method="POST")


def mapped(structured: dict[str, Any], body: Any = ORDER) -> Any:
    mapping = validate_mapping_config({"type": "structured", "structured": structured})
    return apply_mapping(mapping, webhook(body))


def config_errors(mapping: Any) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as caught:
        validate_mapping_config(mapping)
    return caught.value.errors


def test_a_realistic_nested_payload_maps_to_a_valid_start_request() -> None:
    output = mapped(
        {
            "targetUserIds": "$.customer.id",
            "flowInvocationId": "$.event.id",
            "variables": {
                "firstName": "$.customer.first_name",
                "city": "$.customer.address.city",
                "order": {"skus": "$.items[*].sku", "total": "$.total"},
                "channel": {"value": "webhook"},
            },
            "metadata": {"source": {"value": "shop"}, "eventType": "$.event.type"},
            "cardOptions": {"priority": {"value": 5}},
        }
    )

    assert output == {
        "targetUserIds": ["user-0042"],
        "flowInvocationId": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "variables": {
            "firstName": "Ada",
            "city": "London",
            "order": {"skus": ["SKU-1", "SKU-2"], "total": 19.5},
            "channel": "webhook",
        },
        "metadata": {"source": "shop", "eventType": "order.paid"},
        "cardOptions": {"priority": 5},
    }
    [start] = parse_start_requests(output)
    assert start.target_user_ids == ["user-0042"]
    assert start.variables["order"]["skus"] == ["SKU-1", "SKU-2"]


def test_one_string_for_target_user_ids_is_wrapped_in_a_list() -> None:
    assert mapped({"targetUserIds": "$.customer.id"})["targetUserIds"] == ["user-0042"]


def test_a_path_with_several_matches_gives_a_list_and_one_match_its_value() -> None:
    output = mapped({"targetUserIds": "$.items[*].buyer", "variables": {"first": "$.items[0].sku"}})

    assert output["targetUserIds"] == ["user-0042", "user-0043"]
    assert output["variables"] == {"first": "SKU-1"}


def test_target_user_ids_may_list_several_paths_and_literals() -> None:
    output = mapped({"targetUserIds": ["$.customer.id", "$.referrer.id", {"value": "ops-team"}]})

    assert output["targetUserIds"] == ["user-0042", "ops-team"]


def test_target_user_ids_that_match_nothing_are_a_mapping_error() -> None:
    with pytest.raises(MappingError) as caught:
        mapped({"targetUserIds": "$.customer.id"}, body={"customer": {"email": "ada@example.com"}})

    assert caught.value.errors == ["targetUserIds: $.customer.id matched nothing in the body"]


def test_a_list_of_target_paths_that_all_match_nothing_is_a_mapping_error() -> None:
    with pytest.raises(MappingError) as caught:
        mapped({"targetUserIds": ["$.buyer.id", "$.seller.id"]})

    assert caught.value.errors == ["targetUserIds: none of $.buyer.id, $.seller.id matched anything in the body"]


def test_a_path_that_matches_nothing_elsewhere_leaves_the_key_out_so_defaults_apply() -> None:
    output = mapped(
        {
            "targetUserIds": "$.customer.id",
            "flowInvocationId": "$.event.missing",
            "variables": {"firstName": "$.customer.first_name", "lastName": "$.customer.last_name"},
            "metadata": {"shipping": {"city": "$.shipping.city"}},
        }
    )

    assert "flowInvocationId" not in output
    assert output["variables"] == {"firstName": "Ada"}
    assert output["metadata"] == {}


def test_a_null_in_the_body_is_a_match() -> None:
    assert mapped({"targetUserIds": "$.customer.id", "variables": {"coupon": "$.coupon"}})["variables"] == {
        "coupon": None
    }


def test_literals_give_their_value_and_a_changed_result_leaves_the_config_alone() -> None:
    mapping = validate_mapping_config(
        {
            "type": "structured",
            "structured": {
                "targetUserIds": {"value": ["user-1", "user-2"]},
                "variables": {"settings": {"value": {"tier": "gold", "limits": [1, 2]}}, "on": {"value": True}},
            },
        }
    )

    first = apply_mapping(mapping, webhook({}))
    first["variables"]["settings"]["tier"] = "changed"
    second = apply_mapping(mapping, webhook({}))

    assert first["targetUserIds"] == ["user-1", "user-2"]
    assert second["variables"] == {"settings": {"tier": "gold", "limits": [1, 2]}, "on": True}


def test_integer_ids_become_strings_for_targets_and_the_invocation_id() -> None:
    output = mapped(
        {"targetUserIds": "$.customer.number", "flowInvocationId": "$.id"},
        {"id": 7, "customer": {"number": 115310627314723954}},
    )

    assert output == {"targetUserIds": ["115310627314723954"], "flowInvocationId": "7"}
    parse_start_requests(output)


def test_a_variable_may_be_called_value_at_the_top_of_an_object_field() -> None:
    assert mapped({"targetUserIds": "$.customer.id", "variables": {"value": "$.total"}})["variables"] == {"value": 19.5}


def test_a_path_may_yield_a_whole_object_field() -> None:
    output = mapped({"targetUserIds": "$.customer.id", "variables": "$.customer.address"})

    assert output["variables"] == {"city": "London", "country": "GB"}


def test_filters_select_by_value() -> None:
    output = mapped({"targetUserIds": "$.customer.id", "variables": {"cheap": "$.items[?(@.price < 10)].sku"}})

    assert output["variables"] == {"cheap": "SKU-2"}


def test_paths_address_the_body_only_not_headers_or_query() -> None:
    output = mapped(
        {"targetUserIds": "$.customer.id", "variables": {"topic": "$.headers['x-topic']", "shop": "$.query.shop"}}
    )

    assert output["variables"] == {}


def test_the_none_type_returns_the_body_unchanged() -> None:
    body = {"targetUserIds": ["user-1"], "variables": {"a": 1}}

    assert apply_mapping(validate_mapping_config({"type": "none"}), webhook(body)) is body


def test_each_expression_is_parsed_once_however_often_it_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real_parse = structured_module.parse_jsonpath

    def counting_parse(expression: str) -> Any:
        parsed.append(expression)
        return real_parse(expression)

    monkeypatch.setattr(structured_module, "parse_jsonpath", counting_parse)
    structured_module.compile_path.cache_clear()
    mapping = validate_mapping_config(
        {"type": "structured", "structured": {"targetUserIds": "$.customer.id", "variables": {"sku": "$.items[0].sku"}}}
    )
    for _ in range(50):
        apply_mapping(mapping, webhook(ORDER))
    structured_module.compile_path.cache_clear()

    assert sorted(parsed) == ["$.customer.id", "$.items[0].sku"]


# Validation -------------------------------------------------------------------------------


def test_an_invalid_expression_is_refused_at_its_location() -> None:
    errors = config_errors(
        {"type": "structured", "structured": {"targetUserIds": "$.customer.id", "variables": {"firstName": "$.a[?("}}}
    )

    assert list(errors) == ["structured.variables.firstName"]
    assert "is not a valid JSONPath" in errors["structured.variables.firstName"][0]


def test_a_plain_string_is_refused_with_a_hint_to_use_a_literal() -> None:
    errors = config_errors({"type": "structured", "structured": {"targetUserIds": "customer.id"}})

    assert errors == {
        "structured.targetUserIds": [
            "'customer.id' is not a JSONPath: paths start with $ (e.g. $.customer.id); "
            'write a fixed text as {"value": "..."}.'
        ]
    }


def test_unknown_fields_numbers_and_missing_targets_are_refused_with_their_locations() -> None:
    errors = config_errors(
        {
            "type": "structured",
            "structured": {"target": "$.id", "variables": {"count": 3, "nested": {"deep": ["$.a", True]}}},
        }
    )

    assert set(errors) == {
        "structured.target",
        "structured.targetUserIds",
        "structured.variables.count",
        "structured.variables.nested.deep.1",
    }


def test_a_structured_mapping_must_be_an_object() -> None:
    assert config_errors({"type": "structured", "structured": "$.body"}) == {
        "structured": ["Expected an object shaped like the start request."]
    }


def test_the_configuration_must_name_a_known_type_and_only_known_keys() -> None:
    assert config_errors({"type": "jq", "preset": "stripe"}) == {
        "type": ["Expected one of none, structured, script."],
        "preset": ["Unknown field; a mapping has type, structured, script."],
    }
    assert "mapping" in config_errors(["type", "none"])


def test_the_unselected_part_is_kept_as_a_draft_but_must_be_of_its_kind() -> None:
    draft = {"targetUserIds": "$.not valid ["}

    clean = validate_mapping_config({"type": "none", "structured": draft, "script": "half-written ("})

    assert clean == {"type": "none", "structured": draft, "script": "half-written ("}
    assert config_errors({"type": "none", "script": 42}) == {"script": ["Expected the JavaScript source as a string."]}


def test_an_unvalidated_broken_config_fails_with_a_mapping_error_not_a_traceback() -> None:
    with pytest.raises(MappingError) as caught:
        apply_mapping({"type": "structured", "structured": {"targetUserIds": "$.a[?("}}, webhook(ORDER))

    assert caught.value.errors[0].startswith("targetUserIds: $.a[?( is not a valid JSONPath")
    with pytest.raises(MappingError):
        apply_mapping({"type": "other"}, webhook(ORDER))
