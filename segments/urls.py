from __future__ import annotations

from django.urls import URLPattern, path  # noqa: F401

# The Workbench pages of segments, under /e/<env>/segments/.
urlpatterns: list[URLPattern] = []
