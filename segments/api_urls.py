"""Segments' configuration API (SPEC section 5), under /api/v1/<env>/."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import apis

urlpatterns: list[URLPattern] = [
    path("segments", apis.SegmentListApi.as_view(), name="api_segments"),
    path("segments/preview", apis.SegmentPreviewApi.as_view(), name="api_segment_preview"),
    path("segments/<int:segment_id>", apis.SegmentDetailApi.as_view(), name="api_segment"),
    path("segments/<int:segment_id>/members", apis.SegmentMembersApi.as_view(), name="api_segment_members"),
    path("segments/<int:segment_id>/preview", apis.SegmentDryRunApi.as_view(), name="api_segment_dry_run"),
]
