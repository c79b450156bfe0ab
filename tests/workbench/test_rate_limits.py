"""Failed log-ins and failed OAuth2 client authentications are limited; successes never are.

Defaults: 10 failures per minute from one address, 30 per minute on one client id or username.
The tests lower nothing, so they show the limits a deployment gets.
"""

from __future__ import annotations

import ipaddress
import time
from types import SimpleNamespace

import django_ratelimit.core
import pytest
from django.test import Client

from tests.conftest import TOKEN_URL, basic_auth, request_token
from tests.factories import PASSWORD, UserFactory
from workbench.services import credential_create

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
INTEGRATION = "198.51.100.20"


def token_from(address: str, client_id: str, client_secret: str):
    return Client(REMOTE_ADDR=address).post(
        TOKEN_URL, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic_auth(client_id, client_secret)
    )


def log_in_from(address: str, username: str, password: str):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> SimpleNamespace:
    """The counters' clock, standing still unless a test moves `clock.now`: no test straddles a window."""
    clock = SimpleNamespace(now=time.time())
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def issued(env_a):
    return credential_create(environment=env_a, role="events")


# --- /oauth/token ---


def test_ten_wrong_secrets_from_one_address_are_answered_normally(issued):
    answers = [token_from(ATTACKER, issued.credential.client_id, "wrong").status_code for _ in range(10)]

    assert answers == [401] * 10


def test_the_eleventh_wrong_secret_from_one_address_gets_429_in_oauth_shape_with_retry_after(issued):
    for _ in range(10):
        token_from(ATTACKER, issued.credential.client_id, "wrong")

    response = token_from(ATTACKER, issued.credential.client_id, issued.client_secret)

    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "slow_down"
    assert "Too many failed client authentications" in body["error_description"]
    assert 1 <= int(response["Retry-After"]) <= 60 + 5


def test_a_blocked_address_may_try_again_once_the_window_has_passed(issued, clock):
    for _ in range(10):
        token_from(ATTACKER, issued.credential.client_id, "wrong")
    wait = int(token_from(ATTACKER, issued.credential.client_id, issued.client_secret)["Retry-After"])

    clock.now += wait

    assert token_from(ATTACKER, issued.credential.client_id, issued.client_secret).status_code == 200


def test_a_blocked_address_cannot_try_other_clients_either(issued, env_a):
    other = credential_create(environment=env_a, role="auth")
    for _ in range(10):
        token_from(ATTACKER, issued.credential.client_id, "wrong")

    assert token_from(ATTACKER, other.credential.client_id, other.client_secret).status_code == 429


def test_the_correct_secret_from_another_address_still_gets_a_token_after_failures(issued):
    for _ in range(10):
        token_from(ATTACKER, issued.credential.client_id, "wrong")

    response = token_from(INTEGRATION, issued.credential.client_id, issued.client_secret)

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_many_addresses_guessing_one_client_id_lock_that_client_id(issued):
    for attempt in range(30):
        token_from(f"203.0.113.{attempt // 10 + 1}", issued.credential.client_id, "wrong")

    response = token_from(INTEGRATION, issued.credential.client_id, issued.client_secret)

    assert response.status_code == 429
    assert response.json()["error"] == "slow_down"


def test_successful_token_requests_are_never_counted(issued):
    answers = [request_token(issued.credential.client_id, issued.client_secret).status_code for _ in range(25)]

    assert answers == [200] * 25


def test_form_field_credentials_are_counted_by_their_client_id(issued):
    for attempt in range(30):
        Client(REMOTE_ADDR=f"203.0.113.{attempt // 10 + 1}").post(
            TOKEN_URL,
            {"grant_type": "client_credentials", "client_id": issued.credential.client_id, "client_secret": "no"},
        )

    assert token_from(INTEGRATION, issued.credential.client_id, issued.client_secret).status_code == 429


# --- /login/ ---


def test_ten_wrong_passwords_show_the_usual_error(owner):
    answers = [log_in_from(ATTACKER, "olivia", "wrong") for _ in range(10)]

    assert [answer.status_code for answer in answers] == [200] * 10
    assert "do not match" in answers[-1].content.decode()


def test_after_ten_failures_even_the_right_password_gets_429_with_a_clear_message(owner):
    for _ in range(10):
        log_in_from(ATTACKER, "olivia", "wrong")

    response = log_in_from(ATTACKER, "olivia", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert int(response["Retry-After"]) >= 1
    assert "_auth_user_id" not in response.wsgi_request.session


def test_the_right_password_from_another_address_still_logs_in_after_failures(owner):
    for _ in range(10):
        log_in_from(ATTACKER, "olivia", "wrong")

    response = log_in_from(INTEGRATION, "olivia", PASSWORD)

    assert response.status_code == 302


def test_many_addresses_guessing_one_username_lock_that_username_in_any_case(owner):
    for attempt in range(30):
        log_in_from(f"203.0.113.{attempt // 10 + 1}", "Olivia" if attempt % 2 else "olivia", "wrong")

    assert log_in_from(INTEGRATION, "olivia", PASSWORD).status_code == 429


def test_successful_log_ins_are_never_counted(owner):
    answers = [log_in_from(ATTACKER, "olivia", PASSWORD).status_code for _ in range(25)]

    assert answers == [302] * 25


def test_an_empty_form_is_not_counted_as_a_guess(owner):
    for _ in range(15):
        log_in_from(ATTACKER, "", "")

    assert log_in_from(ATTACKER, "olivia", PASSWORD).status_code == 302


def test_the_admin_login_is_the_rate_limited_login_page(db):
    UserFactory(username="root", is_staff=True, is_superuser=True)

    response = Client().get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/"


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_count(owner, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    proxy = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(10):
        proxy.post("/login/", {"username": "olivia", "password": "wrong"}, HTTP_X_FORWARDED_FOR=ATTACKER)

    blocked = proxy.post("/login/", {"username": "olivia", "password": PASSWORD}, HTTP_X_FORWARDED_FOR=ATTACKER)
    other = proxy.post("/login/", {"username": "olivia", "password": PASSWORD}, HTTP_X_FORWARDED_FOR=INTEGRATION)

    assert blocked.status_code == 429
    assert other.status_code == 302
