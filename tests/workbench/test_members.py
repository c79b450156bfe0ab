"""Owners manage an environment's members in the Workbench (issue 11, item 9): add an existing
user by username or email, change roles, remove; the last owner can be neither removed nor
demoted, whoever asks (the page, the admin, the services)."""

from __future__ import annotations

import pytest

from tests.factories import MembershipFactory, UserFactory
from workbench import services
from workbench.errors import Refused
from workbench.models import Membership, Role

pytestmark = pytest.mark.django_db

MEMBERS = "/e/acme/members/"


def membership_of(user, environment) -> Membership:
    return Membership.objects.get(user=user, environment=environment)


# --- the page -----------------------------------------------------------------------------


def test_every_member_sees_who_is_in_the_environment(login, owner, editor, viewer):
    response = login(viewer).get(MEMBERS)

    assert response.status_code == 200
    html = response.content.decode()
    assert [m.user.username for m in response.context["members"]] == ["olivia", "edward", "vera"]
    assert "Add a member" not in html
    assert 'action="/e/acme/members/add"' not in html


def test_an_owner_sees_the_forms_to_manage_members(login, owner, editor, env_a):
    html = login(owner).get(MEMBERS).content.decode()

    assert "Add a member" in html
    assert f'action="/e/acme/members/{membership_of(editor, env_a).pk}/role"' in html


def test_an_owner_adds_an_existing_user_by_username(login, owner, env_a):
    ada = UserFactory(username="ada")

    response = login(owner).post("/e/acme/members/add", {"identifier": "Ada", "role": "editor"}, follow=True)

    assert membership_of(ada, env_a).role == Role.EDITOR
    assert "ada is now an editor of Acme production." in response.content.decode()


def test_an_owner_adds_an_existing_user_by_email(login, owner, env_a):
    grace = UserFactory(username="grace", email="Grace@Example.com")

    login(owner).post("/e/acme/members/add", {"identifier": "grace@example.com", "role": "viewer"})

    assert membership_of(grace, env_a).role == Role.VIEWER


def test_adding_someone_without_an_account_says_so_at_the_field(login, owner):
    response = login(owner).post("/e/acme/members/add", {"identifier": "nobody@example.com", "role": "viewer"})

    assert response.status_code == 404
    assert response.context["form"].errors["identifier"][0].startswith("No user is called “nobody@example.com”")
    assert 'aria-invalid="true"' in response.content.decode()


def test_adding_a_member_twice_is_refused_without_changing_their_role(login, owner, editor, env_a):
    response = login(owner).post("/e/acme/members/add", {"identifier": "edward", "role": "owner"})

    assert response.status_code == 409
    assert "already a member" in response.context["form"].errors["identifier"][0]
    assert membership_of(editor, env_a).role == Role.EDITOR


def test_a_member_of_another_environment_can_be_added_here_too(login, owner, outsider, env_a, env_b):
    login(owner).post("/e/acme/members/add", {"identifier": "oscar", "role": "viewer"})

    assert membership_of(outsider, env_a).role == Role.VIEWER
    assert membership_of(outsider, env_b).role == Role.OWNER


def test_an_owner_changes_a_role(login, owner, editor, env_a):
    membership = membership_of(editor, env_a)

    response = login(owner).post(f"/e/acme/members/{membership.pk}/role", {"role": "viewer"}, follow=True)

    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    assert "edward is now a viewer." in response.content.decode()


def test_the_last_owner_cannot_demote_themselves(login, owner, env_a):
    membership = membership_of(owner, env_a)

    response = login(owner).post(f"/e/acme/members/{membership.pk}/role", {"role": "editor"}, follow=True)

    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert "olivia is the last owner of Acme production" in response.content.decode()


def test_an_owner_can_step_down_once_there_is_another_owner(login, owner, editor, env_a):
    client = login(owner)
    client.post(f"/e/acme/members/{membership_of(editor, env_a).pk}/role", {"role": "owner"})

    client.post(f"/e/acme/members/{membership_of(owner, env_a).pk}/role", {"role": "viewer"})

    assert membership_of(owner, env_a).role == Role.VIEWER
    assert client.get("/e/acme/credentials/").status_code == 403
    assert client.get(MEMBERS).status_code == 200


def test_the_remove_page_explains_what_removing_means(login, owner, editor, env_a):
    membership = membership_of(editor, env_a)

    response = login(owner).get(f"/e/acme/members/{membership.pk}/remove")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Remove edward?" in html
    assert "The account itself stays" in html
    assert 'class="sidenav"' in html  # the whole page, in the shell


def test_the_remove_page_answers_only_its_fragment_to_htmx(login, owner, editor, env_a):
    membership = membership_of(editor, env_a)

    response = login(owner).get(f"/e/acme/members/{membership.pk}/remove", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "Remove edward?" in html
    assert "<html" not in html
    assert 'class="sidenav"' not in html
    assert "HX-Request" in response["Vary"]


def test_an_owner_removes_a_member(login, owner, editor, env_a):
    membership = membership_of(editor, env_a)

    response = login(owner).post(f"/e/acme/members/{membership.pk}/remove", follow=True)

    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert type(editor).objects.filter(pk=editor.pk, is_active=True).exists()  # the account stays
    assert "edward is no longer a member of Acme production." in response.content.decode()
    assert login(editor).get("/e/acme/").status_code == 404


def test_the_last_owner_cannot_be_removed_and_the_page_says_why(login, owner, env_a):
    membership = membership_of(owner, env_a)
    client = login(owner)

    page = client.get(f"/e/acme/members/{membership.pk}/remove").content.decode()
    response = client.post(f"/e/acme/members/{membership.pk}/remove", follow=True)

    assert "is the last owner of Acme production" in page
    assert 'method="post"' not in page.split("<main", 1)[1].split("</main>")[0]
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert "olivia is the last owner of Acme production" in response.content.decode()


def test_an_owner_who_leaves_goes_to_their_other_environments(login, owner, editor, env_a):
    client = login(owner)
    client.post(f"/e/acme/members/{membership_of(editor, env_a).pk}/role", {"role": "owner"})

    response = client.post(f"/e/acme/members/{membership_of(owner, env_a).pk}/remove")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not Membership.objects.filter(user=owner, environment=env_a).exists()


@pytest.mark.parametrize("who", ["editor", "viewer"])
def test_only_owners_change_members(request, login, owner, editor, viewer, env_a, who):
    client = login(request.getfixturevalue(who))
    target = membership_of(owner, env_a)
    UserFactory(username="ada")

    answers = [
        client.post("/e/acme/members/add", {"identifier": "ada", "role": "owner"}),
        client.post(f"/e/acme/members/{target.pk}/role", {"role": "viewer"}),
        client.get(f"/e/acme/members/{target.pk}/remove"),
        client.post(f"/e/acme/members/{target.pk}/remove"),
    ]

    assert [answer.status_code for answer in answers] == [403, 403, 403, 403]
    assert Membership.objects.filter(environment=env_a).count() == 3
    assert membership_of(owner, env_a).role == Role.OWNER


def test_an_outsider_sees_and_changes_nothing(login, owner, outsider, env_a):
    client = login(outsider)
    target = membership_of(owner, env_a)

    answers = [
        client.get(MEMBERS),
        client.post("/e/acme/members/add", {"identifier": "oscar", "role": "owner"}),
        client.post(f"/e/acme/members/{target.pk}/role", {"role": "viewer"}),
        client.post(f"/e/acme/members/{target.pk}/remove"),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
    assert not Membership.objects.filter(environment=env_a, user=outsider).exists()


def test_an_owner_cannot_reach_a_membership_of_another_environment(login, owner, outsider, env_b):
    foreign = membership_of(outsider, env_b)

    client = login(owner)

    assert client.post(f"/e/acme/members/{foreign.pk}/role", {"role": "viewer"}).status_code == 404
    assert client.post(f"/e/acme/members/{foreign.pk}/remove").status_code == 404
    assert membership_of(outsider, env_b).role == Role.OWNER


# --- the rule lives in the services -------------------------------------------------------


def test_the_services_keep_the_last_owner(owner, env_a):
    membership = membership_of(owner, env_a)

    with pytest.raises(Refused) as demoted:
        services.member_role_change(membership=membership, role=Role.EDITOR)
    with pytest.raises(Refused) as removed:
        services.member_remove(membership=membership)

    assert demoted.value.code == removed.value.code == "last_owner"
    assert membership_of(owner, env_a).role == Role.OWNER


def test_the_services_let_one_of_two_owners_go(owner, env_a):
    second = MembershipFactory(environment=env_a, user=UserFactory(username="otto"), role=Role.OWNER)

    services.member_remove(membership=second)

    with pytest.raises(Refused):
        services.member_remove(membership=membership_of(owner, env_a))


def test_the_admin_keeps_the_last_owner_too(admin_client, owner, env_a):
    membership = membership_of(owner, env_a)

    response = admin_client.post(
        f"/admin/workbench/membership/{membership.pk}/change/",
        {"environment": env_a.pk, "user": owner.pk, "role": "viewer"},
    )
    deleted = admin_client.post(f"/admin/workbench/membership/{membership.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "Keep at least one owner" in response.content.decode()
    assert "is the last owner" in deleted.content.decode()
    assert membership_of(owner, env_a).role == Role.OWNER


def test_the_members_link_is_in_the_sidebar(login, viewer):
    html = login(viewer).get("/e/acme/").content.decode()

    assert f'href="{MEMBERS}"' in html


def test_the_forbidden_page_keeps_the_shell_and_names_the_owners(login, owner, viewer):
    response = login(viewer).get("/e/acme/credentials/")

    html = response.content.decode()
    assert response.status_code == 403
    assert 'class="sidenav"' in html
    assert 'href="/e/acme/flows/"' in html
    assert "Your role in Acme production is <strong>viewer</strong>" in html
    assert "olivia@example.com" in html
