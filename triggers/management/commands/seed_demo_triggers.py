"""Seed the demo's event- and segment-triggered flows for `make run` (idempotent): called by
`manage.py seed_demo` after the segments, before the demo's events, so those events start them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from flows.models import Flow
from flows.services import flow_create, flow_publish
from segments.models import Segment
from triggers.event_triggers import event_trigger_create
from triggers.models import TriggerMode
from triggers.segment_triggers import segment_trigger_create
from workbench.models import Environment


class Command(BaseCommand):
    help = "Create the demo's flows started by an event and by a segment (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--env", default="demo")

    def handle(self, *args: Any, env: str = "demo", **options: Any) -> None:
        environment = Environment.objects.get(slug=env)
        if not Flow.objects.filter(environment=environment, name="Thanks for your purchase").exists():
            self._purchase_flow(environment)
        vip = Segment.objects.filter(environment=environment, name="VIP customers").first()
        if vip is not None and not Flow.objects.filter(environment=environment, name="VIP welcome").exists():
            self._vip_flow(environment, vip)

    def _purchase_flow(self, environment: Environment) -> None:
        """Live on every `purchase` event: the event's properties are the card's variables."""
        flow = flow_create(
            environment=environment,
            name="Thanks for your purchase",
            variables=[{"name": "product", "default": "your order", "required": False}],
            steps=[
                {
                    "type": "send_card",
                    "card": {
                        "title": "Thanks for buying {{product}}!",
                        "body": "Your receipt is in your inbox. Rate your purchase in one tap.",
                        "actions": [{"label": "Rate it", "url": "https://example.com/rate"}],
                    },
                }
            ],
        )
        flow_publish(flow=flow)
        event_trigger_create(flow=flow, name="Purchases from the app", event_name="purchase", mode=TriggerMode.LIVE)

    def _vip_flow(self, environment: Environment, vip: Segment) -> None:
        """Starts when a customer enters the VIP segment; in test mode, so it reaches test users only."""
        flow = flow_create(
            environment=environment,
            name="VIP welcome",
            steps=[
                {
                    "type": "send_card",
                    "card": {
                        "title": "Welcome to VIP",
                        "body": "Free express shipping and early access are now yours.",
                        "actions": [{"label": "See your perks", "url": "https://example.com/vip"}],
                    },
                }
            ],
        )
        segment_trigger_create(flow=flow, name="Entered VIP", segment_id=vip.pk, on="entered", reentry="once")
