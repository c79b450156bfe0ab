"""Customers' API, under /api/v1/<env>/: customer profiles, events and test users."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import apis

urlpatterns: list[URLPattern] = [
    path("customers", apis.CustomerBatchApi.as_view(), name="api_customers"),
    path("customers/<str:user_id>", apis.CustomerDetailApi.as_view(), name="api_customer"),
    path("events", apis.EventsApi.as_view(), name="api_events"),
    path("test-users", apis.TestUserListApi.as_view(), name="api_test_users"),
    path("test-users/<int:test_user_id>", apis.TestUserDetailApi.as_view(), name="api_test_user"),
]
