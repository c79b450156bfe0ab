"""The segments configuration API (SPEC sections 3 and 5): CRUD, members, the two previews,
the error shapes, roles and the outsider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from segments.models import Segment, SegmentStatus
from tests.factories import CustomerFactory

API = "/api/v1/acme"
GERMANY = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}
FRANCE = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "FR"}]}


@pytest.fixture
def customers(env_a) -> None:
    for user_id, country in [("de-1", "DE"), ("de-2", "DE"), ("de-3", "DE"), ("fr-1", "FR"), ("us-1", "US")]:
        CustomerFactory(environment=env_a, user_id=user_id, country=country)


@pytest.fixture
def create(workbench_a, django_capture_on_commit_callbacks) -> Callable[..., dict[str, Any]]:
    """Create a segment through the API and let its evaluation run (eager, after the commit)."""

    def make(name: str = "Germany", rules: dict[str, Any] | None = None) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = workbench_a.post(f"{API}/segments", {"name": name, "rules": rules or GERMANY}, format="json")
        assert response.status_code == 201, response.content
        body: dict[str, Any] = response.json()
        return body

    return make


def test_a_segment_is_created_and_then_evaluated(workbench_a, customers, create) -> None:
    created = create()

    assert set(created) == {"id", "name", "rules", "memberCount", "status", "lastComputedAt", "lastError"}
    assert created["name"] == "Germany"
    assert created["rules"] == GERMANY
    assert created["status"] == SegmentStatus.COMPUTING
    read = workbench_a.get(f"{API}/segments/{created['id']}").json()
    assert read["status"] == "ready"
    assert read["memberCount"] == 3
    assert read["lastComputedAt"] is not None
    assert read["lastError"] is None


def test_segments_are_listed_by_name(workbench_a, create) -> None:
    create("Germany")
    create("France", FRANCE)

    response = workbench_a.get(f"{API}/segments")

    assert response.status_code == 200
    assert [segment["name"] for segment in response.json()] == ["France", "Germany"]


def test_a_segment_is_renamed_and_its_rules_changed(workbench_a, customers, create, django_capture_on_commit_callbacks):
    segment = create()

    with django_capture_on_commit_callbacks(execute=True):
        response = workbench_a.patch(
            f"{API}/segments/{segment['id']}", {"name": "France", "rules": FRANCE}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["name"] == "France"
    assert response.json()["rules"] == FRANCE
    assert workbench_a.get(f"{API}/segments/{segment['id']}").json()["memberCount"] == 1


def test_a_rename_alone_keeps_the_rules(workbench_a, create) -> None:
    segment = create()

    response = workbench_a.patch(f"{API}/segments/{segment['id']}", {"name": "Deutschland"}, format="json")

    assert response.status_code == 200
    assert response.json()["rules"] == GERMANY


def test_a_segment_is_deleted(workbench_a, create) -> None:
    segment = create()

    response = workbench_a.delete(f"{API}/segments/{segment['id']}")

    assert response.status_code == 204
    assert workbench_a.get(f"{API}/segments/{segment['id']}").status_code == 404


def test_a_segment_used_by_another_segment_is_not_deleted(workbench_a, create) -> None:
    used = create()
    create("Not Germany", {"match": "all", "conditions": [{"segment": used["id"], "op": "notIn"}]})

    response = workbench_a.delete(f"{API}/segments/{used['id']}")

    assert response.status_code == 409
    assert response.json()["code"] == "segment_in_use"
    assert "Not Germany" in response.json()["detail"]
    assert Segment.objects.filter(pk=used["id"]).exists()


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        (
            {"match": "all", "conditions": [{"field": "shoeSize", "op": "eq", "value": "42"}]},
            "rules.conditions[0].field",
        ),
        (
            {
                "match": "all",
                "conditions": [
                    {"field": "country", "op": "eq", "value": "DE"},
                    {"tag": "vip", "op": "has"},
                    {"field": "country", "op": "isAbout", "value": "DE"},
                ],
            },
            "rules.conditions[2].op",
        ),
        ({"match": "all", "conditions": [{"field": "lastSeenAt", "op": "withinLastDays", "value": "a week"}]}, None),
        ({"match": "most", "conditions": []}, "rules.match"),
        (
            {"match": "any", "conditions": [{"match": "all", "conditions": [{"event": "buy", "op": "countGte"}]}]},
            "rules.conditions[0].conditions[0].value",
        ),
    ],
)
def test_invalid_rules_are_refused_with_the_conditions_path(workbench_a, rules, path) -> None:
    response = workbench_a.post(f"{API}/segments", {"name": "Bad", "rules": rules}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    if path is None:  # the value's path: the validator names it
        assert "rules.conditions[0].value" in body["errors"]
    else:
        assert path in body["errors"], body["errors"]
    assert not Segment.objects.exists()


def test_a_segment_that_would_contain_itself_is_refused(workbench_a, create) -> None:
    first = create("First")
    second = create("Second", {"match": "all", "conditions": [{"segment": first["id"], "op": "in"}]})

    response = workbench_a.patch(
        f"{API}/segments/{first['id']}",
        {"rules": {"match": "all", "conditions": [{"segment": second["id"], "op": "in"}]}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "rules.conditions[0].segment" in response.json()["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rules": GERMANY}, "name"),
        ({"name": "No rules"}, "rules"),
        ({"name": "x", "rules": GERMANY, "color": 1}, "color"),
    ],
)
def test_a_create_without_a_name_or_rules_or_with_unknown_fields_is_refused(workbench_a, body, field) -> None:
    response = workbench_a.post(f"{API}/segments", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]


def test_members_are_listed_in_pages_linked_by_next(workbench_a, env_a, create) -> None:
    for index in range(5):
        CustomerFactory(environment=env_a, user_id=f"de-{index}", country="DE")
    segment = create()

    response = workbench_a.get(f"{API}/segments/{segment['id']}/members", {"pageSize": 2})
    pages = [response.json()]
    while pages[-1]["next"]:
        assert "pageSize=2" in pages[-1]["next"]
        pages.append(workbench_a.get(pages[-1]["next"]).json())

    assert response.status_code == 200
    assert set(pages[0]) == {"next", "results"}
    assert set(pages[0]["results"][0]) == {"userId", "enteredAt"}
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    listed = [member["userId"] for page in pages for member in page["results"]]
    assert sorted(listed) == [f"de-{index}" for index in range(5)]  # no gap, no repeat


def test_members_can_be_searched(workbench_a, customers, create) -> None:
    segment = create()

    response = workbench_a.get(f"{API}/segments/{segment['id']}/members", {"search": "de-2"})

    assert [member["userId"] for member in response.json()["results"]] == ["de-2"]
    assert response.json()["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [({"pageSize": "0"}, "pageSize"), ({"pageSize": "1001"}, "pageSize"), ({"cursor": "not-a-cursor"}, "cursor")],
)
def test_a_bad_page_size_or_cursor_is_refused(workbench_a, create, query, field) -> None:
    segment = create()

    response = workbench_a.get(f"{API}/segments/{segment['id']}/members", query)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["errors"]


def test_the_preview_counts_unsaved_rules_without_saving(workbench_a, customers) -> None:
    response = workbench_a.post(f"{API}/segments/preview", {"rules": GERMANY}, format="json")

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert sorted(response.json()["sample"]) == ["de-1", "de-2", "de-3"]
    assert not Segment.objects.exists()


def test_the_preview_sample_holds_at_most_20(workbench_a, env_a) -> None:
    for index in range(25):
        CustomerFactory(environment=env_a, user_id=f"c-{index}", country="DE")

    body = workbench_a.post(f"{API}/segments/preview", {"rules": GERMANY}, format="json").json()

    assert body["count"] == 25
    assert len(body["sample"]) == 20


def test_the_preview_refuses_invalid_rules_by_path(workbench_a) -> None:
    rules = {"match": "all", "conditions": [{"tag": "", "op": "has"}]}

    response = workbench_a.post(f"{API}/segments/preview", {"rules": rules}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "rules.conditions[0].tag" in response.json()["errors"]


def test_the_preview_needs_rules(workbench_a) -> None:
    response = workbench_a.post(f"{API}/segments/preview", {}, format="json")

    assert response.status_code == 400
    assert "rules" in response.json()["errors"]


def test_the_dry_run_says_who_would_enter_exit_and_stay(workbench_a, customers, create) -> None:
    segment = create()
    rules = {"match": "any", "conditions": [{"field": "country", "op": "in", "value": ["FR", "DE"]}]}
    narrower = {"match": "all", "conditions": [{"field": "country", "op": "in", "value": ["FR"]}]}

    wider = workbench_a.post(f"{API}/segments/{segment['id']}/preview", {"rules": rules}, format="json")
    other = workbench_a.post(f"{API}/segments/{segment['id']}/preview", {"rules": narrower}, format="json")

    assert wider.status_code == 200
    assert wider.json() == {"enter": 1, "exit": 0, "stay": 3, "sample": {"enter": ["fr-1"], "exit": []}}
    body = other.json()
    assert (body["enter"], body["exit"], body["stay"]) == (1, 3, 0)
    assert sorted(body["sample"]["exit"]) == ["de-1", "de-2", "de-3"]
    assert workbench_a.get(f"{API}/segments/{segment['id']}").json()["rules"] == GERMANY  # nothing saved


def test_the_dry_run_refuses_rules_that_would_contain_the_segment_itself(workbench_a, create) -> None:
    segment = create()
    rules = {"match": "all", "conditions": [{"segment": segment["id"], "op": "in"}]}

    response = workbench_a.post(f"{API}/segments/{segment['id']}/preview", {"rules": rules}, format="json")

    assert response.status_code == 400
    assert "rules.conditions[0].segment" in response.json()["errors"]


def test_an_unknown_segment_is_not_found(workbench_a) -> None:
    for method, path in [
        ("get", "segments/999"),
        ("patch", "segments/999"),
        ("delete", "segments/999"),
        ("get", "segments/999/members"),
        ("post", "segments/999/preview"),
    ]:
        response = getattr(workbench_a, method)(f"{API}/{path}", {"rules": GERMANY}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"


def _every_endpoint(segment_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("get", "segments", None),
        ("post", "segments", {"name": "x", "rules": GERMANY}),
        ("get", f"segments/{segment_id}", None),
        ("patch", f"segments/{segment_id}", {"name": "x"}),
        ("delete", f"segments/{segment_id}", None),
        ("get", f"segments/{segment_id}/members", None),
        ("post", "segments/preview", {"rules": GERMANY}),
        ("post", f"segments/{segment_id}/preview", {"rules": GERMANY}),
    ]


def test_another_environments_credential_gets_nothing(session_with, create) -> None:
    segment = create()
    outsider = session_with("outsider", "workbench")

    for method, path, body in _every_endpoint(segment["id"]):
        response = getattr(outsider, method)(f"{API}/{path}", body, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"
    assert Segment.objects.get(pk=segment["id"]).name == "Germany"


def test_an_outsider_cannot_read_its_own_environments_path_for_ours(session_with, env_b, create) -> None:
    """A credential of B reading B's path sees B's segments, never A's."""
    segment = create()
    outsider = session_with("outsider", "workbench")

    assert outsider.get("/api/v1/globex/segments").json() == []
    assert outsider.get(f"/api/v1/globex/segments/{segment['id']}").status_code == 404


@pytest.mark.parametrize("role", ["events", "auth"])
def test_other_roles_are_refused(api_client, env_a, create, role) -> None:
    segment = create()
    session = api_client(env_a, role)

    for method, path, body in _every_endpoint(segment["id"]):
        response = getattr(session, method)(f"{API}/{path}", body, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "permission_denied"


def test_a_missing_token_is_refused(session_with) -> None:
    response = session_with("missing", "workbench").get(f"{API}/segments")

    assert response.status_code == 401
