"""The OpenAPI schema and the browsable docs are public, complete, valid and truthful."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from customers.models import Customer

API = "/api/v1/{env}"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("schema") / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    loaded: dict[str, Any] = yaml.safe_load(target.read_text())
    return loaded


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation) for path, item in schema["paths"].items() for method, operation in item.items()]


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = target.read_text()
    for path in ("/api/v1/{env}/customers/{user_id}", "/api/v1/{env}/credentials", "/api/v1/{env}/test-users"):
        assert path in schema


def test_a_flows_triggers_are_documented_as_the_list_they_are(schema: dict[str, Any]) -> None:
    answer = schema["paths"][f"{API}/flows/{{flow_id}}/triggers"]["get"]["responses"]["200"]

    body = answer["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    assert body["items"] == {"$ref": "#/components/schemas/TriggerSchema"}


def test_every_api_operation_documents_its_errors_in_the_one_error_shape(schema: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in operations(schema):
        if not path.startswith("/api/v1/"):
            continue
        responses = operation["responses"]
        for status in ("400", "401", "403", "404", "413", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == error, (method, path, status)
        assert "Retry-After" in responses["503"]["headers"], (method, path)
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}


def test_every_success_answer_has_a_shape(schema: dict[str, Any]) -> None:
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith("2") and status != "204":
                body = response["content"]["application/json"]["schema"]
                assert body.get("$ref") or body.get("type") in ("array", "object"), (method, path, status)
                assert body != {"type": "object", "additionalProperties": {}}, (method, path, status)


def test_operation_specific_refusals_are_documented(schema: dict[str, Any]) -> None:
    paths = schema["paths"]

    start = paths[f"{API}/action-flow/{{flow_id}}/start"]["post"]["responses"]
    assert "flow_not_published" in start["409"]["description"]
    assert "idempotency_mismatch" in start["409"]["description"]
    assert (
        "mapping_failed" in paths[f"{API}/triggers/{{trigger_id}}/send-test"]["post"]["responses"]["422"]["description"]
    )
    assert (
        "trigger_not_disabled" in paths[f"{API}/triggers/{{trigger_id}}"]["delete"]["responses"]["409"]["description"]
    )


def test_operations_are_grouped_by_tag(schema: dict[str, Any]) -> None:
    declared = {tag["name"] for tag in schema["tags"]}

    assert {"Action Flows", "Customers", "Credentials", "Configuration: flows", "Configuration: triggers"} <= declared
    assert {"OAuth", "Webhooks"} <= declared
    for path, method, operation in operations(schema):
        assert len(operation["tags"]) == 1, (method, path)
        assert operation["tags"][0] in declared, (method, path)


def test_the_token_endpoint_is_documented_with_oauth2s_own_error_shape(schema: dict[str, Any]) -> None:
    token = schema["paths"]["/oauth/token"]["post"]

    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    issued = token["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(issued["required"]) == {"access_token", "token_type", "expires_in", "scope"}
    assert token["responses"]["401"]["content"]["application/json"]["schema"]["required"] == ["error"]


def test_the_webhook_url_is_documented_with_every_answer(schema: dict[str, Any]) -> None:
    hooks = schema["paths"]["/hooks/{token}"]

    assert set(hooks) == {"post", "put"}
    responses = hooks["post"]["responses"]
    assert {"200", "202", "400", "401", "403", "404", "409", "413", "422", "503"} <= set(responses)
    statuses = responses["202"]["content"]["application/json"]["schema"]["properties"]["status"]["enum"]
    assert {"accepted", "held", "sample_captured"} <= set(statuses)
    assert hooks["post"]["security"] == [{}]


def test_request_schemas_refuse_unknown_fields_and_blank_text_as_the_api_does(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]

    flow = components["FlowRequest"]
    assert flow["additionalProperties"] is False
    assert flow["properties"]["name"]["minLength"] == 1
    assert flow["properties"]["name"]["pattern"] == r"\S"
    assert components["StartRequestSchemaRequest"]["additionalProperties"] is False


def test_the_profile_upsert_documents_that_it_needs_a_body(schema: dict[str, Any]) -> None:
    put = schema["paths"][f"{API}/customers/{{user_id}}"]["put"]

    assert put["requestBody"]["required"] is True


@pytest.mark.parametrize("body", [None, "[]", '"Lars"', "7"])
def test_a_profile_upsert_without_a_json_object_is_refused_and_creates_nothing(events_a: Any, body: str | None) -> None:
    if body is None:
        response = events_a.put("/api/v1/acme/customers/u-1")
    else:
        response = events_a.put("/api/v1/acme/customers/u-1", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert not Customer.objects.filter(user_id="u-1").exists()


def test_a_profile_upsert_with_an_empty_object_still_creates_the_profile(events_a: Any) -> None:
    response = events_a.put("/api/v1/acme/customers/u-1", {}, format="json")

    assert response.status_code == 201
    assert response.json()["data"]["userId"] == "u-1"


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_a_token(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Action Flow Workbench API"
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_segment_rules_are_documented_condition_by_condition(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    rules = components["SegmentRequest"]["properties"]["rules"]

    kinds = rules["properties"]["conditions"]["items"]["oneOf"]
    for name in ("SegmentFieldTest", "SegmentTagTest", "SegmentTagsTest", "SegmentEventTest", "SegmentMembershipTest"):
        assert _ref(name) in kinds
    nested = kinds[-1]
    assert nested["properties"]["conditions"]["minItems"] == 1

    # Each set of ops names the fields that take it and the value it needs.
    def fields_of(variant: dict[str, Any]) -> list[dict[str, Any]]:
        field = variant["properties"]["field"]
        return field.get("oneOf", [field])

    ops_by_field: dict[str, set[str]] = {}
    for variant in components["SegmentFieldTest"]["oneOf"]:
        for field in fields_of(variant):
            ops_by_field.setdefault(field["$ref"], set()).add(variant["properties"]["op"]["$ref"])
        if variant["properties"]["op"] == _ref("SegmentPresenceOp"):
            assert variant["required"] == ["field", "op"]
    text_ops = {_ref(name)["$ref"] for name in ("SegmentEqualityOp", "SegmentListOp", "SegmentTextMatchOp")}
    assert ops_by_field[_ref("SegmentTextField")["$ref"]] == {*text_ops, _ref("SegmentPresenceOp")["$ref"]}
    assert not text_ops & ops_by_field[_ref("SegmentDateField")["$ref"]]
    assert components["SegmentCustomField"]["pattern"].startswith("^customFields\\.")
    event_variants = components["SegmentEventTest"]["oneOf"]
    assert [variant["required"] for variant in event_variants] == [["event", "op"], ["event", "op", "value"]]


def test_segment_and_event_trigger_bodies_are_documented_as_the_api_takes_them(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]

    assert set(components["SegmentTriggerCreateRequest"]["required"]) == {"type", "segmentId"}
    assert components["SegmentTriggerCreateRequest"]["properties"]["segmentId"]["type"] == "integer"
    event = components["EventTriggerCreateRequest"]
    assert set(event["required"]) == {"type", "eventName"}
    assert event["properties"]["where"]["items"] == _ref("SegmentPropertyTest")
    # A PATCH of the name alone fits every type's body: anyOf, not oneOf.
    assert "anyOf" in components["PatchedTriggerUpdateRequest"]


def test_patching_a_trigger_with_another_types_fields_says_whose_they_are(workbench_a: Any, env_a: Any) -> None:
    from flows import services as flow_services
    from triggers import services as trigger_services

    flow = flow_services.flow_create(environment=env_a, name="Welcome", steps=[])
    webhook = trigger_services.webhook_trigger_create(flow=flow)

    response = workbench_a.patch(
        f"/api/v1/acme/triggers/{webhook.pk}", {"type": "segment", "on": "exited"}, format="json"
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["type"] == ["A trigger's type cannot change: this trigger's type is webhook."]
    assert errors["on"] == ["on is a field of segment triggers, not of this trigger (its type is webhook)."]
