"""The flow page's triggers tab, under /e/<env>/flows/<flow_id>/triggers/ (included by the root
URLconf before the flows' own pages)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("", views.flow_triggers, name="flow_triggers"),
    path("live-summary", views.flow_triggers_live_summary, name="flow_triggers_live_summary"),
    path("new/webhook", views.flow_trigger_new_webhook, name="flow_trigger_new_webhook"),
    path("new/segment", views.flow_trigger_new_segment, name="flow_trigger_new_segment"),
    path("new/event", views.flow_trigger_new_event, name="flow_trigger_new_event"),
    path("new/marketo", views.flow_trigger_new_marketo, name="flow_trigger_new_marketo"),
    path("new/sfmc", views.flow_trigger_new_sfmc, name="flow_trigger_new_sfmc"),
    # Manual starts of this flow (SPEC section 6).
    path("csv/", views.flow_csv_new, name="flow_csv_new"),
    path("test-sender", views.flow_test_sender, name="flow_test_sender"),
]
