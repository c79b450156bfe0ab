"""Seed the demo's segments for `make run` (idempotent): called by `manage.py seed_demo`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from segments.models import Segment
from segments.services import segment_create
from workbench.models import Environment

# Each rule kind a marketer meets first: a tag, a custom field, a profile field and a windowed event.
DEMO_SEGMENTS: dict[str, dict[str, Any]] = {
    "VIP customers": {"match": "all", "conditions": [{"tag": "vip", "op": "has"}]},
    "Premium plan": {
        "match": "all",
        "conditions": [{"field": "customFields.plan", "op": "in", "value": ["premium"]}],
    },
    "Nordics and Oceania": {"match": "all", "conditions": [{"field": "country", "op": "in", "value": ["NO", "NZ"]}]},
    "Repeat buyers (30 days)": {
        "match": "all",
        "conditions": [{"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30}],
    },
}


class Command(BaseCommand):
    help = "Create the demo environment's segments (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--env", default="demo")

    def handle(self, *args: Any, env: str = "demo", **options: Any) -> None:
        environment = Environment.objects.get(slug=env)
        for name, rules in DEMO_SEGMENTS.items():
            if not Segment.objects.filter(environment=environment, name=name).exists():
                segment_create(environment=environment, name=name, rules=rules)
