"""Workbench pages for segments, under /e/<env>/segments/."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("", views.segment_list, name="segment_list"),
    path("new", views.segment_new, name="segment_new"),
    path("preview", views.segment_rules_preview, name="segment_rules_preview"),
    path("<int:segment_id>/", views.segment_detail, name="segment_detail"),
    path("<int:segment_id>/edit", views.segment_edit, name="segment_edit"),
    path("<int:segment_id>/delete", views.segment_delete, name="segment_delete"),
    # Mounted under segments/ (segments owns it); the customer page loads it with htmx.
    path("customers/<path:user_id>/segments", views.customer_segments, name="customer_segments"),
]
