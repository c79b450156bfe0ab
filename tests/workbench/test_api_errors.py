"""Every API error is JSON in our shape, never an HTML page or a stack trace (SPEC section 3)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from customers.models import Customer

pytestmark = pytest.mark.django_db

ONE_MIB = 1024 * 1024


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/acme/no-such-thing", "/api/v2/whatever", "/api/"])
def test_an_unknown_api_path_answers_json_404_even_with_debug_on(settings, env_a, path, debug):
    settings.DEBUG = debug

    response = Client().get(path)

    body = assert_error(response, 404, "not_found")
    assert set(body) == {"detail", "code"}
    assert b"<html" not in response.content.lower()


def test_a_workbench_path_that_does_not_exist_still_answers_a_page(db):
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_method_the_endpoint_does_not_have_answers_json_405(auth_a):
    response = auth_a.put("/api/v1/acme/credentials", {"role": "events"}, format="json")

    assert_error(response, 405, "method_not_allowed")


def test_a_body_over_one_mib_is_refused_with_413_before_anything_is_written(events_a):
    profiles = [{"userId": f"user-{i}", "name": "x" * 2000} for i in range(600)]
    body = json.dumps(profiles)
    assert len(body) > ONE_MIB

    response = events_a.post("/api/v1/acme/customers", body, content_type="application/json")

    assert_error(response, 413, "payload_too_large")
    assert not Customer.objects.exists()


def test_a_body_just_under_one_mib_is_read(events_a):
    profile = {"userId": "big", "customFields": {f"k{i}": "v" * 9500 for i in range(110)}}
    body = json.dumps(profile)
    assert ONE_MIB - 20_000 < len(body) < ONE_MIB

    response = events_a.put("/api/v1/acme/customers/big", body, content_type="application/json")

    assert response.status_code == 201
    assert len(Customer.objects.get(user_id="big").custom_fields) == 110


def test_the_body_limit_holds_even_without_a_valid_token(db):
    response = Client().post(
        "/api/v1/acme/customers", b"[" + b" " * (ONE_MIB + 1) + b"]", content_type="application/json"
    )

    assert_error(response, 413, "payload_too_large")


def test_malformed_json_is_refused_with_400_invalid_json(events_a):
    response = events_a.put("/api/v1/acme/customers/u1", '{"name": "Ada",', content_type="application/json")

    assert_error(response, 400, "invalid_json")
    assert not Customer.objects.exists()


def test_a_body_that_is_not_json_is_refused_in_our_shape(events_a):
    response = events_a.put("/api/v1/acme/customers/u1", "name=Ada", content_type="application/x-www-form-urlencoded")

    assert_error(response, 415, "unsupported_media_type")
    assert not Customer.objects.exists()


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_failure_answers_json_500_without_a_stack_trace(monkeypatch, settings, events_a, debug):
    settings.DEBUG = debug

    def explode(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("customers.selectors.customer_get", explode)
    events_a.client.raise_request_exception = False

    response = events_a.get("/api/v1/acme/customers/u1")

    body = assert_error(response, 500, "server_error")
    assert set(body) == {"detail", "code"}
    text = response.content.decode()
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text


def test_a_failure_outside_drf_on_an_api_path_is_json_too(monkeypatch, db):
    from workbench import middleware

    real_limit = middleware.body_limit_for

    def explode(path):
        if path.startswith("/api/"):
            raise RuntimeError("secret internals")
        return real_limit(path)

    monkeypatch.setattr(middleware, "body_limit_for", explode)

    response = Client(raise_request_exception=False).get("/api/v1/acme/customers/u1")

    assert_error(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()


def test_the_openapi_schema_and_docs_are_public(db):
    schema = Client().get("/api/schema/")
    docs = Client().get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/{env}/customers/{user_id}" in schema.content
    assert docs.status_code == 200
