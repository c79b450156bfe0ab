"""The Workbench pages of action flows: list, builder, preview, publish, archive, tests,
invocations, the feed preview and the test data settings, as each persona sees them."""

from __future__ import annotations

from typing import Any

import pytest

from customers.services import member_test_user_set
from flows.models import AnalyticsEvent, Card, Flow, FlowStatus, Invocation, Mode
from flows.services import flow_create, flow_publish
from flows.views import flow_api_trigger
from tests.factories import CustomerFactory, TestUserFactory
from tests.flows.conftest import accept_start
from workbench.models import Membership

pytestmark = pytest.mark.django_db

BASE = "/e/acme/flows/"

WELCOME = {
    "variables": [{"name": "firstName", "default": "there", "required": False}],
    "steps": [
        {
            "type": "send_card",
            "card": {
                "title": "Welcome, {{firstName}}!",
                "body": "Your account is ready.",
                "actions": [{"label": "Open", "url": "https://example.com/start"}],
            },
        },
        {"type": "wait", "seconds": 7200},
    ],
}


@pytest.fixture
def flow(env_a) -> Flow:
    return flow_create(environment=env_a, name="Welcome", variables=WELCOME["variables"], steps=WELCOME["steps"])


def builder_post(name: str = "Welcome", **fields: Any) -> dict[str, Any]:
    """The builder's fields for the WELCOME definition, with `fields` replacing some."""
    data = {
        "name": name,
        "variables-0-name": "firstName",
        "variables-0-default": "there",
        "steps-0-type": "send_card",
        "steps-0-title": "Welcome, {{firstName}}!",
        "steps-0-body": "Your account is ready.",
        "steps-0-actions-0-label": "Open",
        "steps-0-actions-0-url": "https://example.com/start",
        "steps-1-type": "wait",
        "steps-1-amount": "2",
        "steps-1-unit": "3600",
        "op": "save",
    }
    data.update(fields)
    return data


def own_test_user(user: Any, env: Any, user_id: str) -> None:
    member_test_user_set(membership=Membership.objects.get(user=user, environment=env), user_id=user_id)


# --- The list and a new flow --------------------------------------------------------------


def test_an_empty_list_explains_flows_and_offers_an_editor_to_create_one(login, editor, env_a):
    response = login(editor).get(BASE)

    assert response.status_code == 200
    assert b"No flows yet" in response.content
    assert b"Create your first flow" in response.content


def test_the_list_shows_name_status_version_and_counts(login, viewer, flow, env_a):
    flow = flow_publish(flow=flow).flow
    accept_start(flow=flow, mode=Mode.LIVE, body={"targetUserIds": ["u1"]}, source="api")

    response = login(viewer).get(BASE)

    row = response.content.decode()
    assert "Welcome" in row
    assert "published v1" in row
    assert "New flow" not in row  # a viewer changes nothing
    listed = response.context["flows"][0]
    assert (listed.live_invocations, listed.test_invocations) == (1, 0)


def test_an_editor_creates_a_flow_and_lands_in_its_builder(login, editor, env_a):
    client = login(editor)

    refused = client.post(BASE + "new", {"name": "   "})
    created = client.post(BASE + "new", {"name": "Payment reminder"}, follow=True)

    assert refused.status_code == 400
    assert b"Give the flow a name." in refused.content
    flow = Flow.objects.get(environment=env_a)
    assert flow.name == "Payment reminder"
    assert flow.status == FlowStatus.DRAFT
    assert created.redirect_chain[-1][0] == f"{BASE}{flow.pk}/"
    assert b"was created" in created.content


# --- The builder ------------------------------------------------------------------------


def test_the_builder_shows_the_draft_with_its_preview(login, editor, flow):
    response = login(editor).get(f"{BASE}{flow.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="steps-0-title" value="Welcome, {{firstName}}!"' in page
    assert 'name="steps-1-amount" value="2"' in page  # 7200 s shown as 2 hours
    assert "Welcome, there!" in page  # the preview, rendered with the default
    assert 'hx-trigger="input changed delay:300ms, builder-changed"' in page


def test_saving_the_builder_updates_the_draft(login, editor, flow):
    fields = builder_post(
        name="Welcome v2",
        **{"steps-0-title": "Hello {{firstName}}", "steps-1-amount": "30", "steps-1-unit": "60"},
    )
    response = login(editor).post(f"{BASE}{flow.pk}/", fields, follow=True)

    flow.refresh_from_db()
    assert b"Draft saved." in response.content
    assert flow.name == "Welcome v2"
    assert flow.draft["steps"][0]["card"]["title"] == "Hello {{firstName}}"
    assert flow.draft["steps"][1] == {"type": "wait", "seconds": 1800}
    assert flow.draft["variables"] == [{"name": "firstName", "default": "there", "required": False}]


def test_a_validation_error_is_shown_next_to_its_field_and_nothing_is_saved(login, editor, flow):
    fields = builder_post(**{"steps-0-title": "", "steps-0-actions-0-url": "javascript:alert(1)"})

    response = login(editor).post(f"{BASE}{flow.pk}/", fields)

    page = response.content.decode()
    assert response.status_code == 400
    assert "Not saved." in page
    title_input = page.index('name="steps-0-title"')
    assert page.index("A card needs a title of 1 to 500 characters.") > title_input
    assert 'name="steps-0-title" value="" maxlength="500" class="wide-input"' in page
    assert "A button needs a URL such as https://" in page
    flow.refresh_from_db()
    assert flow.draft["steps"][0]["card"]["title"] == "Welcome, {{firstName}}!"


def test_an_unknown_variable_in_a_card_is_named(login, editor, flow):
    response = login(editor).post(f"{BASE}{flow.pk}/", builder_post(**{"steps-0-body": "Hi {{lastName}}"}))

    assert response.status_code == 400
    assert b"Unknown variable(s): lastName." in response.content


def test_adding_moving_and_removing_rows_edits_the_builder_without_saving(login, editor, flow):
    client = login(editor)
    url = f"{BASE}{flow.pk}/"

    added = client.post(url, builder_post(op="add-variable"), HTTP_HX_REQUEST="true")
    moved = client.post(url, builder_post(op="up-step-1"), HTTP_HX_REQUEST="true")
    removed = client.post(url, builder_post(op="remove-action-0-0"))

    assert added.templates[0].name == "flows/_builder.html"
    assert b'name="variables-1-name"' in added.content
    assert b"Unsaved changes" in added.content
    state = moved.context["state"]
    assert [step.type for step in state.steps] == ["wait", "send_card"]
    assert removed.templates[0].name == "flows/flow_detail.html"  # without htmx: the whole page
    assert removed.context["state"].steps[0].actions == []
    flow.refresh_from_db()
    assert flow.draft == {
        "variables": WELCOME["variables"],
        "steps": WELCOME["steps"],
    }


def test_the_preview_renders_placeholders_with_the_defaults(login, editor, flow):
    fields = builder_post(
        **{
            "variables-0-default": "Lars",
            "variables-1-name": "city",
            "variables-1-default": "",
            "steps-0-title": "Hej {{firstName}} in {{ city }}",
            "steps-0-body": "Body for {{firstName}}",
        }
    )

    response = login(editor).post(f"{BASE}{flow.pk}/preview", fields, HTTP_HX_REQUEST="true")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="flow-preview"' in page
    assert "Hej Lars in \u2039city\u203a" in page
    assert "Body for Lars" in page
    assert 'href="https://example.com/start"' in page


# --- Publish and archive ------------------------------------------------------------------


def test_publishing_shows_what_changed_then_publishes_version_1(login, editor, flow):
    client = login(editor)

    confirm = client.get(f"{BASE}{flow.pk}/publish")
    flow.refresh_from_db()
    assert flow.status == FlowStatus.DRAFT  # looking at the confirmation publishes nothing
    published = client.post(f"{BASE}{flow.pk}/publish", follow=True)

    assert "First version: 1 variable added, 2 steps added" in confirm.content.decode()
    assert b"Publish version 1" in confirm.content
    assert b"Version 1 published." in published.content
    flow.refresh_from_db()
    assert (flow.status, flow.published_version) == (FlowStatus.PUBLISHED, 1)


def test_the_second_publish_lists_the_changes_since_the_last_version(login, editor, flow):
    flow = flow_publish(flow=flow).flow
    client = login(editor)
    client.post(f"{BASE}{flow.pk}/", builder_post(**{"steps-0-title": "Welcome back, {{firstName}}!"}))

    confirm = client.get(f"{BASE}{flow.pk}/publish")

    html = confirm.content.decode()
    assert "What changes compared with version 1, live now" in html
    assert "1 step changed" in html
    assert '<span class="visually-hidden">Before: </span>Welcome, {{firstName}}!</div>' in html
    assert '<span class="visually-hidden">After: </span>Welcome back, {{firstName}}!</div>' in html


def test_a_flow_without_steps_cannot_be_published(login, editor, env_a):
    empty = flow_create(environment=env_a, name="Empty")

    confirm = login(editor).get(f"{BASE}{empty.pk}/publish")
    refused = login(editor).post(f"{BASE}{empty.pk}/publish")

    assert b"Add at least one step" in confirm.content
    assert refused.status_code == 400  # the service's invalid_request: a draft without steps
    empty.refresh_from_db()
    assert empty.status == FlowStatus.DRAFT


def test_archiving_asks_first_then_stops_all_starts(login, editor, flow):
    client = login(editor)

    confirm = client.get(f"{BASE}{flow.pk}/archive")
    archived = client.post(f"{BASE}{flow.pk}/archive", follow=True)

    assert b"Archiving stops all starts" in confirm.content
    flow.refresh_from_db()
    assert flow.status == FlowStatus.ARCHIVED
    page = archived.content.decode()
    assert "starts nothing any more" in page
    assert '<fieldset class="plain" disabled>' in page
    assert "Save draft</button>" not in page
    assert "Publish…" not in page


def test_deleting_says_what_goes_first_then_removes_the_flow_and_its_history(
    login, owner, flow, django_capture_on_commit_callbacks
):
    flow_publish(flow=flow)
    with django_capture_on_commit_callbacks(execute=True):  # the runs and events happen
        accept_start(flow=flow, mode=Mode.LIVE, body={"targetUserIds": ["u1", "u2"]}, source="api")
    client = login(owner)

    confirm = client.get(f"{BASE}{flow.pk}/delete").content.decode()
    deleted = client.post(f"{BASE}{flow.pk}/delete", follow=True)

    assert "This cannot be undone" in confirm
    assert "1 published version and the draft" in confirm
    assert "1 invocation with their runs" in confirm
    assert "1 trigger with its request log: API starts of this flow are answered 404" in confirm
    assert "live webhook" not in confirm
    assert "archive it</a> instead" in confirm
    assert deleted.redirect_chain[-1][0] == BASE
    assert "“Welcome” and everything it recorded are deleted." in deleted.content.decode()
    assert not Flow.objects.filter(pk=flow.pk).exists()
    assert not Invocation.objects.exists()
    assert AnalyticsEvent.objects.filter(flow=None).exists()  # events stay, unlinked


def test_only_owners_see_and_may_use_delete(login, owner, editor, flow):
    assert "Delete…" in login(owner).get(f"{BASE}{flow.pk}/").content.decode()
    editor_client = login(editor)
    assert "Delete…" not in editor_client.get(f"{BASE}{flow.pk}/").content.decode()

    assert editor_client.post(f"{BASE}{flow.pk}/delete").status_code == 403
    assert Flow.objects.filter(pk=flow.pk).exists()


# --- Roles ----------------------------------------------------------------------------------


def test_a_viewer_sees_the_flow_read_only_without_buttons(login, viewer, flow):
    page = login(viewer).get(f"{BASE}{flow.pk}/").content.decode()

    assert "Welcome, there!" in page
    assert '<fieldset class="plain" disabled>' in page
    for button in ("Save draft", "Publish…", "Archive…", "Send test", "+ Add variable", "+ Send a card", "Remove"):
        assert button not in page
    assert "hx-post" not in page


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("new", {"name": "X"}),
        ("{id}/", builder_post()),
        ("{id}/", builder_post(op="add-variable")),
        ("{id}/preview", builder_post()),
        ("{id}/publish", {}),
        ("{id}/archive", {}),
        ("{id}/delete", {}),
        ("{id}/test", {"user_ids": ["tester-1"]}),
        ("settings/analytics", {"include_test_data": "on"}),
        ("settings/test-data/delete", {}),
    ],
)
def test_a_viewer_gets_403_on_every_post(login, viewer, flow, path, data):
    response = login(viewer).post(BASE + path.format(id=flow.pk), data)

    assert response.status_code == 403
    flow.refresh_from_db()
    assert (flow.name, flow.status) == ("Welcome", FlowStatus.DRAFT)
    assert not Invocation.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "",
        "new",
        "{id}/",
        "{id}/publish",
        "{id}/archive",
        "{id}/delete",
        "{id}/invocations/",
        "feed/?user=u1",
        "settings/",
    ],
)
def test_a_non_member_gets_404(login, outsider, flow, path):
    response = login(outsider).get(BASE + path.format(id=flow.pk))

    assert response.status_code == 404


def test_another_environments_flow_and_invocation_are_not_found(login, outsider, env_b, flow):
    test_user = TestUserFactory(environment=flow.environment, user_id="tester-1")
    result = accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": [test_user.user_id]}, source="api")
    client = login(outsider)

    assert client.get(f"/e/globex/flows/{flow.pk}/").status_code == 404
    invocation_id = result.outcomes[0].invocation_id
    assert client.get(f"/e/globex/flows/invocations/{invocation_id}/").status_code == 404


def test_the_settings_are_for_owners_only(login, editor, owner, env_a):
    assert login(editor).get(BASE + "settings/").status_code == 403
    assert login(owner).get(BASE + "settings/").status_code == 200


# --- Tests, invocations, the feed -------------------------------------------------------------


def test_send_test_reaches_my_test_user_and_shows_on_the_invocation_page(
    login, editor, env_a, flow, django_capture_on_commit_callbacks
):
    own_test_user(editor, env_a, "edward-phone")
    client = login(editor)
    page = client.get(f"{BASE}{flow.pk}/testing/").content.decode()
    assert 'value="edward-phone" checked' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{BASE}{flow.pk}/test", {"user_ids": ["edward-phone"], "var-firstName": "Edward"})

    invocation = Invocation.objects.get(flow=flow)
    assert (invocation.mode, invocation.source, invocation.started_by) == (Mode.TEST, "workbench", editor)
    assert response.status_code == 302
    assert response.url == f"{BASE}invocations/{invocation.pk}/"
    detail = client.get(response.url).content.decode()
    assert "Test sent to edward-phone." in detail
    assert "edward-phone" in detail
    assert "waiting" in detail  # the card went out; the run waits on step 2
    assert "Welcome, Edward!" in detail  # the card
    assert "&quot;targetUserIds&quot;: [" in detail  # the request, as pretty JSON
    assert f'Workbench <span class="muted">by {editor.username}</span>' in detail  # source, and who sent it
    assert f"{BASE}feed/?user=edward-phone&amp;test=true" in detail


def test_send_test_without_a_choice_or_a_required_value_says_why(
    login, editor, env_a, django_capture_on_commit_callbacks
):
    own_test_user(editor, env_a, "edward-phone")
    flow = flow_create(
        environment=env_a,
        name="Needs a code",
        variables=[{"name": "code", "default": None, "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Your code is {{code}}"}}],
    )
    client = login(editor)

    nobody = client.post(f"{BASE}{flow.pk}/test", {})
    missing = client.post(f"{BASE}{flow.pk}/test", {"user_ids": ["edward-phone"]})

    assert (nobody.status_code, missing.status_code) == (400, 400)
    assert b"Choose at least one test user." in nobody.content
    assert b"Missing required variable: code." in missing.content
    assert not Invocation.objects.exists()


def test_the_testing_tab_explains_how_to_get_a_test_user(login, editor, flow):
    page = login(editor).get(f"{BASE}{flow.pk}/testing/").content.decode()

    assert "No test users yet." in page
    assert "Set your own test user id" in page


def test_the_api_trigger_gives_absolute_urls_and_a_curl_example(rf, flow):
    # The triggers tab shows it (flows never imports triggers, so it asks this function).
    api = flow_api_trigger(rf.get("/"), flow)

    assert api["start_url"] == f"http://testserver/api/v1/acme/action-flow/{flow.pk}/start"
    assert api["test_url"] == f"http://testserver/api/v1/acme/action-flow/{flow.pk}/test"
    assert api["token_url"] == "http://testserver/oauth/token"
    assert '"targetUserIds": ["<userId>"]' in api["curl"]
    assert '"firstName": "there"' in api["curl"]


def test_invocations_are_listed_newest_first(login, viewer, env_a, flow):
    TestUserFactory(environment=env_a, user_id="tester-1")
    for key in ("first", "second"):
        accept_start(
            flow=flow,
            mode=Mode.TEST,
            body={"targetUserIds": ["tester-1", "stranger"], "flowInvocationId": key},
            source="api",
        )

    response = login(viewer).get(f"{BASE}{flow.pk}/invocations/")

    assert [i.flow_invocation_id for i in response.context["page"].object_list] == ["second", "first"]


def test_the_invocation_page_lists_ignored_ids(login, viewer, env_a, flow):
    TestUserFactory(environment=env_a, user_id="tester-1")
    result = accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["tester-1", "stranger"]}, source="api")

    response = login(viewer).get(f"{BASE}invocations/{result.outcomes[0].invocation_id}/")

    ignored = response.content.decode().split("<dt>Ignored</dt>")[1].split("</dd>")[0]
    assert "stranger" in ignored
    assert "tester-1" not in ignored


def test_the_feed_preview_shows_my_test_cards(login, editor, env_a, flow, django_capture_on_commit_callbacks):
    own_test_user(editor, env_a, "edward-phone")
    with django_capture_on_commit_callbacks(execute=True):
        accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["edward-phone"]}, source="workbench")
    client = login(editor)

    mine = client.get(f"{BASE}feed/").content.decode()
    live_only = client.get(f"{BASE}feed/", {"user": "edward-phone", "test": "false"}).content.decode()

    assert "Welcome, there!" in mine
    assert "Your account is ready." in mine
    assert 'class="badge test">test</span>' in mine
    assert 'href="https://example.com/start"' in mine
    assert "Welcome, there!" not in live_only
    assert "No cards from live starts." in live_only


def test_a_card_button_that_a_variable_turned_into_javascript_is_never_delivered(
    login, viewer, env_a, django_capture_on_commit_callbacks
):
    TestUserFactory(environment=env_a, user_id="tester-1")
    flow = flow_create(
        environment=env_a,
        name="Link",
        variables=[{"name": "link", "default": None, "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Go", "actions": [{"label": "Go", "url": "{{link}}"}]}}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        accept_start(
            flow=flow,
            mode=Mode.TEST,
            body={"targetUserIds": ["tester-1"], "variables": {"link": "javascript:alert(1)"}},
            source="api",
        )

    page = login(viewer).get(f"{BASE}feed/", {"user": "tester-1"}).content.decode()

    assert Card.objects.get().actions == []  # left out at delivery
    assert 'href="javascript' not in page


def test_the_customer_profile_links_to_the_feed(login, viewer, env_a):
    CustomerFactory(environment=env_a, user_id="76DHG129387")

    page = login(viewer).get("/e/acme/customers/76DHG129387").content.decode()

    assert f'href="{BASE}feed/?user=76DHG129387">See feed</a>' in page


# --- Analytics and test data -----------------------------------------------------------------


def test_analytics_show_test_data_apart_only_when_the_owner_includes_it(
    login, owner, env_a, flow, django_capture_on_commit_callbacks
):
    TestUserFactory(environment=env_a, user_id="tester-1")
    with django_capture_on_commit_callbacks(execute=True):
        accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["tester-1"]}, source="api")
    client = login(owner)

    before = client.get(f"{BASE}{flow.pk}/activity/")
    client.post(BASE + "settings/analytics", {"include_test_data": "on"})
    after = client.get(f"{BASE}{flow.pk}/activity/")

    assert before.context["stats"].test is None
    assert b"Live data only" in before.content
    env_a.refresh_from_db()
    assert env_a.analytics_include_test_data is True
    stats = after.context["stats"]
    assert (stats.test.invocations, stats.test.runs, stats.test.cards) == (1, 1, 1)
    assert (stats.live.invocations, stats.live.cards) == (0, 0)
    assert b'<span class="flow-total-test">1 test</span>' in after.content


def test_an_owner_deletes_test_data_after_seeing_what_goes(
    login, owner, editor, env_a, flow, django_capture_on_commit_callbacks
):
    TestUserFactory(environment=env_a, user_id="tester-1")
    with django_capture_on_commit_callbacks(execute=True):
        accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["tester-1"]}, source="api")
    client = login(owner)

    confirm = client.get(BASE + "settings/test-data/delete")
    assert login(editor).post(BASE + "settings/test-data/delete").status_code == 403
    assert Invocation.objects.count() == 1
    deleted = client.post(BASE + "settings/test-data/delete", follow=True)

    assert b"1 test invocation and their 1 run" in confirm.content
    assert b"1 test card" in confirm.content
    assert b"Deleted 1 test invocation(s), 1 test card(s)" in deleted.content
    assert not Invocation.objects.exists()
    assert not Card.objects.exists()


def test_the_side_navigation_links_the_flows(login, viewer, env_a):
    page = login(viewer).get(BASE).content.decode()

    assert f'<a href="{BASE}" aria-current="page">Flows</a>' in page


# --- Django admin ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["flow", "flowversion", "invocation", "flowrun", "card", "analyticsevent"])
def test_the_admin_lists_every_flow_model(admin_client, env_a, flow, model, django_capture_on_commit_callbacks):
    TestUserFactory(environment=env_a, user_id="tester-1")
    flow_publish(flow=flow)
    with django_capture_on_commit_callbacks(execute=True):
        accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["tester-1"]}, source="api")

    response = admin_client.get(f"/admin/flows/{model}/")

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_analytics_events_are_append_only_in_the_admin(admin_client, env_a, flow, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the fan-out records the acceptance
        accept_start(flow=flow, mode=Mode.TEST, body={"targetUserIds": ["someone"]}, source="api")
    event = AnalyticsEvent.objects.get()

    assert admin_client.get("/admin/flows/analyticsevent/add/").status_code == 403
    assert admin_client.post(f"/admin/flows/analyticsevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    view = admin_client.get(f"/admin/flows/analyticsevent/{event.pk}/change/")
    assert view.status_code == 200
    assert view.context["has_change_permission"] is False
    assert b'name="_save"' not in view.content
    assert AnalyticsEvent.objects.count() == 1


def test_the_admin_lists_triggers(admin_client, flow):
    response = admin_client.get("/admin/triggers/trigger/")

    assert response.status_code == 200
    assert b"Welcome" in response.content
