"""Seed a demo workspace for `make run`: idempotent, safe to run on every start.

Project-level tooling, like the root URLconf: it seeds every app, so it imports them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from customers.models import Event, TestUser
from customers.services import customers_upsert, events_record, member_test_user_set
from flows.models import Flow
from flows.selectors import flow_for_start
from flows.services import flow_create, flow_publish, invocations_accept, start_requests_check
from workbench.models import Environment, Role
from workbench.services import environment_create, membership_set

DEMO_PASSWORD = "workbench-demo"
DEMO_CUSTOMERS: list[dict[str, Any]] = [
    {
        "user_id": "76DHG129387",
        "name": "Lars Nilsen",
        "email": "lars@example.com",
        "country": "NO",
        "city": "Oslo",
        "tags": ["vip"],
        "custom_fields": {"plan": "premium", "balance": 1250.5},
    },
    {
        "user_id": "A9F2K0001",
        "name": "Aroha Ngata",
        "email": "aroha@example.com",
        "country": "NZ",
        "city": "Wellington",
        "tags": ["beta"],
        "custom_fields": {"plan": "basic"},
    },
    {
        "user_id": "C0FFEE42",
        "name": "Maya Chen",
        "email": "maya@example.com",
        "country": "US",
        "city": "Austin",
        "tags": [],
        "custom_fields": {"plan": "premium", "onboarded": True},
    },
    {"user_id": "demo-tester", "name": "Demo tester", "email": "tester@example.com", "tags": ["staff"]},
]


class Command(BaseCommand):
    help = "Create the demo environments, users and customers (idempotent) and print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the Workbench will be served")

    def handle(self, *args: Any, quiet: bool = False, url: str = "http://127.0.0.1:8000", **options: Any) -> None:
        demo = Environment.objects.filter(slug="demo").first() or environment_create(slug="demo", name="Acme demo")
        staging = Environment.objects.filter(slug="staging").first() or environment_create(
            slug="staging", name="Acme staging"
        )
        owner = self._user("owner", is_staff=True)
        owner_membership = membership_set(environment=demo, user=owner, role=Role.OWNER)
        membership_set(environment=staging, user=owner, role=Role.OWNER)
        membership_set(environment=demo, user=self._user("editor"), role=Role.EDITOR)
        membership_set(environment=demo, user=self._user("viewer"), role=Role.VIEWER)

        now = timezone.now()
        profiles: list[Mapping[str, Any]] = [{**profile, "last_seen_at": now} for profile in DEMO_CUSTOMERS]
        customers_upsert(environment=demo, profiles=profiles)
        if not TestUser.objects.filter(membership=owner_membership).exists():
            member_test_user_set(membership=owner_membership, user_id="demo-tester")
        if not Flow.objects.filter(environment=demo).exists():
            self._demo_flow(demo)
        # Segments and the flows their triggers start, then the events that start them.
        call_command("seed_demo_segments", env=demo.slug)
        call_command("seed_demo_triggers", env=demo.slug)
        if not Event.objects.filter(environment=demo).exists():
            self._demo_events(demo)
        if not quiet:
            self.stdout.write(
                f"\nDemo ready. Log in at {url.rstrip('/')}/login/ as\n"
                f"  owner / {DEMO_PASSWORD}   (owner of 'Acme demo' and 'Acme staging'; Django admin at /admin/)\n"
                f"  editor / {DEMO_PASSWORD}  viewer / {DEMO_PASSWORD}\n"
            )

    def _demo_flow(self, environment: Environment) -> None:
        """A published welcome flow, started once live and once as a test, so pages have content."""
        flow = flow_create(
            environment=environment,
            name="Welcome journey",
            variables=[
                {"name": "firstName", "default": "there", "required": False},
                {"name": "plan", "default": "basic", "required": False},
            ],
            steps=[
                {
                    "type": "send_card",
                    "card": {
                        "title": "Welcome, {{firstName}}!",
                        "body": "Your {{plan}} plan is ready. Take the two-minute tour to get the most out of it.",
                        "actions": [{"label": "Start the tour", "url": "https://example.com/tour"}],
                    },
                },
                {"type": "wait", "seconds": 60},
                {
                    "type": "send_card",
                    "card": {
                        "title": "Set up payments",
                        "body": "Connect your bank in a few taps, {{firstName}}.",
                        "actions": [{"label": "Connect", "url": "https://example.com/connect"}],
                    },
                },
            ],
        )
        flow_publish(flow=flow)
        starts = {
            "live": {
                "targetUserIds": ["76DHG129387", "C0FFEE42"],
                "variables": {"firstName": "Lars", "plan": "premium"},
            },
            "test": {"targetUserIds": ["demo-tester"], "variables": {"firstName": "Tester"}},
        }
        for mode, body in starts.items():
            invocations_accept(
                flow=flow_for_start(flow=flow), mode=mode, starts=start_requests_check(body), source="workbench"
            )

    def _demo_events(self, environment: Environment) -> None:
        """A few days of app events: Lars buys twice (a repeat buyer), Maya once, Aroha browses."""
        now = timezone.now()
        events = [
            ("76DHG129387", "purchase", {"product": "Trail shoes", "amount": 129}, 12),
            ("76DHG129387", "purchase", {"product": "Rain jacket", "amount": 199}, 2),
            ("C0FFEE42", "purchase", {"product": "Yoga mat", "amount": 35}, 5),
            ("A9F2K0001", "app_opened", {"platform": "ios"}, 1),
            ("C0FFEE42", "app_opened", {"platform": "web"}, 0),
        ]
        events_record(
            environment=environment,
            events=[
                {
                    "userId": user_id,
                    "name": name,
                    "properties": properties,
                    "timestamp": (now - timedelta(days=days_ago)).isoformat(),
                    "messageId": f"demo-{index}",
                }
                for index, (user_id, name, properties, days_ago) in enumerate(events)
            ],
        )

    def _user(self, username: str, is_staff: bool = False) -> Any:
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model.objects.create_user(username=username, password=DEMO_PASSWORD)
            user.is_staff = user.is_superuser = is_staff
            user.save()
        return user
