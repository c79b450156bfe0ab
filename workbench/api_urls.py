"""Workbench's API, under /api/v1/<env>/: the environment's API credentials."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import apis

urlpatterns: list[URLPattern] = [
    path("credentials", apis.CredentialListApi.as_view(), name="api_credentials"),
    path("credentials/<str:client_id>", apis.CredentialDetailApi.as_view(), name="api_credential"),
]
