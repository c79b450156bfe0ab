"""Webhook deliveries, under /hooks/: a sender posts to /hooks/<token> (triggers.receiver)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import receiver

urlpatterns: list[URLPattern] = [
    path("<str:token>", receiver.webhook_endpoint, name="webhook"),
]
