"""The Workbench shell: login, who sees which environment, credentials pages, the switcher."""

from __future__ import annotations

import pytest
from django.test import Client

from customers.models import TestUser
from tests.conftest import request_token
from tests.factories import PASSWORD, CustomerFactory, MembershipFactory, TestUserFactory
from workbench.models import ApiCredential, Role
from workbench.services import credential_create

pytestmark = pytest.mark.django_db


# --- logging in -------------------------------------------------------------------------


def test_the_login_page_shows_a_form(db):
    response = Client().get("/login/")

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_a_member_logs_in_and_lands_on_their_environment(owner):
    client = Client()

    response = client.post("/login/", {"username": "olivia", "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == "/e/acme/"
    assert b"Acme production" in response.content


def test_a_wrong_password_keeps_the_user_out(owner):
    client = Client()

    response = client.post("/login/", {"username": "olivia", "password": "wrong"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert b'role="alert"' in response.content
    assert client.get("/e/acme/").status_code == 302


def test_an_anonymous_visitor_is_sent_to_the_login_page(env_a):
    response = Client().get("/e/acme/customers/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/e/acme/customers/")


def test_a_user_without_an_environment_is_told_so(login):
    from tests.factories import UserFactory

    response = login(UserFactory(username="lonely")).get("/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == []
    assert response.templates[0].name == "workbench/no_environment.html"


# --- nobody reaches another environment -------------------------------------------------


@pytest.fixture
def a_objects(env_a):
    """Things in A an outsider might try to see or change."""
    customer = CustomerFactory(environment=env_a, user_id="alice", name="Alice")
    test_user = TestUserFactory(environment=env_a, user_id="qa-1")
    credential = credential_create(environment=env_a, role="events").credential
    return {"customer": customer, "test_user": test_user, "credential": credential}


OUTSIDER_GETS = [
    "/e/acme/",
    "/e/acme/customers/",
    "/e/acme/customers/alice",
    "/e/acme/test-users/",
    "/e/acme/credentials/",
]


@pytest.mark.parametrize("path", OUTSIDER_GETS)
def test_a_non_member_gets_404_on_another_environments_pages(login, outsider, a_objects, path):
    response = login(outsider).get(path)

    assert response.status_code == 404
    assert b"Alice" not in response.content


def test_a_non_members_writes_to_another_environment_get_404_and_change_nothing(login, outsider, a_objects):
    client = login(outsider)
    credential = a_objects["credential"]
    test_user = a_objects["test_user"]

    responses = [
        client.post("/e/acme/credentials/new", {"role": "events"}),
        client.post(f"/e/acme/credentials/{credential.client_id}/revoke"),
        client.post("/e/acme/test-users/new", {"user_id": "intruder"}),
        client.post("/e/acme/test-users/mine", {"user_id": "intruder"}),
        client.post(f"/e/acme/test-users/{test_user.pk}/delete"),
    ]

    assert [r.status_code for r in responses] == [404] * 5
    assert ApiCredential.objects.filter(environment__slug="acme").count() == 1
    credential.refresh_from_db()
    assert credential.revoked_at is None
    assert list(TestUser.objects.filter(environment__slug="acme").values_list("user_id", flat=True)) == ["qa-1"]


def test_an_unknown_environment_looks_the_same_as_someone_elses(login, outsider, env_a):
    assert login(outsider).get("/e/no-such-env/").status_code == 404


# --- roles ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["viewer", "editor"])
def test_only_an_owner_sees_credentials(request, login, a_objects, persona):
    client = login(request.getfixturevalue(persona))

    assert client.get("/e/acme/credentials/").status_code == 403
    assert b"API credentials" not in client.get("/e/acme/").content


@pytest.mark.parametrize("persona", ["viewer", "editor"])
def test_a_non_owner_cannot_create_or_revoke_credentials(request, login, a_objects, persona):
    client = login(request.getfixturevalue(persona))
    credential = a_objects["credential"]

    created = client.post("/e/acme/credentials/new", {"role": "events"})
    revoked = client.post(f"/e/acme/credentials/{credential.client_id}/revoke")

    assert (created.status_code, revoked.status_code) == (403, 403)
    assert ApiCredential.objects.count() == 1
    credential.refresh_from_db()
    assert credential.revoked_at is None


def test_a_viewer_cannot_add_or_remove_test_users(login, viewer, a_objects):
    client = login(viewer)

    page = client.get("/e/acme/test-users/")
    added = client.post("/e/acme/test-users/new", {"user_id": "qa-2"})
    removed = client.post(f"/e/acme/test-users/{a_objects['test_user'].pk}/delete")

    assert page.status_code == 200
    assert b"Add an external test user" not in page.content
    assert (added.status_code, removed.status_code) == (403, 403)
    assert list(TestUser.objects.values_list("user_id", flat=True)) == ["qa-1"]


def test_a_viewer_cannot_set_even_their_own_test_user_id(login, viewer, env_a):
    response = login(viewer).post("/e/acme/test-users/mine", {"user_id": "vera-phone"})

    assert response.status_code == 403
    assert not TestUser.objects.exists()


def test_an_editor_sets_and_clears_their_own_test_user_id(login, editor, env_a):
    client = login(editor)

    saved = client.post("/e/acme/test-users/mine", {"user_id": "edward-phone"}, follow=True)
    test_user = TestUser.objects.get(environment=env_a)
    cleared = client.post("/e/acme/test-users/mine", {"user_id": ""})

    assert saved.status_code == 200
    assert b"Your test user id was saved." in saved.content
    assert (test_user.user_id, test_user.membership.user) == ("edward-phone", editor)
    assert cleared.status_code == 302
    assert not TestUser.objects.exists()


def test_an_editor_adds_and_removes_a_test_user(login, editor, env_a):
    client = login(editor)

    added = client.post("/e/acme/test-users/new", {"user_id": " qa-7 ", "name": "QA"}, follow=True)
    test_user = TestUser.objects.get(environment=env_a)
    duplicate = client.post("/e/acme/test-users/new", {"user_id": "qa-7"})
    removed = client.post(f"/e/acme/test-users/{test_user.pk}/delete")

    assert added.status_code == 200
    assert test_user.user_id == "qa-7"
    assert b"qa-7" in added.content
    assert duplicate.status_code == 400
    assert b"already a test user" in duplicate.content
    assert removed.status_code == 302
    assert not TestUser.objects.exists()


# --- credentials ------------------------------------------------------------------------


def test_an_owner_creates_a_credential_and_sees_its_secret_exactly_once(login, owner, env_a):
    client = login(owner)

    response = client.post("/e/acme/credentials/new", {"role": "events", "label": "CRM sync"})

    assert response.status_code == 200
    credential = ApiCredential.objects.get(environment=env_a)
    assert (credential.role, credential.label, credential.created_by) == ("events", "CRM sync", owner)
    secret = response.context["client_secret"]
    assert secret.encode() in response.content
    assert request_token(credential.client_id, secret).status_code == 200
    listing = client.get("/e/acme/credentials/")
    assert credential.client_id.encode() in listing.content
    assert secret.encode() not in listing.content


def test_an_invalid_credential_form_is_shown_again_and_creates_nothing(login, owner, env_a):
    response = login(owner).post("/e/acme/credentials/new", {"role": "superuser"})

    assert response.status_code == 400
    assert not ApiCredential.objects.exists()


def test_creating_a_credential_needs_a_post(login, owner, env_a):
    assert login(owner).get("/e/acme/credentials/new").status_code == 405
    assert not ApiCredential.objects.exists()


def test_revoking_a_credential_makes_its_issued_token_get_401(login, owner, api_client, env_a):
    session = api_client(env_a, "events")
    assert session.get("/api/v1/acme/customers/nobody").status_code == 404

    response = login(owner).post(f"/e/acme/credentials/{session.credential.client_id}/revoke", follow=True)

    assert response.status_code == 200
    assert b"was revoked" in response.content
    assert session.get("/api/v1/acme/customers/nobody").status_code == 401
    session.credential.refresh_from_db()
    assert session.credential.revoked_by == owner
    # It stays listed, as revoked, with nothing left to revoke.
    row = response.content.decode().split(f'data-client-id="{session.credential.client_id}"')[1].split("</tr>")[0]
    assert 'class="revoked"' in row
    assert "Revoke</button>" not in row


def test_an_owner_cannot_revoke_another_environments_credential_through_their_own(login, owner, env_b):
    theirs = credential_create(environment=env_b, role="events")

    response = login(owner).post(f"/e/acme/credentials/{theirs.credential.client_id}/revoke")

    assert response.status_code == 404
    theirs.credential.refresh_from_db()
    assert theirs.credential.revoked_at is None


# --- environment switcher ---------------------------------------------------------------


@pytest.fixture
def owner_of_both(owner, env_b):
    MembershipFactory(environment=env_b, user=owner, role=Role.VIEWER)
    return owner


def test_the_switcher_lists_every_environment_the_user_belongs_to(login, owner_of_both, outsider):
    response = login(owner_of_both).get("/e/acme/")

    switcher = response.content.split(b'class="env-switcher"')[1].split(b"</form>")[0]
    assert b'value="acme"' in switcher
    assert b'value="globex"' in switcher


def test_the_switcher_lists_only_the_users_own_environments(login, owner, env_b):
    response = login(owner).get("/e/acme/")

    assert b'value="globex"' not in response.content


def test_switching_keeps_the_section(login, owner_of_both):
    response = login(owner_of_both).get("/switch/", {"env": "globex", "section": "customer_list"})

    assert response.status_code == 302
    assert response["Location"] == "/e/globex/customers/"


def test_switching_to_an_unknown_section_lands_on_the_overview(login, owner_of_both):
    response = login(owner_of_both).get("/switch/", {"env": "globex", "section": "admin:index"})

    assert response["Location"] == "/e/globex/"


def test_switching_to_an_environment_the_user_is_not_in_is_404(login, owner, env_b):
    assert login(owner).get("/switch/", {"env": "globex"}).status_code == 404
