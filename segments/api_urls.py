from __future__ import annotations

from django.urls import URLPattern, path  # noqa: F401

# The configuration API of segments (SPEC section 5), under /api/v1/<env>/.
urlpatterns: list[URLPattern] = []
