"""The flow page's tabs: one layout (`flows/_flow_layout.html`, `flow_tab_context`) around the
builder, testing and activity tabs and the invocations list, and a tab bar that shows a tab as
soon as its URL exists."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, include, path

from customers.services import member_test_user_set
from flows import views
from flows.forms import BuilderState, new_step_row, new_variable_row
from flows.models import Flow, Invocation, Mode
from flows.services import flow_archive
from tests.factories import TestUserFactory
from tests.flows.conftest import accept_start
from workbench import urls as root_urls
from workbench.models import Membership

pytestmark = pytest.mark.django_db

BASE = "/e/acme/flows/"

NEEDS_A_CODE = {
    "variables": [
        {"name": "code", "default": None, "required": True},
        {"name": "firstName", "default": "there", "required": False},
    ],
    "steps": [
        {"type": "send_card", "card": {"title": "Hi {{firstName}}, your code is {{code}}"}},
        {"type": "wait", "seconds": 7200},
        {"type": "send_card", "card": {"title": "Did the code work?"}},
    ],
}


@pytest.fixture
def draft(make_flow) -> Flow:
    return make_flow(name="Codes", publish=False, **NEEDS_A_CODE)


def tab_bar(page: str) -> str:
    match = re.search(r'<nav class="flow-tabs"[^>]*>(.*?)</nav>', page, re.S)
    assert match, "the page has no tab bar"
    return match.group(1)


def current_tab(page: str) -> str:
    match = re.search(r'<a class="flow-tab" href="[^"]*" aria-current="page">([^<]+)</a>', tab_bar(page))
    assert match, "no tab is marked current"
    return match.group(1)


def own_test_user(user: Any, env: Any, user_id: str) -> None:
    member_test_user_set(membership=Membership.objects.get(user=user, environment=env), user_id=user_id)


# --- The layout and its tab bar ---------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "tab"),
    [("", "Builder"), ("testing/", "Testing"), ("activity/", "Activity"), ("invocations/", "Activity")],
)
def test_each_tab_is_its_own_url_in_one_layout_with_the_tab_marked_current(login, viewer, draft, suffix, tab):
    response = login(viewer).get(f"{BASE}{draft.pk}/{suffix}")

    page = response.content.decode()
    assert response.status_code == 200
    assert "flows/_flow_layout.html" in [t.name for t in response.templates]
    assert f'<a href="{BASE}">← Flows</a>' in page
    assert "<h1>Codes" in page
    assert current_tab(page) == tab
    links = re.findall(r'href="([^"]+)"', tab_bar(page))
    for own in (f"{BASE}{draft.pk}/", f"{BASE}{draft.pk}/testing/", f"{BASE}{draft.pk}/activity/"):
        assert own in links
    assert '<nav class="flow-tabs" aria-label="Flow">' in page


def test_a_tab_whose_url_does_not_exist_yet_is_left_out(login, viewer, draft, monkeypatch):
    monkeypatch.setattr(
        views, "FLOW_TABS", [*views.FLOW_TABS, ("someday", "flow_someday", "Someday"), ("testing", "x", "Again")]
    )

    response = login(viewer).get(f"{BASE}{draft.pk}/")

    assert response.status_code == 200
    assert "Someday" not in tab_bar(response.content.decode())
    assert [t["key"] for t in response.context["tabs"]][:1] == ["builder"]


def _live_summary(request: Any, env: str, flow_id: int) -> HttpResponse:
    return HttpResponse("Live: Orders webhook")


# A URLconf with the triggers app's live-summary fragment, whether or not that app has it yet.
urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "e/<slug:env>/flows/<int:flow_id>/triggers/live-summary",
        _live_summary,
        name="flow_triggers_live_summary",
    ),
    path("", include(root_urls)),
]


@pytest.mark.urls("tests.flows.test_flow_tabs")
def test_the_header_loads_which_triggers_are_live_from_the_triggers_fragment(login, viewer, draft):
    page = login(viewer).get(f"{BASE}{draft.pk}/").content.decode()

    url = f"{BASE}{draft.pk}/triggers/live-summary"
    assert f'<span id="flow-live-triggers" hx-get="{url}" hx-trigger="load"></span>' in page


def test_without_the_live_summary_fragment_the_header_leaves_the_line_out(login, viewer, draft, monkeypatch):
    real = views._flow_url
    monkeypatch.setattr(
        views, "_flow_url", lambda name, flow: None if name == "flow_triggers_live_summary" else real(name, flow)
    )

    page = login(viewer).get(f"{BASE}{draft.pk}/").content.decode()

    assert "flow-live-triggers" not in page


def test_the_head_actions_open_their_confirmation_pages_in_the_dialog(login, owner, draft):
    page = login(owner).get(f"{BASE}{draft.pk}/activity/").content.decode()

    for action in ("publish", "archive", "delete"):
        assert re.search(rf'<a class="button[^"]*" href="{BASE}{draft.pk}/{action}" data-confirm-page>', page), action


def test_the_builder_tab_holds_the_builder_only(login, editor, draft):
    page = login(editor).get(f"{BASE}{draft.pk}/").content.decode()

    assert 'id="flow-form"' in page
    assert 'id="flow-preview"' in page
    for elsewhere in ('id="api-trigger"', "/triggers/?flow=", 'id="send-test"', 'id="analytics"'):
        assert elsewhere not in page


@pytest.mark.parametrize("suffix", ["testing/", "activity/", "invocations/"])
def test_another_environments_member_gets_404_on_every_tab(login, outsider, draft, suffix):
    assert login(outsider).get(f"{BASE}{draft.pk}/{suffix}").status_code == 404
    assert login(outsider).get(f"/e/globex/flows/{draft.pk}/{suffix}").status_code == 404


# --- The testing tab ----------------------------------------------------------------------


def test_a_viewer_sees_the_testing_tab_without_a_form_and_may_not_send(login, viewer, env_a, draft):
    TestUserFactory(environment=env_a, user_id="tester-1")
    client = login(viewer)

    page = client.get(f"{BASE}{draft.pk}/testing/").content.decode()
    sent = client.post(f"{BASE}{draft.pk}/test", {"user_ids": ["tester-1"], "var-code": "1"})

    assert "Editors and owners send tests" in page
    assert "<form" not in page.split('id="send-test"')[1]
    assert sent.status_code == 403
    assert not Invocation.objects.exists()


def test_a_missing_required_variable_is_marked_at_its_field(login, editor, env_a, draft):
    own_test_user(editor, env_a, "edward-phone")

    response = login(editor).post(f"{BASE}{draft.pk}/test", {"user_ids": ["edward-phone"], "var-firstName": "Ada"})

    page = response.content.decode()
    assert response.status_code == 400
    assert current_tab(page) == "Testing"
    field = re.search(r'<input type="text" id="id_var-code"[^>]*>', page)
    assert field, "the code field is not on the page"
    assert 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="id_var-code-error"' in field.group(0)
    error = page.index('id="id_var-code-error"')
    assert page.index("Missing required variable: code.", error) < page.index("</ul>", error)
    # The other values and the choice of test user are kept, and are not marked.
    other = re.search(r'<input type="text" id="id_var-firstName"[^>]*>', page)
    assert other, "the firstName field is not on the page"
    assert 'value="Ada"' in other.group(0)
    assert "aria-invalid" not in other.group(0)
    assert 'value="edward-phone" checked' in page
    assert not Invocation.objects.exists()


def test_no_test_user_chosen_is_marked_at_the_choice(login, editor, env_a, draft):
    own_test_user(editor, env_a, "edward-phone")

    response = login(editor).post(f"{BASE}{draft.pk}/test", {"var-code": "42"})

    page = response.content.decode()
    assert response.status_code == 400
    assert '<fieldset class="plain" aria-invalid="true" aria-describedby="user_ids-error">' in page
    assert re.search(r'<ul class="errorlist" id="user_ids-error"><li>Choose at least one test user.</li></ul>', page)
    assert 'value="42"' in page


def test_a_test_with_every_value_goes_to_the_invocation(
    login, editor, env_a, draft, django_capture_on_commit_callbacks
):
    own_test_user(editor, env_a, "edward-phone")

    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(f"{BASE}{draft.pk}/test", {"user_ids": ["edward-phone"], "var-code": "42"})

    invocation = Invocation.objects.get(flow=draft)
    assert response.status_code == 302
    assert response.url == f"{BASE}invocations/{invocation.pk}/"
    assert invocation.variables == {"code": "42", "firstName": "there"}


def test_a_refused_test_shows_the_testing_tab_with_the_reason(login, editor, env_a, draft):
    own_test_user(editor, env_a, "edward-phone")
    flow_archive(flow=draft)

    response = login(editor).post(f"{BASE}{draft.pk}/test", {"user_ids": ["edward-phone"], "var-code": "42"})

    assert response.status_code == 409
    assert current_tab(response.content.decode()) == "Testing"
    assert b"Archived flows start nothing, not even tests." in response.content
    assert not Invocation.objects.exists()


# --- The activity tab -------------------------------------------------------------------------


def test_the_activity_tab_shows_recent_invocations_totals_and_the_way_to_all(login, viewer, env_a, make_flow):
    flow = make_flow(name="Welcome")
    TestUserFactory(environment=env_a, user_id="tester-1")
    for key in range(12):
        accept_start(flow=flow, mode=Mode.LIVE, body={"targetUserIds": ["u1"], "flowInvocationId": f"start-{key}"})

    response = login(viewer).get(f"{BASE}{flow.pk}/activity/")

    page = response.content.decode()
    assert current_tab(page) == "Activity"
    assert [i.flow_invocation_id for i in response.context["recent_invocations"]][:2] == ["start-11", "start-10"]
    assert len(response.context["recent_invocations"]) == views.RECENT_INVOCATIONS
    assert f'href="{BASE}{flow.pk}/invocations/">All invocations →</a>' in page
    assert response.context["stats"].live.invocations == 12
    assert re.search(r'<dt>Invocations</dt>\s*<dd><span class="figure">12</span></dd>', page)


def test_a_flow_never_started_says_how_to_see_one(login, editor, draft):
    page = login(editor).get(f"{BASE}{draft.pk}/activity/").content.decode()

    assert "Not started yet." in page
    assert f'<a href="{BASE}{draft.pk}/testing/">Send yourself a test</a>' in page
    assert "All invocations" not in page


def test_the_activity_tab_links_the_analytics_page_when_it_exists(login, viewer, draft, monkeypatch):
    monkeypatch.setattr(views, "_flow_url", lambda name, flow: "/somewhere/analytics/" if "analytics" in name else None)

    page = login(viewer).get(f"{BASE}{draft.pk}/activity/").content.decode()

    assert '<a href="/somewhere/analytics/">Analytics over time →</a>' in page


# --- The builder's preview and its new rows ----------------------------------------------------


def test_the_preview_shows_a_wait_between_two_cards_as_a_human_duration(login, editor, draft):
    page = login(editor).get(f"{BASE}{draft.pk}/").content.decode()

    preview = page[page.index('id="flow-preview"') :]
    first, wait, second = (
        preview.index("Hi there, your code is"),
        preview.index("then wait <strong>2 hours</strong>"),
        preview.index("Did the code work?"),
    )
    assert first < wait < second


@pytest.mark.parametrize(
    ("amount", "unit", "said"),
    [("1", 86400, "1 day"), ("3", 86400, "3 days"), ("90", 60, "90 minutes"), ("60", 60, "1 hour"), ("", 60, "")],
)
def test_a_wait_is_said_in_its_largest_whole_unit(amount, unit, said):
    state = BuilderState.from_post({"steps-0-type": "wait", "steps-0-amount": amount, "steps-0-unit": str(unit)})

    assert state.preview_timeline() == [{"kind": "wait", "step": 1, "duration": said}]


class _Fields(HTMLParser):
    """The values a browser would post for the form fields in some HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name") or ""
        if tag == "input" and name and (a.get("type") != "checkbox" or "checked" in a):
            self.values[name] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea = name
            self.values[name] = ""
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def _template_fields(page: str, template_id: str, index: int) -> dict[str, str]:
    html = re.search(rf'<template id="{template_id}">(.*?)</template>', page, re.S)
    assert html, template_id
    parser = _Fields()
    parser.feed(html.group(1).replace("__i__", str(index)).replace("__n__", str(index + 1)))
    return parser.values


def test_the_rows_the_page_adds_itself_save_as_the_servers_would(login, editor, draft):
    """flow_builder.js copies these <template>s; posted, each is the row `apply("add-…")` adds."""
    page = login(editor).get(f"{BASE}{draft.pk}/").content.decode()
    state = BuilderState.from_definition(draft.name, draft.draft)

    fields = {
        **_template_fields(page, "new-variable-row", 2),
        **_template_fields(page, "new-card-step", 3),
        **_template_fields(page, "new-wait-step", 4),
    }
    added = BuilderState.from_post({**fields, "name": "x"})

    assert added.variables_definition() == [new_variable_row().as_definition()]
    assert added.steps_definition() == [new_step_row("card").as_definition(), new_step_row("wait").as_definition()]
    for op in ("add-variable", "add-card", "add-wait"):
        state.apply(op)
    assert state.variables_definition()[-1:] == added.variables_definition()
    assert state.steps_definition()[-2:] == added.steps_definition()


def test_a_viewer_gets_no_row_templates(login, viewer, draft):
    page = login(viewer).get(f"{BASE}{draft.pk}/").content.decode()

    assert "<template" not in page
