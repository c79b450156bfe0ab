from __future__ import annotations

from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self) -> None:
        # Every change of segment membership becomes a segment-entered/exited analytics event,
        # written in the transaction that changes the ledger.
        from customers.hooks import segment_transitions

        from .segment_events import segment_events_write

        segment_transitions.subscribe(segment_events_write)
