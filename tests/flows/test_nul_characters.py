"""A NUL character (\\u0000) in a JSON body is a clear 400, never a database error."""

from __future__ import annotations

import pytest

from customers.models import Customer
from flows.models import Invocation


@pytest.mark.parametrize(
    "body",
    [
        '{"targetUserIds": ["u1"], "variables": {"firstName": "A\\u0000B"}}',
        '{"targetUserIds": ["u\\u0000"]}',
        '{"targetUserIds": ["u1"], "metadata": {"k\\u0000": 1}}',
    ],
)
def test_a_start_with_a_nul_character_is_refused_and_starts_nothing(events_a, flow, body):
    response = events_a.post(f"/api/v1/acme/action-flow/{flow.pk}/start", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "NUL" in response.json()["detail"]
    assert Invocation.objects.count() == 0


def test_a_profile_with_a_nul_character_is_refused(events_a):
    response = events_a.put("/api/v1/acme/customers/u1", data='{"name": "A\\u0000"}', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert not Customer.objects.exists()
