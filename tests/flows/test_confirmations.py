"""Archive, delete and "delete test data" confirm in the Workbench's dialog like every other
confirmation: under htmx their views answer the confirmation alone, which the full page (the
path without JavaScript) includes, and the action happens only on POST."""

from __future__ import annotations

import pytest

from flows.models import Flow, FlowStatus

pytestmark = pytest.mark.django_db

BASE = "/e/acme/flows/"


@pytest.mark.parametrize(
    ("action", "marker", "heading"),
    [("archive", 'id="archive-confirm"', "Archive “Welcome”?"), ("delete", 'id="delete-confirm"', "Delete “Welcome”?")],
)
def test_the_dialog_gets_the_confirmation_alone_and_the_page_includes_it(login, owner, flow, action, marker, heading):
    client = login(owner)

    fragment = client.get(f"{BASE}{flow.pk}/{action}", HTTP_HX_REQUEST="true").content.decode()
    page = client.get(f"{BASE}{flow.pk}/{action}").content.decode()

    assert marker in fragment
    assert "<html" not in fragment
    assert f"<h2>{heading}</h2>" in fragment
    assert marker in page
    assert "<html" in page
    assert f"<h1>{heading}</h1>" in page
    assert Flow.objects.filter(pk=flow.pk, status=FlowStatus.PUBLISHED).exists()  # nothing done on GET


def test_the_test_data_confirmation_is_a_fragment_for_the_dialog(login, owner, env_a):
    client = login(owner)

    fragment = client.get(f"{BASE}settings/test-data/delete", HTTP_HX_REQUEST="true").content.decode()
    settings_page = client.get(f"{BASE}settings/").content.decode()

    assert 'id="test-data-confirm"' in fragment
    assert "<html" not in fragment
    assert "There is no test data." in fragment
    assert "data-confirm-page>Delete test data…</a>" in settings_page


def test_the_delete_confirmation_offers_archiving_in_the_same_dialog(login, owner, flow):
    fragment = login(owner).get(f"{BASE}{flow.pk}/delete", HTTP_HX_REQUEST="true").content.decode()

    assert f'href="{BASE}{flow.pk}/archive" data-confirm-page>archive it</a>' in fragment


def test_confirmations_stay_closed_to_other_environments_and_lower_roles(login, outsider, viewer, flow):
    for action in ("archive", "delete"):
        assert login(outsider).get(f"{BASE}{flow.pk}/{action}", HTTP_HX_REQUEST="true").status_code == 404
        assert login(viewer).get(f"{BASE}{flow.pk}/{action}", HTTP_HX_REQUEST="true").status_code == 403
