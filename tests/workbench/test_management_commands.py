"""create_environment and create_api_credential print JSON that automation can use (SPEC section 8)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.conftest import bearer_client, request_token
from tests.factories import EnvironmentFactory
from workbench.models import ApiCredential, Environment

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def test_create_environment_prints_its_slug_and_name_as_json():
    printed = run("create_environment", "acme-staging", "--name", "Acme staging")

    assert printed == {"slug": "acme-staging", "name": "Acme staging"}
    assert Environment.objects.get(slug="acme-staging").name == "Acme staging"


@pytest.mark.parametrize("slug", ["Not A Slug", "-leading-hyphen", "x" * 51])
def test_create_environment_refuses_a_bad_slug_and_creates_nothing(slug):
    with pytest.raises(CommandError, match="slug"):
        call_command("create_environment", slug, "--name", "Bad", stdout=StringIO())

    assert not Environment.objects.exists()


def test_create_environment_refuses_a_slug_that_is_taken():
    EnvironmentFactory(slug="acme", name="Acme")

    with pytest.raises(CommandError, match="slug"):
        call_command("create_environment", "acme", "--name", "Another", stdout=StringIO())

    assert Environment.objects.get(slug="acme").name == "Acme"


@pytest.mark.parametrize("role", ["events", "workbench", "auth"])
def test_the_printed_credential_obtains_a_token_that_works_on_its_environment(env_a, role):
    printed = run("create_api_credential", "--environment", "acme", "--role", role)

    assert set(printed) == {"clientId", "clientSecret"}
    credential = ApiCredential.objects.get(client_id=printed["clientId"])
    assert (credential.environment, credential.role) == (env_a, role)
    token = request_token(printed["clientId"], printed["clientSecret"])
    assert token.status_code == 200
    assert token.json()["scope"] == role
    # A workbench or auth credential may read the credential list; events may not.
    listing = bearer_client(token.json()["access_token"]).get("/api/v1/acme/credentials")
    assert listing.status_code == (403 if role == "events" else 200)


def test_create_api_credential_refuses_an_unknown_environment(db):
    with pytest.raises(CommandError, match="nowhere"):
        call_command("create_api_credential", "--environment", "nowhere", "--role", "events", stdout=StringIO())

    assert not ApiCredential.objects.exists()


def test_create_api_credential_refuses_an_unknown_role(env_a):
    with pytest.raises(CommandError):
        call_command("create_api_credential", "--environment", "acme", "--role", "admin", stdout=StringIO())

    assert not ApiCredential.objects.exists()


def test_seed_demo_can_run_on_every_start_without_duplicating_anything(db):
    from customers.models import Customer

    call_command("seed_demo", "--quiet", stdout=StringIO())
    counts = (Environment.objects.count(), Customer.objects.count(), get_user_model().objects.count())
    call_command("seed_demo", "--quiet", stdout=StringIO())

    assert counts[0] >= 1
    assert counts[1] >= 1
    assert get_user_model().objects.filter(memberships__isnull=False).exists()
    assert (Environment.objects.count(), Customer.objects.count(), get_user_model().objects.count()) == counts
