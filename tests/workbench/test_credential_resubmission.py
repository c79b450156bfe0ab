"""Reloading the "credential created" page does not issue a second credential."""

from __future__ import annotations

import re

from workbench.models import ApiCredential


def test_resending_the_same_create_form_issues_one_credential(login, owner):
    client = login(owner)
    page = client.get("/e/acme/credentials/").content.decode()
    nonce = re.search(r'name="nonce" value="([0-9a-f]{32})"', page).group(1)

    first = client.post("/e/acme/credentials/new", {"role": "events", "nonce": nonce})
    again = client.post("/e/acme/credentials/new", {"role": "events", "nonce": nonce}, follow=True)

    assert first.status_code == 200
    assert b"Copy the secret now" in first.content
    assert ApiCredential.objects.count() == 1
    assert b"already created" in again.content


def test_each_freshly_loaded_form_creates_its_own_credential(login, owner):
    client = login(owner)
    for _ in range(2):
        page = client.get("/e/acme/credentials/").content.decode()
        nonce = re.search(r'name="nonce" value="([0-9a-f]{32})"', page).group(1)
        client.post("/e/acme/credentials/new", {"role": "events", "nonce": nonce})

    assert ApiCredential.objects.count() == 2
