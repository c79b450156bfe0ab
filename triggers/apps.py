from __future__ import annotations

from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"

    def ready(self) -> None:
        from customers import hooks as customer_hooks
        from flows import hooks
        from segments import hooks as segment_hooks

        from . import subscribers

        # Every flow is born with its api trigger, in the same transaction.
        hooks.flow_created.subscribe(subscribers.give_flow_its_api_trigger)
        # Segment and event triggers start their flows in the transaction that recorded the
        # change; publishing reports (and may start) the members of `entered` triggers' segments.
        customer_hooks.segment_transitions.subscribe(subscribers.start_segment_triggers)
        customer_hooks.events_recorded.subscribe(subscribers.start_event_triggers)
        hooks.analytics_recorded.subscribe(subscribers.start_analytics_event_triggers)
        # A webhook start's `webhook-received` event is written when its invocation is fanned out.
        hooks.invocations_taken_up.subscribe(subscribers.record_webhooks_received)
        hooks.flow_published.subscribe(subscribers.report_existing_segment_members)
        hooks.publish_previewed.subscribe(subscribers.preview_existing_segment_members)
        # A segment that a trigger starts flows from cannot be deleted from under it.
        segment_hooks.segment_deleting.subscribe(subscribers.name_triggers_using_segment)
