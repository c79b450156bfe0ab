from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from customers.services import customers_upsert

pytestmark = pytest.mark.browser


def test_a_member_finds_a_customer_by_search_and_opens_the_profile(e2e_log_in, e2e_environment, e2e_make_member):
    customers_upsert(
        environment=e2e_environment,
        profiles=[
            {
                "user_id": "user-ada",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "country": "GB",
                "tags": ["vip"],
                "custom_fields": {"plan": "gold", "seats": 12},
            },
            {"user_id": "user-grace", "name": "Grace Hopper", "email": "grace@example.com"},
            {"user_id": "user-linus", "name": "Linus Torvalds", "email": "linus@example.com"},
        ],
    )
    viewer = e2e_make_member("vera", {e2e_environment: "viewer"})
    page = e2e_log_in(viewer)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Customers").click()
    table = page.locator("#customer-table")
    expect(table.locator("tbody tr")).to_have_count(3)

    page.get_by_role("searchbox", name="Search customers").fill("lovelace")

    # htmx swaps the table in place and records the search in the address bar.
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/customers/\?q=lovelace$"))
    expect(table).not_to_contain_text("Grace Hopper")

    table.get_by_role("link", name="user-ada").click()

    expect(page).to_have_url(re.compile(r"/e/acme/customers/user-ada$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    profile = page.locator("section", has=page.get_by_role("heading", name="Profile"))
    expect(profile).to_contain_text("ada@example.com")
    custom = page.locator("section", has=page.get_by_role("heading", name="Custom fields"))
    expect(custom.locator("dt")).to_have_text(["plan", "seats"])
    expect(custom.locator("dd")).to_have_text(["gold", "12"])


def test_a_search_without_matches_says_so(e2e_log_in, e2e_environment, e2e_make_member):
    customers_upsert(environment=e2e_environment, profiles=[{"user_id": "user-ada", "name": "Ada Lovelace"}])
    page = e2e_log_in(e2e_make_member("vera", {e2e_environment: "viewer"}))
    page.goto(f"/e/{e2e_environment.slug}/customers/")

    page.get_by_role("searchbox", name="Search customers").fill("nobody")

    expect(page.locator("#customer-table")).to_contain_text("No customer matches “nobody”")


def test_an_editor_sees_a_test_users_activity_and_sends_them_a_test(
    e2e_log_in, e2e_environment, e2e_make_member, tmp_path
):
    from customers.services import testuser_create
    from flows import services as flow_services
    from flows.selectors import flow_for_start

    customers_upsert(environment=e2e_environment, profiles=[{"user_id": "qa-ada", "name": "Ada (QA phone)"}])
    testuser_create(environment=e2e_environment, user_id="qa-ada", name="QA phone")
    flow = flow_services.flow_create(
        environment=e2e_environment,
        name="Welcome journey",
        variables=[{"name": "firstName", "default": "there", "required": False}],
        steps=[{"type": "send_card", "card": {"title": "Hello {{firstName}}", "body": "Welcome aboard."}}],
    )
    flow = flow_services.flow_publish(flow=flow).flow
    flow_services.invocations_accept(
        flow=flow_for_start(flow=flow),
        mode="live",
        starts=flow_services.start_requests_check({"targetUserIds": ["qa-ada"], "variables": {"firstName": "Ada"}}),
        source="api",
    )
    page = e2e_log_in(e2e_make_member("edith", {e2e_environment: "editor"}))
    page.goto(f"/e/{e2e_environment.slug}/customers/qa-ada")

    live = page.locator("#activity-live")
    expect(live.get_by_role("link", name="Welcome journey")).to_be_visible()
    expect(live).to_contain_text("Hello Ada")
    expect(page.locator("#activity-test")).to_contain_text("No test runs")

    send = page.locator("#customer-send-test")
    send.get_by_label("Flow").select_option(label="Welcome journey")
    send.get_by_label("firstName").fill("Countess")
    send.get_by_role("button", name="Send test to qa-ada").click()

    expect(page.get_by_role("status")).to_contain_text("Test of “Welcome journey” sent to qa-ada")
    # The run happens after the answer; the profile shows it on the next look.
    page.reload()
    expect(page.locator("#activity-test")).to_contain_text("Hello Countess")
    expect(page.locator("#activity-live")).not_to_contain_text("Hello Countess")
    page.screenshot(path=tmp_path / "customer_profile_activity.png", full_page=True)


def test_an_admin_imports_a_csv_whose_bad_rows_are_reported_and_skipped(
    e2e_page, e2e_environment, e2e_make_member, tmp_path
):
    from customers.models import Customer

    admin = e2e_make_member("ada", {e2e_environment: "owner"})
    admin.user.is_staff = admin.user.is_superuser = True
    admin.user.save()
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "userId,name,email,tags,customFields.plan,createdAt\n"
        "u-1,Ada Lovelace,ada@example.com,vip|beta,premium,2024-05-01T09:30:00Z\n"
        "u-2,Grace Hopper,grace@example.com,,basic,\n"
        ",No id,nobody@example.com,,,\n"
        "u-4,Bad date,bob@example.com,,,last tuesday\n"
    )
    page = e2e_page
    page.goto("/login/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Log in").click()

    page.goto("/admin/customers/customer/import/")
    expect(page.get_by_text("separate tags with |")).to_be_visible()
    page.get_by_label("Environment").select_option(label="Acme production (acme)")
    page.get_by_label("File to import").set_input_files(str(csv_file))
    page.get_by_role("button", name="Submit").click()

    expect(page.get_by_role("heading", name="2 rows with problems")).to_be_visible()
    problems = page.locator("table.row-problems")
    expect(problems).to_contain_text("userId: Every row needs a userId")
    expect(problems).to_contain_text("createdAt: Datetime has wrong format.")
    page.screenshot(path=tmp_path / "admin_csv_import_row_problems.png", full_page=True)

    page.get_by_role("button", name="Import the 2 valid rows").click()

    expect(page.locator(".messagelist")).to_contain_text("Import finished: 2 new")
    expect(page.locator(".messagelist")).to_contain_text("2 rows with problems not imported (lines 4, 5).")
    assert sorted(Customer.objects.values_list("user_id", flat=True)) == ["u-1", "u-2"]
    assert Customer.objects.get(user_id="u-1").custom_fields == {"plan": "premium"}
