"""Workbench pages for flows, under /e/<env>/flows/."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("", views.flow_list, name="flow_list"),
    path("new", views.flow_new, name="flow_new"),
    path("feed/", views.flow_feed, name="flow_feed"),
    path("settings/", views.flow_settings, name="flow_settings"),
    path("settings/analytics", views.flow_analytics_setting, name="flow_analytics_setting"),
    path("settings/test-data/delete", views.flow_test_data_delete, name="flow_test_data_delete"),
    path("invocations/<int:invocation_id>/", views.flow_invocation_detail, name="flow_invocation_detail"),
    path("analytics/", views.environment_analytics, name="environment_analytics"),
    path("analytics.csv", views.environment_analytics_csv, name="environment_analytics_csv"),
    path("activity-fragment", views.environment_activity, name="environment_activity"),
    # A customer's runs and cards, and a test send to them: the customer profile loads these.
    path("customers/<path:user_id>/activity", views.customer_flow_activity, name="customer_flow_activity"),
    path("customers/<path:user_id>/test", views.customer_send_test, name="customer_send_test"),
    path("<int:flow_id>/", views.flow_detail, name="flow_detail"),
    path("<int:flow_id>/preview", views.flow_preview, name="flow_preview"),
    path("<int:flow_id>/publish", views.flow_publish, name="flow_publish"),
    path("<int:flow_id>/archive", views.flow_archive, name="flow_archive"),
    path("<int:flow_id>/delete", views.flow_delete, name="flow_delete"),
    path("<int:flow_id>/test", views.flow_send_test, name="flow_send_test"),
    path("<int:flow_id>/testing/", views.flow_testing, name="flow_testing"),
    path("<int:flow_id>/activity/", views.flow_activity, name="flow_activity"),
    path("<int:flow_id>/invocations/", views.flow_invocations, name="flow_invocations"),
    path("<int:flow_id>/versions/", views.flow_versions, name="flow_versions"),
    path("<int:flow_id>/versions/<int:number>/", views.flow_version_detail, name="flow_version_detail"),
    path("<int:flow_id>/versions/<int:number>/restore", views.flow_version_restore, name="flow_version_restore"),
    path("<int:flow_id>/analytics/", views.flow_analytics, name="flow_analytics"),
    path("<int:flow_id>/analytics.csv", views.flow_analytics_csv, name="flow_analytics_csv"),
]
