"""The OpenAPI schema and the browsable docs are public, complete and valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = target.read_text()
    for path in ("/api/v1/{env}/customers/{user_id}", "/api/v1/{env}/credentials", "/api/v1/{env}/test-users"):
        assert path in schema


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_a_token(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Action Flow Workbench API"
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
