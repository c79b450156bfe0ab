from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _token_request(base_url: str, client_id: str, client_secret: str) -> tuple[int, dict]:
    body = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    request = urllib.request.Request(
        f"{base_url}/oauth/token",
        data=body,
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_owner_creates_a_credential_that_works_and_revokes_it(
    e2e_log_in, e2e_environment, e2e_make_member, live_server, tmp_path
):
    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    page = e2e_log_in(owner)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="API credentials").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API credentials")
    expect(page.locator("#credentials")).to_have_count(0)
    expect(page.get_by_text("No credentials yet")).to_be_visible()

    page.get_by_label("Role").select_option("events")
    page.get_by_label("Label").fill("CRM sync")
    page.get_by_role("button", name="Create credential").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Credential created")
    expect(page.get_by_role("alert")).to_contain_text("shown only on this page")
    client_id = page.locator("#client-id").inner_text().strip()
    client_secret = page.locator("#client-secret").inner_text().strip()
    assert client_id
    assert len(client_secret) >= 32

    status, token = _token_request(live_server.url, client_id, client_secret)
    assert status == 200, token
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "events"

    page.get_by_role("link", name=re.compile("back to credentials")).click()
    row = page.locator(f'#credentials tr[data-client-id="{client_id}"]')
    expect(row).to_contain_text("CRM sync")
    expect(page.get_by_text(client_secret)).to_have_count(0)

    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()

    expect(page.get_by_role("status")).to_contain_text(f"Credential {client_id} was revoked")
    # It stays listed, greyed, with when and by whom; it can no longer be revoked.
    revoked = page.locator(f'tr[data-client-id="{client_id}"]')
    expect(revoked).to_have_class("revoked")
    expect(revoked).to_contain_text("by olivia")
    expect(revoked.locator(".revoked-note")).to_contain_text("Revoked")
    expect(revoked.get_by_role("button", name="Revoke")).to_have_count(0)
    # The token issued above counts as a use.
    expect(revoked.locator(".last-used")).to_have_text("just now")
    page.screenshot(path=tmp_path / "credentials_with_revoked.png", full_page=True)

    status, error = _token_request(live_server.url, client_id, client_secret)
    assert status in (400, 401)
    assert error["error"] == "invalid_client"


def test_dismissing_the_confirmation_keeps_the_credential(e2e_log_in, e2e_environment, e2e_make_member):
    from workbench.services import credential_create

    owner = e2e_make_member("olivia", {e2e_environment: "owner"})
    issued = credential_create(environment=e2e_environment, role="workbench", label="Terraform")
    page = e2e_log_in(owner)
    page.goto(f"/e/{e2e_environment.slug}/credentials/")

    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    expect(page.locator(f'tr[data-client-id="{issued.credential.client_id}"]')).to_contain_text("Terraform")
    expect(page.get_by_role("status")).to_have_count(0)
