"""The Workbench's segments pages: the list, the builder (create, edit with its dry run, errors at
their condition), a segment's page, delete, the customer page's fragment; roles and the outsider."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from segments import services
from segments.models import Segment, SegmentSize, SegmentStatus
from tests.factories import CustomerFactory

PAGES = "/e/acme/segments/"
GERMANY = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}
FRANCE = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "FR"}]}


@pytest.fixture
def customers(env_a) -> None:
    for user_id, country in [("de-1", "DE"), ("de-2", "DE"), ("fr-1", "FR"), ("us-1", "US")]:
        CustomerFactory(environment=env_a, user_id=user_id, country=country)


@pytest.fixture
def make_segment(env_a, django_capture_on_commit_callbacks):
    def make(name: str = "Germany", rules: dict[str, Any] | None = None) -> Segment:
        with django_capture_on_commit_callbacks(execute=True):
            segment = services.segment_create(environment=env_a, name=name, rules=rules or GERMANY)
        segment.refresh_from_db()
        return segment

    return make


def _data_block(html: str, block_id: str) -> Any:
    match = re.search(rf'<script id="{block_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no data block {block_id}"
    return json.loads(match.group(1))


def test_the_navigation_leads_to_segments(login, viewer) -> None:
    html = login(viewer).get("/e/acme/customers/").content.decode()

    assert f'href="{PAGES}"' in html
    assert ">Segments</a>" in html


def test_an_empty_list_explains_what_a_segment_is(login, editor) -> None:
    response = login(editor).get(PAGES)

    html = response.content.decode()
    assert response.status_code == 200
    assert "No segments yet" in html
    assert "group of customers" in html
    assert f'href="{PAGES}new"' in html


def test_the_list_shows_each_segment_with_its_count_status_and_rules(login, viewer, customers, make_segment) -> None:
    make_segment()
    failed = make_segment("France", FRANCE)
    Segment.objects.filter(pk=failed.pk).update(
        status=SegmentStatus.FAILED, last_error="canceling statement due to statement timeout"
    )

    html = login(viewer).get(PAGES).content.decode()

    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    germany = next(row for row in rows if "Germany" in row)
    assert ">2<" in germany
    assert "seg-status-ready" in germany
    assert "country is DE" in germany or "country" in germany
    assert "just now" in germany
    france = next(row for row in rows if "France" in row)
    assert "seg-status-failed" in france
    assert "statement timeout" in france


def test_a_viewer_sees_segments_but_no_way_to_change_them(login, viewer, make_segment) -> None:
    segment = make_segment()
    client = login(viewer)

    assert f'href="{PAGES}new"' not in client.get(PAGES).content.decode()
    detail = client.get(f"{PAGES}{segment.pk}/").content.decode()
    assert "Edit rules" not in detail
    assert "Delete" not in detail
    assert client.get(f"{PAGES}new").status_code == 403
    assert client.get(f"{PAGES}{segment.pk}/edit").status_code == 403
    assert client.post(f"{PAGES}{segment.pk}/delete").status_code == 403
    assert client.post(f"{PAGES}preview", {"rules": json.dumps(GERMANY)}).status_code == 403
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_the_new_segment_page_holds_the_builder(login, editor, make_segment) -> None:
    other = make_segment("Germany")

    response = login(editor).get(f"{PAGES}new")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="rule-builder"' in html
    assert "js/segment_builder.js" in html
    config = _data_block(html, "builder-config")
    assert {field["key"] for field in config["fields"]} >= {"country", "email", "lastSeenAt", "createdAt"}
    assert config["segments"] == [{"id": other.pk, "name": "Germany"}]
    assert json.loads(
        re.search(r'name="rules" id="id_rules" value="([^"]*)"', html).group(1).replace("&quot;", '"')
    ) == {
        "match": "all",
        "conditions": [],
    }


def test_a_segment_is_created_through_the_form(login, editor, customers, django_capture_on_commit_callbacks) -> None:
    client = login(editor)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PAGES}new", {"name": "Germany", "rules": json.dumps(GERMANY), "op": "save"})

    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{PAGES}{segment.pk}/"
    assert segment.rules == GERMANY
    page = client.get(response["Location"]).content.decode()
    assert "Germany" in page
    assert 'id="member-count">2<' in page
    assert "de-1" in page
    assert "de-2" in page
    assert "fr-1" not in page


def test_invalid_rules_are_shown_at_their_condition(login, editor) -> None:
    rules = {
        "match": "all",
        "conditions": [{"field": "country", "op": "eq", "value": "DE"}, {"tag": "", "op": "has"}],
    }

    response = login(editor).post(f"{PAGES}new", {"name": "VIP", "rules": json.dumps(rules), "op": "save"})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Not saved." in html
    errors = _data_block(html, "rule-errors-initial")
    assert list(errors) == ["rules.conditions[1].tag"]
    # The builder is drawn again from what was sent, so nothing typed is lost.
    assert "VIP" in html
    assert "&quot;tag&quot;:&quot;&quot;" in html
    assert not Segment.objects.exists()


def test_a_missing_name_is_shown_at_the_name(login, editor) -> None:
    response = login(editor).post(f"{PAGES}new", {"name": "  ", "rules": json.dumps(GERMANY)})

    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Segment.objects.exists()


def test_the_live_count_counts_unsaved_rules(login, editor, customers) -> None:
    response = login(editor).post(f"{PAGES}preview", {"rules": json.dumps(GERMANY)}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="preview-count">2<' in html
    assert "customers match now" in html
    assert "/e/acme/customers/de-1" in html
    assert _data_block(html, "rule-errors") == {}
    assert not Segment.objects.exists()


def test_the_live_count_answers_errors_by_path(login, editor) -> None:
    rules = {"match": "any", "conditions": [{"match": "all", "conditions": [{"event": "purchase", "op": "countGte"}]}]}

    response = login(editor).post(f"{PAGES}preview", {"rules": json.dumps(rules)})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Finish the conditions" in html
    assert "rules.conditions[0].conditions[0].value" in _data_block(html, "rule-errors")


def test_unreadable_rules_are_said_plainly(login, editor) -> None:
    response = login(editor).post(f"{PAGES}preview", {"rules": "{not json"})

    assert "could not be read" in json.dumps(_data_block(response.content.decode(), "rule-errors"))


def test_editing_rules_shows_the_dry_run_before_saving(login, editor, customers, make_segment) -> None:
    segment = make_segment()
    client = login(editor)

    form = client.get(f"{PAGES}{segment.pk}/edit").content.decode()
    review = client.post(f"{PAGES}{segment.pk}/edit", {"name": "France", "rules": json.dumps(FRANCE), "op": "review"})

    assert "Review changes" in form
    html = review.content.decode()
    assert review.status_code == 200
    assert 'id="dry-enter">1<' in html
    assert 'id="dry-exit">2<' in html
    assert 'id="dry-stay">0<' in html
    assert "fr-1" in html
    assert "de-1" in html
    segment.refresh_from_db()
    assert segment.rules == GERMANY  # nothing saved yet
    assert segment.name == "Germany"


def test_confirming_the_dry_run_saves_and_re_evaluates(
    login, editor, customers, make_segment, django_capture_on_commit_callbacks
) -> None:
    segment = make_segment()

    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(
            f"{PAGES}{segment.pk}/edit", {"name": "France", "rules": json.dumps(FRANCE), "op": "save"}
        )

    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.rules, segment.member_count) == ("France", FRANCE, 1)


def test_back_from_the_dry_run_keeps_the_edited_rules(login, editor, make_segment) -> None:
    segment = make_segment()

    response = login(editor).post(
        f"{PAGES}{segment.pk}/edit", {"name": "France", "rules": json.dumps(FRANCE), "op": "back"}
    )

    html = response.content.decode()
    assert 'value="France"' in html
    assert "&quot;FR&quot;" in html


def test_a_rename_alone_saves_without_a_dry_run(login, editor, make_segment) -> None:
    segment = make_segment()

    response = login(editor).post(
        f"{PAGES}{segment.pk}/edit", {"name": "Deutschland", "rules": json.dumps(GERMANY), "op": "review"}
    )

    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Deutschland"


def test_an_edit_that_would_contain_the_segment_itself_is_refused_at_the_condition(login, editor, make_segment) -> None:
    segment = make_segment()
    rules = {"match": "all", "conditions": [{"segment": segment.pk, "op": "in"}]}

    response = login(editor).post(f"{PAGES}{segment.pk}/edit", {"name": "Loop", "rules": json.dumps(rules)})

    assert response.status_code == 400
    assert "rules.conditions[0].segment" in _data_block(response.content.decode(), "rule-errors-initial")


def test_the_segment_page_shows_status_rules_chart_and_members(login, viewer, customers, make_segment) -> None:
    segment = make_segment()
    SegmentSize.objects.create(segment=segment, measured_at=timezone.now() - timedelta(days=2), member_count=1)

    html = login(viewer).get(f"{PAGES}{segment.pk}/").content.decode()

    assert "seg-status-ready" in html
    assert "Rules:" in html
    chart = _data_block(html, "segment-sizes")
    assert chart["values"][0] == 1
    assert chart["values"][-1] == 2
    assert "vendor/chartjs" in html
    assert 'href="/e/acme/customers/de-1"' in html


def test_members_are_searched_and_paged(login, viewer, env_a, make_segment) -> None:
    for index in range(60):
        CustomerFactory(environment=env_a, user_id=f"de-{index:02d}", country="DE")
    segment = make_segment()
    client = login(viewer)

    first = client.get(f"{PAGES}{segment.pk}/").content.decode()
    second = client.get(f"{PAGES}{segment.pk}/?page=2").content.decode()
    search = client.get(f"{PAGES}{segment.pk}/?q=de-07", HTTP_HX_REQUEST="true")

    assert "1\u201350 of 60" in first
    assert "51\u201360 of 60" in second
    assert 'id="segment-members"' in search.content.decode()
    assert "<html" not in search.content.decode()
    assert "de-07" in search.content.decode()
    assert "de-08" not in search.content.decode()


def test_a_computing_segment_polls_its_status_and_reloads_when_done(login, viewer, make_segment) -> None:
    segment = make_segment()
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.COMPUTING)
    client = login(viewer)

    page = client.get(f"{PAGES}{segment.pk}/").content.decode()
    computing = client.get(f"{PAGES}{segment.pk}/?part=status", HTTP_HX_REQUEST="true")
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.READY)
    done = client.get(f"{PAGES}{segment.pk}/?part=status", HTTP_HX_REQUEST="true")

    assert 'hx-trigger="every 2s"' in page
    assert "being computed" in page
    assert "HX-Refresh" not in computing
    assert done["HX-Refresh"] == "true"


def test_a_failed_segment_shows_its_error(login, viewer, make_segment) -> None:
    segment = make_segment()
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.FAILED, last_error="statement timeout")

    html = login(viewer).get(f"{PAGES}{segment.pk}/").content.decode()

    assert "The last evaluation failed." in html
    assert "statement timeout" in html


def test_delete_asks_first_then_deletes(login, editor, make_segment) -> None:
    segment = make_segment()
    client = login(editor)

    dialog = client.get(f"{PAGES}{segment.pk}/delete", HTTP_HX_REQUEST="true").content.decode()
    page = client.get(f"{PAGES}{segment.pk}/delete").content.decode()
    response = client.post(f"{PAGES}{segment.pk}/delete")

    assert "<html" not in dialog
    assert "Delete “Germany”?" in dialog
    assert "<html" in page
    assert "Delete segment" in page
    assert response.status_code == 302
    assert response["Location"] == PAGES
    assert not Segment.objects.filter(pk=segment.pk).exists()


def test_a_segment_in_use_is_not_deleted_and_says_why(login, editor, make_segment) -> None:
    used = make_segment()
    make_segment("Not Germany", {"match": "all", "conditions": [{"segment": used.pk, "op": "notIn"}]})

    response = login(editor).post(f"{PAGES}{used.pk}/delete", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 409
    assert "cannot be deleted" in html
    assert "Not Germany" in html
    assert Segment.objects.filter(pk=used.pk).exists()


def test_the_customer_fragment_lists_the_customers_segments(login, viewer, customers, make_segment) -> None:
    make_segment()
    make_segment("France", FRANCE)

    html = login(viewer).get(f"{PAGES}customers/de-1/segments", HTTP_HX_REQUEST="true").content.decode()
    nowhere = login(viewer).get(f"{PAGES}customers/us-1/segments").content.decode()

    assert "Germany" in html
    assert "France" not in html
    assert "entered" in html
    assert "Not in any segment" in nowhere


def test_an_outsider_gets_nothing(login, outsider, customers, make_segment) -> None:
    segment = make_segment()
    client = login(outsider)

    for method, path in [
        ("get", PAGES),
        ("get", f"{PAGES}new"),
        ("post", f"{PAGES}preview"),
        ("get", f"{PAGES}{segment.pk}/"),
        ("get", f"{PAGES}{segment.pk}/edit"),
        ("post", f"{PAGES}{segment.pk}/edit"),
        ("get", f"{PAGES}{segment.pk}/delete"),
        ("post", f"{PAGES}{segment.pk}/delete"),
        ("get", f"{PAGES}customers/de-1/segments"),
    ]:
        assert getattr(client, method)(path).status_code == 404, (method, path)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_another_environments_segment_is_not_found_in_ours(login, editor, outsider, env_b, make_segment) -> None:
    theirs = services.segment_create(environment=env_b, name="Theirs", rules=GERMANY)
    client = login(editor)

    assert client.get(f"{PAGES}{theirs.pk}/").status_code == 404
    assert client.post(f"{PAGES}{theirs.pk}/delete").status_code == 404
    assert client.post(f"{PAGES}preview", {"rules": json.dumps(GERMANY), "segment": theirs.pk}).status_code == 404


def test_the_list_refreshes_itself_while_a_segment_computes(login, viewer, make_segment) -> None:
    segment = make_segment()
    client = login(viewer)
    ready = client.get(PAGES).content.decode()
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.COMPUTING)

    computing = client.get(PAGES).content.decode()
    table = client.get(PAGES, HTTP_HX_REQUEST="true").content.decode()

    assert 'hx-trigger="every 3s"' not in ready
    assert 'hx-trigger="every 3s"' in computing
    assert table.lstrip().startswith('<div id="segment-table"')
    assert "seg-status-computing" in table


def test_the_list_reads_the_same_number_of_queries_however_many_segments(login, viewer, make_segment) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = login(viewer)
    make_segment("One")
    with CaptureQueriesContext(connection) as one:
        client.get(PAGES)
    for name in ("Two", "Three", "Four"):
        make_segment(name, FRANCE)
    with CaptureQueriesContext(connection) as four:
        client.get(PAGES)

    assert len(four.captured_queries) == len(one.captured_queries)


def test_saving_a_failed_segment_again_retries_its_evaluation(
    login, editor, customers, make_segment, django_capture_on_commit_callbacks
) -> None:
    segment = make_segment()
    Segment.objects.filter(pk=segment.pk).update(status=SegmentStatus.FAILED, last_error="statement timeout")

    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(
            f"{PAGES}{segment.pk}/edit", {"name": "Germany", "rules": json.dumps(GERMANY), "op": "review"}
        )

    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.READY
    assert segment.last_error == ""
