"""Marketo Self-Service Flow Step endpoints, under /integrations/marketo/<token>/ (SPEC section 7)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import marketo_endpoints as endpoints

urlpatterns: list[URLPattern] = [
    path("<str:token>/openapi.json", endpoints.openapi_json, name="marketo_openapi"),
    path("<str:token>/getServiceDefinition", endpoints.service_definition, name="marketo_service_definition"),
    path("<str:token>/status", endpoints.status, name="marketo_status"),
    path("<str:token>/submitAsyncAction", endpoints.submit_async_action, name="marketo_submit"),
    path("<str:token>/getPicklist", endpoints.get_picklist, name="marketo_picklist"),
    path("<str:token>/serviceIcon", endpoints.service_icon, name="marketo_service_icon"),
]
