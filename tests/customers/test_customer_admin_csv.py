"""CSV export and import of customers in Django admin (django-import-export), with the API's
column names, the environment chosen in the import form, and rows with problems reported one
by one while the others import (issue 11, item 12)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
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

    assert row["userId"] == "'=cmd|' /C calc'!A0"
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

    assert (row["userId"], row["name"], row["email"]) == ("u1", "Ada Lovelace", "ada@example.com")
    assert row["timezone"] == "Europe/London"
    assert row["tags"] == "vip|beta"
    assert row["customFields"] == '{"plan": "premium"}'
    assert row["createdAt"].endswith("Z")
    # The columns are the API's names, so an exported file imports back unchanged.
    assert list(row)[:3] == ["userId", "name", "email"]
    assert "environment" not in row


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


def upload(client: Client, text: str, environment) -> HttpResponse:
    """The first step: upload the file for an environment and get the preview."""
    file = SimpleUploadedFile("customers.csv", text.encode(), content_type="text/csv")
    form = {"import_file": file, "format": "0", "resource": "0", "environment": environment.pk}
    response = client.post(IMPORT_URL, form)
    assert response.status_code == 200
    return response


def confirm(client: Client, preview: HttpResponse) -> HttpResponse:
    """The second step: the preview's confirmation form, as the admin's button posts it."""
    html = preview.content.decode()
    confirm_form = html[html.index('action="' + PROCESS_URL) :]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', confirm_form))
    hidden.pop("csrfmiddlewaretoken", None)
    done = client.post(PROCESS_URL, hidden, follow=True)
    assert done.status_code == 200, done.content[:2000]
    return done


def import_through_admin(client: Client, text: str, environment) -> HttpResponse:
    return confirm(client, upload(client, text, environment))


def test_the_import_page_explains_the_columns_and_asks_for_the_environment(admin_client, env_a, env_b):
    html = admin_client.get(IMPORT_URL).content.decode()

    assert 'name="environment"' in html
    assert "Acme production" in html
    assert "Globex production" in html
    assert "<code>userId</code>" in html
    assert "<code>customFields.&lt;name&gt;</code>" in html
    assert "separate tags with <code>|</code>" in html
    assert "A blank cell is <code>null</code>" in html


def test_an_import_without_an_environment_is_refused_at_the_field(admin_client, env_a):
    file = SimpleUploadedFile("customers.csv", b"userId,name\nu1,Ada\n", content_type="text/csv")

    response = admin_client.post(IMPORT_URL, {"import_file": file, "format": "0", "resource": "0"})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Customer.objects.exists()


def test_an_import_preview_writes_nothing(admin_client, env_a):
    response = upload(admin_client, "userId,name\nu1,Ada\n", env_a)

    assert b"Ada" in response.content
    assert b"1 row will be imported into Acme production." in response.content
    assert not Customer.objects.exists()


def test_an_import_creates_profiles_through_the_upsert_service(admin_client, env_a, monkeypatch):
    calls = []
    real = resources.customer_upsert

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(resources, "customer_upsert", spy)

    done = import_through_admin(
        admin_client,
        "userId,name,tags,customFields.plan,customFields.seats,customFields.beta\nu1,Ada,vip|beta,premium,12,true\n",
        env_a,
    )

    customer = Customer.objects.get(environment=env_a, user_id="u1")
    assert (customer.name, customer.tags) == ("Ada", ["vip", "beta"])
    assert customer.custom_fields == {"plan": "premium", "seats": 12, "beta": True}
    assert [call["profile"]["user_id"] for call in calls] == ["u1"]
    assert [call["environment"] for call in calls] == [env_a]
    assert "Import finished: 1 new" in done.content.decode()


def test_a_json_custom_fields_column_is_read_as_the_api_reads_it(admin_client, env_a):
    import_through_admin(admin_client, 'userId,customFields\nu1,"{""plan"": ""premium"", ""seats"": 3}"\n', env_a)

    assert Customer.objects.get(user_id="u1").custom_fields == {"plan": "premium", "seats": 3}


def test_an_import_merges_into_an_existing_profile_as_the_api_does(admin_client, env_a):
    existing = CustomerFactory(
        environment=env_a,
        user_id="u1",
        name="Ada",
        email="ada@example.com",
        city="London",
        tags=["vip"],
        custom_fields={"plan": "basic", "legacy": True, "seats": 2},
        updated_at=timezone.now() - timedelta(days=1),
    )
    before_update = existing.updated_at

    import_through_admin(admin_client, "userId,city,customFields.plan,customFields.legacy\nu1,Paris,premium,\n", env_a)

    customer = Customer.objects.get(environment=env_a, user_id="u1")
    # Columns in the file replace; columns absent keep their values.
    assert (customer.name, customer.email, customer.city, customer.tags) == ("Ada", "ada@example.com", "Paris", ["vip"])
    # Custom fields merge key by key; a blank cell is null, which removes the key.
    assert customer.custom_fields == {"plan": "premium", "seats": 2}
    assert customer.updated_at > before_update
    assert Customer.objects.count() == 1


def test_a_blank_cell_is_null_as_in_the_api(admin_client, env_a):
    CustomerFactory(environment=env_a, user_id="u1", name="Ada", email="ada@example.com", tags=["vip"])

    import_through_admin(admin_client, "userId,name,email,tags,createdAt\nu1,,ada@new.example,,\n", env_a)

    customer = Customer.objects.get(user_id="u1")
    assert (customer.name, customer.email, customer.tags) == (None, "ada@new.example", [])
    assert customer.created_at is not None


def test_the_environment_comes_from_the_form_not_the_file(admin_client, env_a, env_b):
    CustomerFactory(environment=env_a, user_id="u1", name="Ada in A")

    import_through_admin(admin_client, "userId,name\nu1,Ada in B\n", env_b)

    assert Customer.objects.get(environment=env_a, user_id="u1").name == "Ada in A"
    assert Customer.objects.get(environment=env_b, user_id="u1").name == "Ada in B"


def test_bad_rows_are_reported_one_by_one_and_the_good_rows_import(admin_client, env_a, tmp_path):
    text = (
        "userId,name,createdAt,customFields,tags\n"
        "good-1,Ada,2024-05-01T09:30:00Z,,vip\n"
        ",Nobody,,,\n"
        "bad-date,Bob,yesterday,,\n"
        "bad-json,Eve,,{plan: premium},\n"
        "good-2,Grace,,,\n"
        f"too-long,{'x' * 300},,,\n"
    )

    preview = upload(admin_client, text, env_a)

    html = preview.content.decode()
    assert "4 rows with problems" in html
    assert "2 rows can be imported into Acme production; 4 rows with problems will be skipped" in html
    problems = html[html.index("row-problems") :]
    assert "<strong>userId</strong>: Every row needs a userId" in problems
    assert "<strong>createdAt</strong>: Datetime has wrong format." in problems
    assert "<strong>customFields</strong>: Not a JSON object" in problems
    assert "<strong>name</strong>: Ensure this field has no more than 255 characters." in problems
    # Lines as a spreadsheet numbers them, the header being line 1.
    for line in (3, 4, 5, 7):
        assert f"<td>{line}</td>" in problems
    assert "Traceback" not in html
    assert "NOT NULL" not in html
    assert not Customer.objects.exists()

    done = confirm(admin_client, preview)

    assert sorted(Customer.objects.values_list("user_id", flat=True)) == ["good-1", "good-2"]
    assert Customer.objects.get(user_id="good-1").tags == ["vip"]
    assert "4 rows with problems not imported (lines 3, 4, 5, 7)." in done.content.decode()


def test_an_unknown_column_is_named_and_nothing_is_written(admin_client, env_a):
    preview = upload(admin_client, "userId,emial,environment\nu1,ada@example.com,acme\n", env_a)

    html = preview.content.decode()
    assert "Unknown columns: emial, environment." in html
    assert PROCESS_URL not in html
    assert "Traceback" not in html
    assert not Customer.objects.exists()


def test_a_file_without_user_ids_is_refused_with_a_clear_message(admin_client, env_a):
    preview = upload(admin_client, "name,email\nAda,ada@example.com\n", env_a)

    assert "The file needs a userId column" in preview.content.decode()
    assert not Customer.objects.exists()


def test_an_exported_file_imports_back_unchanged(admin_client, env_a, env_b):
    CustomerFactory(
        environment=env_a, user_id="u1", name="Ada", tags=["vip", "beta"], custom_fields={"plan": "premium", "seats": 3}
    )
    exported = admin_client.post(
        EXPORT_URL, {"format": "0", "resource": "0"} | {f"customerresource_{column}": "on" for column in COLUMNS}
    ).content.decode("utf-8-sig")

    import_through_admin(admin_client, exported, env_b)

    copy = Customer.objects.get(environment=env_b, user_id="u1")
    original = Customer.objects.get(environment=env_a, user_id="u1")
    assert (copy.name, copy.tags, copy.custom_fields) == ("Ada", ["vip", "beta"], {"plan": "premium", "seats": 3})
    assert copy.created_at == original.created_at
