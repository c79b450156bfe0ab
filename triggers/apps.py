from __future__ import annotations

from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"

    def ready(self) -> None:
        from flows import hooks

        from . import subscribers

        # Every flow is born with its api trigger, in the same transaction.
        hooks.flow_created.subscribe(subscribers.give_flow_its_api_trigger)
