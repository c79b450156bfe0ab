"""The versions tab: every version with who published it and when, its difference to the one
before, one version's page, and restoring a version into the draft."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flows import services
from flows.models import Flow, FlowStatus, FlowVersion
from tests.flows.conftest import GREETING

pytestmark = pytest.mark.django_db

BASE = "/e/acme/flows/"


def card_steps(title: str, body: str = "") -> list[dict[str, Any]]:
    return [{"type": "send_card", "card": {"title": title, "body": body, "actions": []}}]


@pytest.fixture
def three_versions(env_a, editor, owner) -> Flow:
    """Version 1 (GREETING, by the editor), 2 (a new title, through the API: nobody) and
    3 (a wait step and a second card, by the owner); the draft is version 3."""
    flow = services.flow_create(
        environment=env_a, name="Welcome", variables=GREETING["variables"], steps=GREETING["steps"]
    )
    services.flow_publish(flow=flow, by=editor)
    services.flow_update(flow=flow, steps=card_steps("Hi {{firstName}}", "Welcome aboard."))
    services.flow_publish(flow=flow)
    services.flow_update(
        flow=flow,
        steps=[
            *card_steps("Hi {{firstName}}", "Welcome aboard."),
            {"type": "wait", "seconds": 86400},
            *card_steps("Still there?"),
        ],
    )
    services.flow_publish(flow=flow, by=owner)
    return flow


def version_items(html: str) -> list[str]:
    return re.findall(r'<li class="version-item[^"]*" id="version-(\d+)"', html)


# --- The history ------------------------------------------------------------------------


def test_the_history_lists_every_version_newest_first_with_who_and_live(login, viewer, three_versions):
    response = login(viewer).get(f"{BASE}{three_versions.pk}/versions/")

    html = response.content.decode()
    assert response.status_code == 200
    assert version_items(html) == ["3", "2", "1"]
    live = html[html.index('id="version-3"') : html.index('id="version-2"')]
    assert "live</span>" in live
    assert "olivia" in live
    assert "an API credential" in html[html.index('id="version-2"') : html.index('id="version-1"')]
    assert "edward" in html[html.index('id="version-1"') :]
    assert html.count("live</span>") == 1


def test_each_version_shows_its_difference_to_the_one_before(login, viewer, three_versions):
    html = login(viewer).get(f"{BASE}{three_versions.pk}/versions/").content.decode()

    third = html[html.index('id="version-3"') : html.index('id="version-2"')]
    second = html[html.index('id="version-2"') : html.index('id="version-1"')]
    first = html[html.index('id="version-1"') :]
    assert "2 steps added" in third
    assert "Wait 1 day" in third
    assert "Card “Still there?”" in third
    assert "1 step changed" in second
    assert "Hello {{firstName}}" in second  # the title before
    assert "Hi {{firstName}}" in second  # and after
    assert "First version: 1 variable added, 1 step added" in first


def test_the_draft_s_unpublished_changes_are_shown_above_the_versions(login, editor, three_versions):
    services.flow_update(flow=three_versions, steps=card_steps("Draft title"))

    html = login(editor).get(f"{BASE}{three_versions.pk}/versions/").content.decode()

    draft = html[html.index("version-draft") : html.index('id="version-3"')]
    assert "Changes since version 3" in draft
    assert "Draft title" in draft


def test_a_flow_never_published_explains_how_versions_come(login, editor, env_a):
    flow = services.flow_create(environment=env_a, name="New", variables=[], steps=card_steps("Hi"))

    html = login(editor).get(f"{BASE}{flow.pk}/versions/").content.decode()

    assert "No version yet" in html
    assert f"{BASE}{flow.pk}/publish" in html


def test_the_versions_tab_is_in_the_flow_page_s_tab_bar(login, viewer, three_versions):
    html = login(viewer).get(f"{BASE}{three_versions.pk}/versions/").content.decode()

    assert re.search(r'<a class="flow-tab" href="[^"]*/versions/" aria-current="page">Versions</a>', html)


def test_a_viewer_sees_no_restore_button_and_an_editor_one_per_version_the_draft_is_not(
    login, viewer, editor, three_versions
):
    url = f"{BASE}{three_versions.pk}/versions/"

    as_viewer = login(viewer).get(url).content.decode()
    as_editor = login(editor).get(url).content.decode()

    assert "Restore into draft" not in as_viewer
    # Version 3 is what the draft holds already: restoring it would change nothing.
    assert as_editor.count(">Restore into draft</button>") == 2
    third = as_editor[as_editor.index('id="version-3"') : as_editor.index('id="version-2"')]
    assert "/versions/3/restore" not in third
    assert "the draft</span>" in third


# --- One version --------------------------------------------------------------------------


def test_a_version_s_page_shows_its_cards_and_its_difference(login, viewer, three_versions):
    response = login(viewer).get(f"{BASE}{three_versions.pk}/versions/2/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Version 2" in html
    assert "Changes since version 1" in html
    assert '<h3 class="app-card-title">Hi there</h3>' in html  # the card, with the default
    assert "an API credential" in html


def test_a_version_that_does_not_exist_is_404(login, viewer, three_versions):
    assert login(viewer).get(f"{BASE}{three_versions.pk}/versions/9/").status_code == 404


# --- Restoring into the draft -------------------------------------------------------------


def restore(client: Any, flow: Flow, number: int, **kwargs: Any) -> Any:
    return client.post(f"{BASE}{flow.pk}/versions/{number}/restore", **kwargs)


def test_restoring_copies_the_version_into_the_draft_and_leaves_versions_and_live_alone(login, editor, three_versions):
    before = list(FlowVersion.objects.filter(flow=three_versions).values_list("number", "definition"))

    response = restore(login(editor), three_versions, 1, follow=True)

    three_versions.refresh_from_db()
    assert three_versions.draft == FlowVersion.objects.get(flow=three_versions, number=1).definition
    assert (three_versions.status, three_versions.published_version) == (FlowStatus.PUBLISHED, 3)
    assert list(FlowVersion.objects.filter(flow=three_versions).values_list("number", "definition")) == before
    assert response.redirect_chain[-1][0] == f"{BASE}{three_versions.pk}/"
    assert "Version 1 restored into the draft; publish to make it live" in response.content.decode()


def test_a_restored_version_can_then_be_published_as_the_next_version(login, editor, three_versions):
    client = login(editor)
    restore(client, three_versions, 1)

    client.post(f"{BASE}{three_versions.pk}/publish")

    newest = FlowVersion.objects.filter(flow=three_versions).order_by("-number").first()
    assert newest is not None
    assert (newest.number, newest.definition["steps"]) == (4, GREETING["steps"])


def test_restoring_the_version_the_draft_already_is_changes_nothing_and_says_so(login, editor, three_versions):
    response = restore(login(editor), three_versions, 3, follow=True)

    assert "The draft already is version 3; nothing changed." in response.content.decode()


def test_an_archived_flow_cannot_restore_and_says_why(login, editor, three_versions):
    services.flow_archive(flow=three_versions)

    response = restore(login(editor), three_versions, 1, follow=True)

    three_versions.refresh_from_db()
    assert three_versions.draft["steps"][-1]["card"]["title"] == "Still there?"  # still version 3
    html = response.content.decode()
    assert "This flow is archived: its draft can no longer change, so no version can be restored." in html
    assert "Restore into draft</button>" not in html


def test_restore_is_a_post_with_the_confirmation_dialog(login, editor, three_versions):
    html = login(editor).get(f"{BASE}{three_versions.pk}/versions/2/").content.decode()

    form = re.search(r'<form method="post" action="[^"]*/versions/2/restore"[^>]*>', html)
    assert form is not None
    assert 'data-confirm="The draft becomes version 2 again' in form.group(0)
    assert login(editor).get(f"{BASE}{three_versions.pk}/versions/2/restore").status_code == 405


# --- Who may see and act ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["versions/", "versions/1/"])
def test_another_environment_s_member_gets_404_on_the_pages(login, outsider, three_versions, path):
    assert login(outsider).get(f"{BASE}{three_versions.pk}/{path}").status_code == 404


def test_a_viewer_gets_403_and_an_outsider_404_on_restore(login, viewer, outsider, three_versions):
    answers = [restore(login(user), three_versions, 1).status_code for user in (viewer, outsider)]

    three_versions.refresh_from_db()
    assert answers == [403, 404]
    assert three_versions.draft["steps"][-1]["card"]["title"] == "Still there?"


def test_the_history_reads_in_a_fixed_number_of_queries(login, viewer, three_versions, django_assert_max_num_queries):
    client = login(viewer)
    url = f"{BASE}{three_versions.pk}/versions/"
    client.get(url)  # warm the session and the membership

    with django_assert_max_num_queries(12):
        client.get(url)
    for number in range(2):
        services.flow_update(flow=three_versions, steps=card_steps(f"More {number}"))
        services.flow_publish(flow=three_versions)
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert version_items(response.content.decode()) == ["5", "4", "3", "2", "1"]
