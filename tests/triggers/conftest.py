"""Webhook triggers as their senders and members meet them.

`webhook_trigger(...)` makes a webhook trigger through the services; `post_hook(trigger, body)`
sends a request to its URL as a sender does (raw bytes, headers, a client address) inside
`django_capture_on_commit_callbacks(execute=True)`, so an accepted start's runs have executed
(tasks run eagerly) when it returns. The flows fixtures (`flow`, `draft_flow`, `test_user`,
`make_flow`) are shared from tests/flows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from flows.models import Flow
from tests.flows.conftest import draft_flow, flow, make_flow, start_flow, test_user  # noqa: F401
from triggers import services
from triggers.models import Trigger

STRIPE_SECRET = "whsec_5f1d0c8a7e"
# The Stripe-style configuration of SPEC section 4.
STRIPE_SIGNATURE = {
    "secret": STRIPE_SECRET,
    "algorithm": "sha256",
    "digest": "hex",
    "data": {
        "signature": {"header": "stripe-signature", "parsePrefix": "v1="},
        "timestamp": {"header": "stripe-signature", "parsePrefix": "t="},
    },
    "template": "[timestamp].[payload]",
    "toleranceSeconds": 300,
}

# A sender's delivery: who it is about, and the delivery's own id (stable across retries).
STRUCTURED_MAPPING = {
    "type": "structured",
    "structured": {
        "targetUserIds": "$.customer.id",
        "flowInvocationId": "$.delivery.id",
        "variables": {"firstName": "$.customer.first_name"},
    },
}


def delivery(delivery_id: str = "dlv-1", user_id: str = "tester-1", first_name: str = "Lars") -> dict[str, Any]:
    return {"delivery": {"id": delivery_id}, "customer": {"id": user_id, "first_name": first_name}, "total": 12.5}


def stripe_header(body: bytes, timestamp: int, secret: str = STRIPE_SECRET) -> str:
    """The Stripe-Signature header a sender computes: t=<timestamp>,v1=<hex HMAC-SHA256 of 't.body'>."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def as_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


@pytest.fixture
def webhook_trigger(flow: Flow) -> Callable[..., Trigger]:  # noqa: F811
    """`webhook_trigger(mapping=..., sample=..., shape_check=..., security=..., mode="test", on_flow=...)`."""

    def make(
        mapping: Any = None,
        sample: Any = None,
        shape_check: Any = None,
        security: Any = None,
        mode: str = "test",
        on_flow: Flow | None = None,
    ) -> Trigger:
        trigger = services.webhook_trigger_create(
            flow=on_flow or flow, mapping=mapping, sample=sample, shape_check=shape_check, security=security
        )
        if mode != "test":
            services.trigger_mode_set(trigger=trigger, mode=mode)
        trigger.refresh_from_db()
        return trigger

    return make


@pytest.fixture
def post_hook(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """`post_hook(trigger_or_token, body, method="post", remote_addr="203.0.113.7", **extra)`.

    `body` is sent as raw bytes (dicts and lists as JSON); `extra` are WSGI environ keys
    such as `HTTP_STRIPE_SIGNATURE` or `HTTP_X_FORWARDED_FOR`.
    """

    def post(
        target: Trigger | str,
        body: Any = b"{}",
        method: str = "post",
        remote_addr: str = "203.0.113.7",
        content_type: str = "application/json",
        query: str = "",
        **extra: Any,
    ) -> Any:
        token = target.token if isinstance(target, Trigger) else target
        url = f"/hooks/{token}" + (f"?{query}" if query else "")
        send = getattr(Client(), method)
        with django_capture_on_commit_callbacks(execute=True):
            return send(url, data=as_bytes(body), content_type=content_type, REMOTE_ADDR=remote_addr, **extra)

    return post
