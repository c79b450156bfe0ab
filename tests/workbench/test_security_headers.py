"""Every response carries a Content-Security-Policy; HSTS only behind a TLS proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_DIRECTIVES = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
}


def directives(response) -> set[str]:
    return {part.strip() for part in response["Content-Security-Policy"].split(";")}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/v1/acme/flows", "/oauth/token", "/no-such-page/", "/admin/"])
def test_every_response_carries_the_content_security_policy(path):
    response = Client().get(path)

    assert directives(response) >= REQUIRED_DIRECTIVES
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_the_api_docs_add_only_data_images():
    policy = directives(Client().get("/api/docs/"))

    assert policy >= REQUIRED_DIRECTIVES
    assert "img-src 'self' data:" in policy


def _hsts_header(**env: str) -> str:
    """Start a fresh interpreter, as a deployment would, and ask for the login page over HTTPS."""
    script = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/login/', headers={'X-Forwarded-Proto': 'https'}, secure=False); "
        "print(r.headers.get('Strict-Transport-Security', 'none'))"
    )
    clean = {key: value for key, value in os.environ.items() if key != "DJANGO_BEHIND_TLS_PROXY"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "workbench.settings_test", **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_behind_a_tls_proxy_browsers_are_told_to_insist_on_https_for_a_year():
    assert _hsts_header(DJANGO_BEHIND_TLS_PROXY="1") == "max-age=31536000"


def test_without_a_tls_proxy_no_hsts_is_sent():
    assert _hsts_header() == "none"
