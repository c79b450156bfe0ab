"""CSV export and import of customers in Django admin (django-import-export)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from customers import resources
from customers.models import Customer
from customers.resources import CustomerResource
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

EXPORT_URL = "/admin/customers/customer/export/"
IMPORT_URL = "/admin/customers/customer/import/"
PROCESS_URL = "/admin/customers/customer/process_import/"
COLUMNS = [
    "environment",
    "user_id",
    "name",
    "email",
    "phone",
    "city",
    "country",
    "region",
    "timezone",
    "tags",
    "custom_fields",
    "created_at",
    "first_seen_at",
    "last_seen_at",
    "last_seen_ios_at",
    "last_seen_android_at",
    "last_seen_web_at",
]


@pytest.fixture
def dangerous(env_a) -> Customer:
    return CustomerFactory(
        environment=env_a,
        user_id="=cmd|' /C calc'!A0",
        name='=HYPERLINK("http://evil","x")',
        email="@SUM(1+1)@example.com",
        phone="+47 22 00 00 00",
        city="-2+3",
        country="\t=1",
        region="\r=1",
        timezone="Europe/Oslo",
        tags=["-vip", "beta"],
        custom_fields={"plan": "premium"},
    )


def rows_of(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def export_through_admin(client: Client) -> list[dict[str, str]]:
    form = {"format": "0", "resource": "0"} | {f"customerresource_{column}": "on" for column in COLUMNS}
    response = client.post(EXPORT_URL, form)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    return rows_of(response.content)


# --- export -----------------------------------------------------------------------------


def test_the_admin_export_neutralises_every_cell_a_spreadsheet_would_run(admin_client, dangerous):
    (row,) = export_through_admin(admin_client)

    assert row["user_id"] == "'=cmd|' /C calc'!A0"
    assert row["name"] == '\'=HYPERLINK("http://evil","x")'
    assert row["email"] == "'@SUM(1+1)@example.com"
    assert row["phone"] == "'+47 22 00 00 00"
    assert row["city"] == "'-2+3"
    assert row["country"] == "'\t=1"
    assert row["region"] == "'\r=1"
    assert row["tags"] == "'-vip|beta"


def test_the_admin_export_leaves_harmless_cells_alone(admin_client, env_a):
    CustomerFactory(
        environment=env_a,
        user_id="u1",
        name="Ada Lovelace",
        email="ada@example.com",
        timezone="Europe/London",
        tags=["vip", "beta"],
        custom_fields={"plan": "premium"},
    )

    (row,) = export_through_admin(admin_client)

    assert (row["environment"], row["user_id"], row["name"], row["email"]) == (
        "acme",
        "u1",
        "Ada Lovelace",
        "ada@example.com",
    )
    assert row["timezone"] == "Europe/London"
    assert row["tags"] == "vip|beta"
    assert row["custom_fields"] == '{"plan": "premium"}'


def test_the_resource_export_neutralises_formulas_too(dangerous):
    dataset = CustomerResource().export()

    (row,) = rows_of(dataset.csv.encode())
    assert row["name"].startswith("'=")
    assert row["tags"] == "'-vip|beta"


def test_a_non_staff_member_cannot_export(login, owner, dangerous):
    response = login(owner).post(EXPORT_URL, {"format": "0", "resource": "0"})

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- import -----------------------------------------------------------------------------


def import_through_admin(client: Client, text: str) -> None:
    """Upload, check the preview, confirm: the two steps an admin clicks through."""
    upload = SimpleUploadedFile("customers.csv", text.encode(), content_type="text/csv")
    preview = client.post(IMPORT_URL, {"import_file": upload, "format": "0", "resource": "0"})
    assert preview.status_code == 200
    html = preview.content.decode()
    confirm_form = html[html.index('action="' + PROCESS_URL) :]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', confirm_form))
    hidden.pop("csrfmiddlewaretoken", None)
    done = client.post(PROCESS_URL, hidden)
    assert done.status_code == 302, done.content[:2000]


def test_an_import_preview_writes_nothing(admin_client, env_a):
    upload = SimpleUploadedFile("customers.csv", b"environment,user_id,name\nacme,u1,Ada\n", content_type="text/csv")

    response = admin_client.post(IMPORT_URL, {"import_file": upload, "format": "0", "resource": "0"})

    assert response.status_code == 200
    assert b"Ada" in response.content
    assert not Customer.objects.exists()


def test_an_import_creates_new_profiles_through_the_upsert_service(admin_client, env_a, monkeypatch):
    calls = []
    real = resources.customers_upsert

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(resources, "customers_upsert", spy)

    import_through_admin(
        admin_client,
        'environment,user_id,name,tags,custom_fields\nacme,u1,Ada,vip|beta,"{""plan"": ""premium""}"\n',
    )

    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert (customer.name, customer.tags, customer.custom_fields) == ("Ada", ["vip", "beta"], {"plan": "premium"})
    assert [call["profiles"][0]["user_id"] for call in calls] == ["u1"]


def test_an_import_merges_into_an_existing_profile(admin_client, env_a):
    existing = CustomerFactory(
        environment=env_a,
        user_id="u1",
        name="Ada",
        email="ada@example.com",
        city="London",
        tags=["vip"],
        custom_fields={"plan": "basic", "legacy": True},
        updated_at=timezone.now() - timedelta(days=1),
    )
    before_update = existing.updated_at

    import_through_admin(
        admin_client,
        'environment,user_id,city,custom_fields\nacme,u1,Paris,"{""plan"": ""premium""}"\n',
    )

    customer = Customer.objects.get(environment=env_a, user_id="u1")
    # Columns in the file replace; columns absent keep their values.
    assert (customer.name, customer.email, customer.city, customer.tags) == ("Ada", "ada@example.com", "Paris", ["vip"])
    # The custom_fields cell is the whole set of custom fields.
    assert customer.custom_fields == {"plan": "premium"}
    assert customer.updated_at > before_update
    assert Customer.objects.count() == 1


def test_an_import_for_another_environment_lands_only_there(admin_client, env_a, env_b):
    CustomerFactory(environment=env_a, user_id="u1", name="Ada in A")

    import_through_admin(admin_client, "environment,user_id,name\nglobex,u1,Ada in B\n")

    assert Customer.objects.get(environment=env_a, user_id="u1").name == "Ada in A"
    assert Customer.objects.get(environment=env_b, user_id="u1").name == "Ada in B"


def test_an_import_naming_an_unknown_environment_writes_nothing(admin_client, env_a):
    upload = SimpleUploadedFile("customers.csv", b"environment,user_id,name\nnowhere,u1,Ada\n", content_type="text/csv")

    response = admin_client.post(IMPORT_URL, {"import_file": upload, "format": "0", "resource": "0"})

    assert response.status_code == 200
    assert PROCESS_URL.encode() not in response.content
    assert not Customer.objects.exists()
