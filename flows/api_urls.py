"""Flows' API, under /api/v1/<env>/: flows, their invocations, and each user's cards."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import apis

urlpatterns: list[URLPattern] = [
    path("users/<str:user_id>/cards", apis.UserCardsApi.as_view(), name="api_user_cards"),
    path("invocations/<str:flow_invocation_id>", apis.InvocationApi.as_view(), name="api_invocation"),
    path("flows", apis.FlowListApi.as_view(), name="api_flows"),
    path("flows/<int:flow_id>", apis.FlowDetailApi.as_view(), name="api_flow"),
    path("flows/<int:flow_id>/publish", apis.FlowPublishApi.as_view(), name="api_flow_publish"),
    path("flows/<int:flow_id>/archive", apis.FlowArchiveApi.as_view(), name="api_flow_archive"),
    path("analytics-events", apis.AnalyticsEventListApi.as_view(), name="api_analytics_events"),
]
