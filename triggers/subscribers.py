"""What the triggers app does when lower apps announce something (see workbench/hooks.py)."""

from __future__ import annotations

from flows.models import Flow

from . import services


def give_flow_its_api_trigger(*, flow: Flow) -> None:
    services.api_trigger_ensure(flow=flow)
