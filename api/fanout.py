"""The live fan-out of one API process: change notifier, relay (with Redis) and hub.

``start_live_fanout`` is called from the app's lifespan; it returns the started hub that
every GraphQL context carries (``hub.stop()`` stops the relay and notifier too). See
docs/live.md for how the pieces fit.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from readmodel.hub import Hub
from readmodel.relay import ChangeNotifier, Relay


async def start_live_fanout(settings: Settings, engine: AsyncEngine, database_url: str) -> Hub:
    notifier = ChangeNotifier(database_url)
    await notifier.start()
    hub = Hub(
        engine=engine,
        notifier=notifier,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        poll_interval_s=settings.live_poll_interval_ms / 1000,
        safety_poll_s=settings.live_safety_poll_ms / 1000,
        queue_size=settings.live_queue_size,
    )
    if settings.redis_url:
        redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        relay = Relay(
            engine,
            redis,
            prefix=settings.redis_prefix,
            notifier=notifier,
            safety_poll_s=settings.live_safety_poll_ms / 1000,
        )
        await relay.start()
        hub.on_stop(relay.stop)
        hub.on_stop(redis.aclose)
    hub.on_stop(notifier.stop)
    await hub.start()
    return hub
