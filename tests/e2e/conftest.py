"""Browser tests: the real pages, served by `live_server`, driven in headless Chromium.

One browser for the whole e2e package, a fresh context (cookies, storage) and page per test. Chromium is
the system one (/usr/bin/chromium); when it is missing the tests fail, they never skip,
because CI installs it and a silently skipped browser suite proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
E2E_PASSWORD = "correct horse battery staple"
# Long enough for a slow CI machine, short enough that a broken page fails fast.
E2E_TIMEOUT_MS = 10_000
# How Chromium's console reports what the Content-Security-Policy blocked.
CSP_VIOLATION = "Content Security Policy"


@pytest.fixture(scope="package")
def e2e_playwright() -> Iterator[Playwright]:
    """Playwright for the browser tests; package-scoped so it is gone before other tests run.

    Playwright's sync API keeps an asyncio loop running in the test thread, and Django then
    refuses ORM calls from it (SynchronousOnlyOperation) although they are still synchronous.
    DJANGO_ALLOW_ASYNC_UNSAFE is Django's documented switch for that; it is set only while
    the loop lives, so the rest of the suite keeps Django's check.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    yield playwright
    playwright.stop()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def e2e_browser(e2e_playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Browser tests need Chromium at {CHROMIUM} (apt-get install chromium, or set E2E_CHROMIUM). "
            "They do not download a browser.",
            pytrace=False,
        )
    browser = e2e_playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )
    yield browser
    browser.close()


@pytest.fixture
def e2e_context(e2e_browser: Browser, live_server: Any) -> Iterator[BrowserContext]:
    context = e2e_browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(E2E_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def e2e_page(e2e_context: BrowserContext) -> Iterator[Page]:
    """A page whose test fails when Chromium reports a Content-Security-Policy violation."""
    page = e2e_context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if CSP_VIOLATION in message.text else None)
    yield page
    assert not violations, f"The page broke its Content-Security-Policy: {violations}"


@dataclass(frozen=True)
class E2EMember:
    user: Any
    username: str
    password: str


@pytest.fixture
def e2e_make_member(transactional_db: None) -> Callable[..., E2EMember]:
    """Create a user who is a member of the given environments: `{environment: role}`."""
    from django.contrib.auth import get_user_model

    from workbench.services import membership_set

    def make(username: str, roles: dict[Any, str]) -> E2EMember:
        user = get_user_model().objects.create_user(username=username, password=E2E_PASSWORD)
        for environment, role in roles.items():
            membership_set(environment=environment, user=user, role=role)
        return E2EMember(user=user, username=username, password=E2E_PASSWORD)

    return make


@pytest.fixture
def e2e_environment(transactional_db: None) -> Any:
    from workbench.services import environment_create

    return environment_create(slug="acme", name="Acme production")


@pytest.fixture
def e2e_log_in(e2e_page: Page) -> Callable[[E2EMember], Page]:
    """Log in through the real login page and wait for the landing page."""

    def log_in(member: E2EMember) -> Page:
        e2e_page.goto("/login/")
        e2e_page.get_by_label("Username").fill(member.username)
        e2e_page.get_by_label("Password").fill(member.password)
        e2e_page.get_by_role("button", name="Log in").click()
        e2e_page.wait_for_url("**/e/*/")
        return e2e_page

    return log_in
