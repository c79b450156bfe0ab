from __future__ import annotations

from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        # Customer data changed or events were recorded: mark the customers for re-evaluation,
        # in the announcer's transaction (customers must not import segments).
        from customers.hooks import customers_changed, events_recorded

        from . import services

        customers_changed.subscribe(services.customers_mark)
        events_recorded.subscribe(services.events_mark)
