"""Template filters of the segments pages."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils.timesince import timesince
from django.utils.timezone import now

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    """ "just now", "3 minutes ago", "2 days ago"; "" for never."""
    if moment is None:
        return ""
    if now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"
