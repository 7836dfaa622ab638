"""The subscription hub: one per API process, fanning change-feed events out to subscribers.

This module holds the in-process fan-out used when ``GUESTGRAPH_REDIS_URL`` is unset
(single process only). Each subscriber gets a bounded queue: a subscriber that cannot keep
up is cut off (its queue is closed with a reason) instead of growing memory or slowing
the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_QUEUE_SIZE = 1000


class SubscriberTooSlow(Exception):
    """The subscriber's queue filled up; it was disconnected and may resume by cursor."""


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[dict[str, Any] | None]
    overflowed: bool = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self.queue.get()
            if item is None:
                if self.overflowed:
                    raise SubscriberTooSlow()
                return
            yield item


@dataclass
class InProcessHub:
    """Fan-out inside one process. ``publish`` never blocks on a slow subscriber."""

    queue_size: int = DEFAULT_QUEUE_SIZE
    _subscribers: set[Subscription] = field(default_factory=set)

    @property
    def description(self) -> str:
        return "in-process (single process only)"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for sub in list(self._subscribers):
            self._close(sub)

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.Queue(maxsize=self.queue_size + 1))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            if sub.queue.qsize() >= self.queue_size:
                sub.overflowed = True
                self._close(sub)
                continue
            sub.queue.put_nowait(event)

    def _close(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.queue.put_nowait(None)
