"""The Workbench's 404, 403 and 500 pages are drawn in its shell, with DEBUG on too (`make run`),
and a favicon answers (issue 11, item 13). API paths keep their JSON errors
(tests/workbench/test_api_errors.py)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.exceptions import BadRequest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


def assert_not_django_debug_page(html: str) -> None:
    assert "Using the URLconf defined in" not in html
    assert "because you have <code>DEBUG = True</code>" not in html
    assert 'id="traceback"' not in html


def test_a_mistyped_workbench_url_is_a_page_not_found_in_the_shell(login, owner, debug):
    response = login(owner).get("/e/acme/flowz/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in html
    assert 'class="sidenav"' in html
    assert 'href="/e/acme/flows/"' in html
    assert_not_django_debug_page(html)


def test_an_object_that_does_not_exist_is_a_page_not_found_in_the_shell(login, owner, debug):
    response = login(owner).get("/e/acme/customers/nobody")

    html = response.content.decode()
    assert response.status_code == 404
    assert 'class="sidenav"' in html
    assert_not_django_debug_page(html)
    # DEBUG may add detail, below the friendly page.
    assert ("Http404: No such customer" in html) is debug


def test_a_missing_slash_is_still_redirected_with_debug_on(login, owner, debug):
    response = login(owner).get("/e/acme/credentials")

    assert (response.status_code, response["Location"]) == (301, "/e/acme/credentials/")


def test_another_environments_url_shows_no_shell_of_it(login, outsider, env_a, debug):
    response = login(outsider).get("/e/acme/flowz/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "Acme production" not in html
    assert 'href="/e/acme/' not in html
    # The outsider's own environment is still in the switcher.
    assert "Globex production" in html


def test_a_page_not_found_outside_environments_offers_the_way_back(debug, db):
    response = Client().get("/no-such-page/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in html
    assert 'class="sidenav"' not in html
    assert_not_django_debug_page(html)


def test_a_viewers_forbidden_page_keeps_the_sidebar(login, owner, viewer, debug):
    response = login(viewer).get("/e/acme/members/")
    forbidden = login(viewer).post("/e/acme/test-users/new", {"user_id": "qa"})

    html = forbidden.content.decode()
    assert response.status_code == 200
    assert forbidden.status_code == 403
    assert "You cannot open this page" in html
    assert 'class="sidenav"' in html
    assert "this needs the editor role" in html


def test_a_failing_workbench_page_is_a_500_in_the_shell(login, owner, debug):
    client = login(owner)
    client.raise_request_exception = False

    with mock.patch("customers.views.selectors.customer_list", side_effect=RuntimeError("a bug")):
        response = client.get("/e/acme/customers/")

    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert 'class="sidenav"' in html
    assert_not_django_debug_page(html)
    assert ("RuntimeError: a bug" in html) is debug


def test_when_the_shell_cannot_be_drawn_the_500_is_the_standalone_page(login, owner):
    client = login(owner)
    client.raise_request_exception = False

    with (
        mock.patch("customers.views.selectors.customer_list", side_effect=RuntimeError("a bug")),
        mock.patch("workbench.context_processors.membership_list_for_user", side_effect=RuntimeError("worse")),
    ):
        response = client.get("/e/acme/customers/")

    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert 'class="sidenav"' not in html


def test_api_paths_keep_their_json_errors_with_debug_on(events_a, debug):
    response = events_a.get("/api/v1/acme/no-such-thing")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_bad_request_stays_a_400_with_debug_on(login, owner, settings):
    settings.DEBUG = True
    client = login(owner)
    client.raise_request_exception = False

    with mock.patch("customers.views.selectors.customer_list", side_effect=BadRequest("bad")):
        response = client.get("/e/acme/customers/")

    assert response.status_code == 400


def test_the_favicon_is_linked_and_answers(login, owner):
    html = login(owner).get("/e/acme/").content.decode()

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    redirect = Client().get("/favicon.ico")
    assert (redirect.status_code, redirect["Location"]) == (301, "/static/favicon.svg")
    icon = Client().get("/static/favicon.svg")
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content)


def test_the_standalone_error_pages_link_the_favicon_too():
    from django.template.loader import render_to_string

    assert 'href="/static/favicon.svg"' in render_to_string("503.html")
