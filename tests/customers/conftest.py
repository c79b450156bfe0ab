"""Fixtures the customers tests share with the flows tests: the customer profile shows the
customer's flow activity (tests/customers/test_customer_activity.py)."""

from __future__ import annotations

from tests.flows.conftest import flow, make_flow  # noqa: F401
