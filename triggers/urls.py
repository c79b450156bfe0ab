"""Workbench pages for triggers, under /e/<env>/triggers/."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("", views.trigger_panel, name="trigger_panel"),  # the old panel: redirects to the flow's triggers tab
    path("<int:trigger_id>/", views.trigger_detail, name="trigger_detail"),
    path("<int:trigger_id>/preview", views.trigger_preview, name="trigger_preview"),
    path("<int:trigger_id>/mode", views.trigger_mode, name="trigger_mode"),
    path("<int:trigger_id>/name", views.trigger_name, name="trigger_name"),
    path("<int:trigger_id>/reactivate", views.trigger_reactivate, name="trigger_reactivate"),
    path("<int:trigger_id>/held/replay", views.trigger_held_replay, name="trigger_held_replay"),
    path("<int:trigger_id>/held/discard", views.trigger_held_discard, name="trigger_held_discard"),
    path("<int:trigger_id>/delete", views.trigger_delete, name="trigger_delete"),
    path("<int:trigger_id>/sample", views.trigger_sample, name="trigger_sample"),
    path("<int:trigger_id>/capture", views.trigger_capture, name="trigger_capture"),
    path("<int:trigger_id>/capture/status", views.trigger_capture_status, name="trigger_capture_status"),
    path("<int:trigger_id>/send-test", views.trigger_send_test, name="trigger_send_test"),
    path("<int:trigger_id>/security", views.trigger_security, name="trigger_security"),
    path("<int:trigger_id>/requests/", views.request_list, name="trigger_request_list"),
    path("<int:trigger_id>/requests/<int:request_id>/", views.request_detail, name="trigger_request_detail"),
    # The customers dashboard's "Send to N customers" (SPEC section 6).
    path("send/", views.customer_send, name="customer_send"),
    path("send/audience", views.customer_send_audience, name="customer_send_audience"),
    path("send/review", views.customer_send_review, name="customer_send_review"),
    path("send/confirm", views.customer_send_confirm, name="customer_send_confirm"),
    path("send/limit", views.manual_send_limit, name="manual_send_limit"),
    path("sends/<int:send_id>/", views.manual_send_detail, name="manual_send_detail"),
    path("sends/<int:send_id>/cancel", views.manual_send_cancel, name="manual_send_cancel"),
    # CSV bulk sends: the flow's upload page is in flow_urls; a task's pages are here.
    path("csv/", views.csv_task_list, name="csv_task_list"),
    path("csv/<int:task_id>/", views.flow_csv_task, name="flow_csv_task"),
    path("csv/<int:task_id>/confirm", views.flow_csv_task_confirm, name="flow_csv_task_confirm"),
    path("csv/<int:task_id>/cancel", views.flow_csv_task_cancel, name="flow_csv_task_cancel"),
    path("csv/<int:task_id>/errors.csv", views.flow_csv_task_errors, name="flow_csv_task_errors"),
]
