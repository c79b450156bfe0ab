"""The customer profile shows the customer's runs and cards, live and test apart, and lets an
editor send a test to a test user (issue 11, item 11). The flows app draws that part
(/e/<env>/flows/customers/<userId>/activity), which the profile loads with htmx."""

from __future__ import annotations

import pytest

from flows.models import FlowRun, Invocation
from tests.factories import CustomerFactory, TestUserFactory
from tests.flows.conftest import accept_start

pytestmark = pytest.mark.django_db

PROFILE = "/e/acme/customers/ada"
ACTIVITY = "/e/acme/flows/customers/ada/activity"
SEND = "/e/acme/flows/customers/ada/test"


@pytest.fixture
def ada(env_a):
    return CustomerFactory(environment=env_a, user_id="ada", name="Ada Lovelace")


@pytest.fixture
def ada_is_a_test_user(env_a, ada):
    return TestUserFactory(environment=env_a, user_id="ada")


def start(flow, mode, user_id, django_capture_on_commit_callbacks, **body):
    with django_capture_on_commit_callbacks(execute=True):
        return accept_start(flow=flow, mode=mode, body={"targetUserIds": [user_id], **body})


def test_the_profile_loads_the_activity_from_the_flows_app(login, viewer, ada):
    html = login(viewer).get(PROFILE).content.decode()

    assert f'hx-get="{ACTIVITY}"' in html
    assert 'hx-trigger="load"' in html


def test_the_activity_lists_live_and_test_runs_and_cards_apart(
    login,
    viewer,
    ada,
    ada_is_a_test_user,
    flow,
    django_capture_on_commit_callbacks,
):
    start(flow, "live", "ada", django_capture_on_commit_callbacks, variables={"firstName": "Live Ada"})
    start(flow, "test", "ada", django_capture_on_commit_callbacks, variables={"firstName": "Test Ada"})

    response = login(viewer).get(ACTIVITY)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    live, test = response.context["modes"]
    assert [run.test for run in live["runs"]] == [False]
    assert [run.test for run in test["runs"]] == [True]
    assert [card["title"] for card in live["cards"]] == ["Hello Live Ada"]
    assert [card["title"] for card in test["cards"]] == ["Hello Test Ada"]
    live_html = html[html.index('id="activity-live"') : html.index('id="activity-test"')]
    assert "Hello Live Ada" in live_html
    assert "Hello Test Ada" not in live_html
    invocation = Invocation.objects.get(mode="live")
    assert f"/e/acme/flows/invocations/{invocation.pk}/" in live_html


def test_another_customers_activity_is_not_shown(
    login,
    viewer,
    ada,
    flow,
    django_capture_on_commit_callbacks,
):
    start(flow, "live", "grace", django_capture_on_commit_callbacks)

    response = login(viewer).get(ACTIVITY)

    assert [mode["runs"] for mode in response.context["modes"]] == [[], []]
    assert "No live runs." in response.content.decode()


def test_an_editor_sees_the_send_test_form_only_for_a_test_user(login, editor, ada, flow):
    not_yet = login(editor).get(ACTIVITY).content.decode()
    TestUserFactory(environment=ada.environment, user_id="ada")
    now = login(editor).get(ACTIVITY).content.decode()

    assert "Send a test" not in not_yet
    assert "Make ada a test user" in not_yet
    assert "Send a test" in now
    assert f'<option value="{flow.pk}">Welcome</option>' in now


def test_a_viewer_gets_no_send_test_form(login, viewer, ada, ada_is_a_test_user, flow):
    html = login(viewer).get(ACTIVITY).content.decode()

    assert "Send a test" not in html


def test_choosing_a_flow_shows_its_variables(login, editor, ada, ada_is_a_test_user, flow):
    response = login(editor).get(ACTIVITY, {"flow": flow.pk}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert 'name="var-firstName"' in html
    assert "Send test to ada" in html


def test_an_editor_sends_a_test_to_the_test_user(
    login,
    editor,
    ada,
    ada_is_a_test_user,
    flow,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = login(editor).post(
            SEND, {"flow": flow.pk, "user_ids": "ada", "var-firstName": "Countess"}, HTTP_HX_REQUEST="true"
        )

    assert response.status_code == 200
    run = FlowRun.objects.get()
    assert (run.user_id, run.test, run.invocation.source) == ("ada", True, "workbench")
    html = response.content.decode()
    assert "Test of “Welcome” sent to <code>ada</code>" in html
    assert f"/e/acme/flows/invocations/{run.invocation_id}/" in html
    # Once it has run, the activity shows its card among the tests.
    test_cards = login(editor).get(ACTIVITY).context["modes"][1]["cards"]
    assert [card["title"] for card in test_cards] == ["Hello Countess"]


def test_without_htmx_a_test_send_goes_back_to_the_profile(
    login,
    editor,
    ada,
    ada_is_a_test_user,
    flow,
):
    response = login(editor).post(SEND, {"flow": flow.pk, "user_ids": "ada"})

    assert (response.status_code, response["Location"]) == (302, PROFILE)
    assert Invocation.objects.filter(mode="test").count() == 1


def test_each_send_is_a_new_test(login, editor, ada, ada_is_a_test_user, flow):
    client = login(editor)

    client.post(SEND, {"flow": flow.pk, "user_ids": "ada"}, HTTP_HX_REQUEST="true")
    client.post(SEND, {"flow": flow.pk, "user_ids": "ada"}, HTTP_HX_REQUEST="true")

    assert Invocation.objects.filter(mode="test").count() == 2


def test_a_missing_required_variable_is_marked_at_its_field(
    login,
    editor,
    ada,
    ada_is_a_test_user,
    make_flow,
):
    strict = make_flow(
        name="Strict",
        variables=[{"name": "code", "default": None, "required": True}],
        steps=[{"type": "send_card", "card": {"title": "Your code: {{code}}", "body": "", "actions": []}}],
    )

    response = login(editor).post(SEND, {"flow": strict.pk, "user_ids": "ada"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert not Invocation.objects.exists()
    assert "Not sent." in html
    field = html[html.index('name="var-code"') :].split(">")[0]
    assert 'aria-invalid="true"' in field


def test_a_test_send_to_someone_who_is_not_a_test_user_is_refused(login, editor, ada, flow):
    response = login(editor).post(SEND, {"flow": flow.pk, "user_ids": "ada"}, HTTP_HX_REQUEST="true")

    assert not Invocation.objects.exists()
    assert "Not sent." in response.content.decode()


def test_a_viewer_cannot_send_a_test(login, viewer, ada, ada_is_a_test_user, flow):
    response = login(viewer).post(SEND, {"flow": flow.pk, "user_ids": "ada"})

    assert response.status_code == 403
    assert not Invocation.objects.exists()


def test_an_outsider_sees_and_sends_nothing(login, outsider, ada, ada_is_a_test_user, flow):
    client = login(outsider)

    assert client.get(ACTIVITY).status_code == 404
    assert client.post(SEND, {"flow": flow.pk, "user_ids": "ada"}).status_code == 404
    assert not Invocation.objects.exists()


def test_a_flow_of_another_environment_cannot_be_sent(
    login,
    editor,
    ada,
    ada_is_a_test_user,
    make_flow,
    env_b,
):
    theirs = make_flow(name="Theirs", environment=env_b)

    response = login(editor).post(SEND, {"flow": theirs.pk, "user_ids": "ada"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 404
    assert not Invocation.objects.exists()
