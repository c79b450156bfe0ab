"""Fixtures the workbench tests share with other apps' tests: flows, test users and webhooks,
for the tests of what every endpoint does (bodies, errors, availability)."""

from __future__ import annotations

from tests.flows.conftest import draft_flow, flow, make_flow, test_user  # noqa: F401
from tests.triggers.conftest import post_hook, webhook_trigger  # noqa: F401
