"""Workbench pages for triggers, under /e/<env>/triggers/."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
