"""Explicit, documented hooks: how a lower app tells a higher one that something happened.

The direction of imports is the architecture (triggers → flows → customers → workbench), so a
lower app never imports a higher one. Instead it declares a `Hook` and announces on it; the
higher app subscribes in its `AppConfig.ready`. Subscribers run synchronously, inside the
announcer's transaction, in the order they subscribed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Subscriber = Callable[..., None]


class Hook:
    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)
        return subscriber

    def announce(self, **kwargs: Any) -> None:
        for subscriber in self._subscribers:
            subscriber(**kwargs)

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._subscribers)} subscriber(s)>"
