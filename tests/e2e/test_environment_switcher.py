from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from customers.services import customers_upsert
from workbench.services import environment_create

pytestmark = pytest.mark.browser


def test_the_switcher_opens_the_same_section_of_another_environment_and_lists_only_memberships(
    e2e_log_in, e2e_environment, e2e_make_member
):
    staging = environment_create(slug="acme-staging", name="Acme staging")
    environment_create(slug="globex", name="Globex production")
    member = e2e_make_member("eddie", {e2e_environment: "editor", staging: "viewer"})

    page = e2e_log_in(member)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Customers").click()
    expect(page).to_have_url(re.compile(r"/e/acme/customers/$"))

    switcher = page.get_by_label("Environment")
    expect(switcher).to_have_value("acme")
    options = switcher.locator("option")
    expect(options).to_have_text(["Acme production", "Acme staging"])

    switcher.select_option(label="Acme staging")

    expect(page).to_have_url(re.compile(r"/e/acme-staging/customers/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
    expect(page.get_by_label("Environment")).to_have_value("acme-staging")
    expect(page.locator(".account")).to_contain_text("viewer")


def test_an_environment_the_user_is_not_a_member_of_looks_like_it_does_not_exist(
    e2e_log_in, e2e_environment, e2e_make_member
):
    environment_create(slug="globex", name="Globex production")
    page = e2e_log_in(e2e_make_member("eddie", {e2e_environment: "editor"}))

    response = page.goto("/e/globex/customers/")

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_text("Globex")).to_have_count(0)
    expect(page.get_by_label("Environment").locator("option")).to_have_text(["Acme production"])


def test_switching_from_a_customer_profile_opens_the_customers_of_the_other_environment(
    e2e_log_in, e2e_environment, e2e_make_member
):
    staging = environment_create(slug="acme-staging", name="Acme staging")
    customers_upsert(environment=e2e_environment, profiles=[{"user_id": "user-ada", "name": "Ada Lovelace"}])
    page = e2e_log_in(e2e_make_member("eddie", {e2e_environment: "editor", staging: "editor"}))
    page.goto("/e/acme/customers/user-ada")

    page.get_by_label("Environment").select_option("acme-staging")

    expect(page).to_have_url(re.compile(r"/e/acme-staging/customers/$"))
    expect(page.get_by_role("heading", name="No customers yet")).to_be_visible()
