"""Publishing a draft identical to the live version is refused (service, API and Workbench),
and the publish confirmation shows the difference to the live version before anything is done."""

from __future__ import annotations

from typing import Any

import pytest

from flows import services
from flows.models import Flow, FlowVersion
from tests.flows.conftest import GREETING

pytestmark = pytest.mark.django_db

BASE = "/e/acme/flows/"
CHANGED_STEPS = [{"type": "send_card", "card": {"title": "Hello again {{firstName}}", "body": "", "actions": []}}]


def versions_of(flow: Flow) -> list[int]:
    return list(FlowVersion.objects.filter(flow=flow).order_by("number").values_list("number", flat=True))


# --- The service ------------------------------------------------------------------------


def test_publishing_an_unchanged_draft_is_refused_and_makes_no_version(flow):
    with pytest.raises(services.FlowRefused) as refused:
        services.flow_publish(flow=flow)

    assert (refused.value.status, refused.value.code) == (409, "nothing_to_publish")
    assert refused.value.detail.startswith("The draft is the same as version 1: nothing to publish.")
    assert versions_of(flow) == [1]


def test_a_changed_draft_publishes_the_next_version(flow):
    services.flow_update(flow=flow, steps=CHANGED_STEPS)

    result = services.flow_publish(flow=flow)

    assert result.version.number == 2
    assert versions_of(flow) == [1, 2]


def test_a_draft_changed_back_to_the_live_version_has_nothing_to_publish(flow):
    services.flow_update(flow=flow, steps=CHANGED_STEPS)
    services.flow_update(flow=flow, steps=GREETING["steps"])

    with pytest.raises(services.FlowRefused) as refused:
        services.flow_publish(flow=flow)

    assert refused.value.code == "nothing_to_publish"


def test_a_draft_equal_to_an_older_version_but_not_the_live_one_can_be_published(flow):
    services.flow_update(flow=flow, steps=CHANGED_STEPS)
    services.flow_publish(flow=flow)
    services.flow_update(flow=flow, steps=GREETING["steps"])  # version 1 again

    result = services.flow_publish(flow=flow)

    assert result.version.number == 3
    assert result.version.definition == FlowVersion.objects.get(flow=flow, number=1).definition


# --- The API ----------------------------------------------------------------------------


def publish_url(flow: Flow) -> str:
    return f"/api/v1/acme/flows/{flow.pk}/publish"


def test_the_api_answers_409_nothing_to_publish(workbench_a, flow):
    response = workbench_a.post(publish_url(flow), {}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "nothing_to_publish"
    assert body["detail"].startswith("The draft is the same as version 1: nothing to publish.")
    assert versions_of(flow) == [1]


def test_the_api_publishes_after_the_draft_changed(workbench_a, flow):
    workbench_a.patch(f"/api/v1/acme/flows/{flow.pk}", {"steps": CHANGED_STEPS}, format="json")

    response = workbench_a.post(publish_url(flow), {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["publishedVersion"] == 2


def test_the_schema_documents_nothing_to_publish(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    publish = schema["paths"]["/api/v1/{env}/flows/{flow_id}/publish"]["post"]
    assert "nothing_to_publish" in publish["responses"]["409"]["description"]


# --- The Workbench confirmation -----------------------------------------------------------


def test_the_confirmation_says_there_is_nothing_to_publish_and_disables_the_button(login, editor, flow):
    page = login(editor).get(f"{BASE}{flow.pk}/publish")

    html = page.content.decode()
    assert page.status_code == 200
    assert "The draft is the same as version 1: nothing to publish" in html
    assert '<button class="primary" type="submit" disabled' in html


def test_posting_an_unchanged_draft_anyway_is_refused_with_409_and_publishes_nothing(login, editor, flow):
    response = login(editor).post(f"{BASE}{flow.pk}/publish")

    assert response.status_code == 409
    assert "nothing to publish" in response.content.decode()
    assert versions_of(flow) == [1]


def test_the_confirmation_shows_what_changes_compared_with_the_live_version(login, editor, flow):
    services.flow_update(
        flow=flow,
        variables=[*GREETING["variables"], {"name": "plan", "default": "basic", "required": False}],
        steps=[
            {"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "Your {{plan}} plan", "actions": []}},
            {"type": "wait", "seconds": 3600},
        ],
    )

    page = login(editor).get(f"{BASE}{flow.pk}/publish")

    html = page.content.decode()
    assert "What changes compared with version 1, live now" in html
    assert "1 variable added, 1 step added, 1 step changed" in html
    assert "Hello {{firstName}}" in html  # the title before
    assert "Hi {{firstName}}" in html  # and after
    assert "Wait 1 hour" in html
    assert "Publish version 2</button>" in html
    assert versions_of(flow) == [1]  # looking publishes nothing


def test_the_dialog_gets_the_confirmation_alone_and_the_page_includes_the_same(login, editor, flow):
    services.flow_update(flow=flow, steps=CHANGED_STEPS)
    client = login(editor)

    fragment = client.get(f"{BASE}{flow.pk}/publish", HTTP_HX_REQUEST="true").content.decode()
    page = client.get(f"{BASE}{flow.pk}/publish").content.decode()

    assert fragment.lstrip().startswith('<div class="publish-confirm"')
    assert "<html" not in fragment
    assert "<html" in page
    assert 'id="publish-confirm"' in page
    assert '<h2 class="publish-title">Publish version 2' in fragment
    assert '<h1 class="publish-title">Publish version 2' in page


def test_the_first_publish_shows_everything_the_version_will_hold(login, editor, draft_flow):
    page = login(editor).get(f"{BASE}{draft_flow.pk}/publish").content.decode()

    assert "What will be published" in page
    assert "First version: 1 variable added, 1 step added" in page


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_viewer_gets_403_and_an_outsider_404(login, viewer, outsider, flow, method):
    services.flow_update(flow=flow, steps=CHANGED_STEPS)
    url = f"{BASE}{flow.pk}/publish"

    answers: list[Any] = [getattr(login(user), method)(url) for user in (viewer, outsider)]

    assert [answer.status_code for answer in answers] == [403, 404]
    assert versions_of(flow) == [1]
