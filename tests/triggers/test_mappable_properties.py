"""The sample's mappable properties: every value's JSONPath, in document order (SPEC section 4)."""

from __future__ import annotations

from jsonpath_ng.ext import parse

from triggers.mapping import mappable_properties


def test_nested_objects_and_arrays_list_containers_and_leaves_in_document_order() -> None:
    sample = {
        "customer": {"id": "user-1", "address": {"city": "London"}},
        "items": [{"sku": "SKU-1"}, {"sku": "SKU-2", "tags": ["gift"]}],
        "total": 19.5,
        "coupon": None,
    }

    assert mappable_properties(sample) == [
        "$.customer",
        "$.customer.id",
        "$.customer.address",
        "$.customer.address.city",
        "$.items",
        "$.items[0]",
        "$.items[0].sku",
        "$.items[1]",
        "$.items[1].sku",
        "$.items[1].tags",
        "$.items[1].tags[0]",
        "$.total",
        "$.coupon",
    ]


def test_a_sample_that_is_an_array_or_a_scalar() -> None:
    assert mappable_properties([{"id": 1}, 2]) == ["$[0]", "$[0].id", "$[1]"]
    assert mappable_properties("text") == []
    assert mappable_properties({}) == []


def test_keys_that_are_not_plain_identifiers_are_quoted_and_every_path_finds_its_value() -> None:
    sample = {
        "first-name": "Ada",
        "a b": 1,
        "dot.ted": 2,
        "0": 3,
        "where": 4,
        "$": 5,
        "it's": 6,
        'say "hi"': 7,
        "back\\slash": 8,
        "ünï": 9,
        "plain_key1": {"len": 10},
    }

    properties = mappable_properties(sample)

    assert properties[:2] == ["$['first-name']", "$['a b']"]
    assert "$.plain_key1.len" in properties
    for path in properties:
        matches = parse(path).find(sample)
        assert len(matches) == 1, path
    values = [parse(path).find(sample)[0].value for path in properties]
    assert values[:10] == ["Ada", 1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_a_deeply_nested_sample_does_not_recurse() -> None:
    sample: dict[str, object] = {}
    node = sample
    for _ in range(3000):
        child: dict[str, object] = {}
        node["n"] = child
        node = child

    assert len(mappable_properties(sample)) == 3000
