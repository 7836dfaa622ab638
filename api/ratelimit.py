"""Rate limits: per client (configurable per client) and per IP for anonymous callers.

A sliding window counter (the ``limits`` library) kept in Redis, so a limit holds across
every API process; in memory when no Redis is configured (one process). If Redis fails,
requests are let through and a warning is logged: a broken limiter must not take the API
down with it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import HTTPConnection

from api.settings import Settings
from domain.viewer import Viewer

log = logging.getLogger("guestgraph.ratelimit")


@functools.lru_cache(maxsize=256)
def parse_limit(text: str) -> RateLimitItem:
    """``"600/minute"`` → a limit. Raises ValueError for a malformed string."""
    item: RateLimitItem = parse(text)
    return item


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


class RateLimiter:
    """Counts hits per key; ``hit`` answers None (go on) or the seconds to wait."""

    def __init__(self, settings: Settings, redis: aioredis.Redis | None) -> None:
        self.settings = settings
        storage: Storage
        if redis is not None:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=f"{settings.redis_prefix}ratelimit",
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, limit: str, *key: str) -> int | None:
        """Count one hit on ``key`` under ``limit``; None if allowed, else Retry-After."""
        item = parse_limit(limit)
        try:
            if await self._limiter.hit(item, *key):
                return None
            stats = await self._limiter.get_window_stats(item, *key)
        except Exception as exc:  # any storage failure: let the request through
            log.warning("rate limiter unavailable: %s", type(exc).__name__)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit_viewer(
        self, viewer: Viewer, connection: HTTPConnection, client_limit: str | None
    ) -> int | None:
        """Per client (or subject) when authenticated, per IP when anonymous."""
        if viewer.is_anonymous:
            return await self.hit(self.settings.rate_limit_anonymous, "ip", client_ip(connection))
        limit = client_limit or self.settings.rate_limit_client
        key = ("client", viewer.client_id) if viewer.client_id else ("subject", viewer.subject)
        return await self.hit(limit, *key)

    async def hit_token_endpoint(self, connection: HTTPConnection) -> int | None:
        """``/oauth/token`` runs a slow KDF: bound it per IP."""
        return await self.hit(
            self.settings.rate_limit_token_endpoint, "token", client_ip(connection)
        )


def rate_limiter_of(connection: HTTPConnection) -> RateLimiter:
    found: Any = connection.app.state.rate_limiter
    assert isinstance(found, RateLimiter)
    return found
