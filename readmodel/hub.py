"""The subscription hub: one per API process, fanning change-feed rows out to subscribers.

Where rows come from:

- **Redis configured** (``GUESTGRAPH_REDIS_URL``): one pub/sub subscription per process on
  the channel the relays publish to (``readmodel.relay``). Pub/sub is at-most-once, so the
  hub never trusts it alone: it drops rows it has already delivered (by ``seq``), fills any
  gap in the sequence from PostgreSQL, and re-reads the feed when Redis has been quiet for a
  while. If Redis becomes unreachable it polls the change feed (``live_poll_interval_ms``,
  default 250 ms, woken early by ``NOTIFY``) and goes back to Redis when it answers again:
  it subscribes first and then catches up from PostgreSQL, so nothing falls in between.
- **No Redis**: the process tails the change feed itself (``NOTIFY`` plus polling) and fans
  out in-process. This is meant for one process (the embedded default).

Where rows go: every subscriber owns a bounded queue. Publishing never waits; a subscriber
whose queue is full is cut off (``SubscriberTooSlow``, carrying the last sequence it was
given so it can resume with ``after``) and never slows the others or grows memory.

Rows reach subscribers in sequence order, which is commit order (see ``changefeed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel import changefeed, identity
from readmodel.changefeed import FeedRow
from readmodel.relay import ChangeNotifier, channel_name, decode_row, stop_task, wait_for
from readmodel.tables import change_feed

log = logging.getLogger("guestgraph.hub")

DEFAULT_QUEUE_SIZE = 1000
CATCH_UP_BATCH = 1000
REDIS_RETRY_S = 1.0
QUIET_CHECK_S = 0.2  # how long one wait for a Redis message lasts (bounds stop latency)


class SubscriberTooSlow(Exception):
    """The subscriber's queue filled up; it was disconnected and may resume after ``seq``."""

    def __init__(self, last_seq: int | None) -> None:
        super().__init__(f"subscriber too slow (last delivered seq: {last_seq})")
        self.last_seq = last_seq


class CursorFromTheFuture(Exception):
    """An ``after`` cursor beyond the newest committed change."""

    def __init__(self, after: int, newest: int) -> None:
        super().__init__(f"cursor {after} is ahead of the change feed ({newest})")
        self.after = after
        self.newest = newest


@dataclass(frozen=True)
class Interest:
    """Which rows one subscriber wants: all given conditions must hold (AND).

    ``store_scope`` is the viewer's row scope (``None`` = every store).
    """

    topics: frozenset[str]
    order_id: int | None = None
    customer_id: int | None = None
    store_id: int | None = None
    store_scope: frozenset[int] | None = None

    def matches(self, row: FeedRow) -> bool:
        return (
            row.topic in self.topics
            and (self.order_id is None or row.order_id == self.order_id)
            and (self.customer_id is None or row.customer_id == self.customer_id)
            and (self.store_id is None or row.store_id == self.store_id)
            and (self.store_scope is None or row.store_id in self.store_scope)
        )

    @property
    def index_key(self) -> tuple[str, int]:
        """The most selective key, so publishing looks only at likely subscribers."""
        if self.order_id is not None:
            return ("order", self.order_id)
        if self.customer_id is not None:
            return ("customer", self.customer_id)
        if self.store_id is not None:
            return ("store", self.store_id)
        return ("all", 0)


def _row_keys(row: FeedRow) -> Iterable[tuple[str, int]]:
    yield ("all", 0)
    if row.order_id is not None:
        yield ("order", row.order_id)
    if row.customer_id is not None:
        yield ("customer", row.customer_id)
    if row.store_id is not None:
        yield ("store", row.store_id)


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue. Iterate ``rows()``; it raises SubscriberTooSlow."""

    interest: Interest
    queue: asyncio.Queue[FeedRow | None]
    overflowed: bool = False
    last_seq: int | None = None

    async def rows(self) -> AsyncIterator[FeedRow]:
        while True:
            item = await self.queue.get()
            if item is None:
                if self.overflowed:
                    raise SubscriberTooSlow(self.last_seq)
                return
            self.last_seq = item.seq
            yield item


class Feed(enum.StrEnum):
    """Where the hub currently reads changes from."""

    REDIS = "redis"
    POLLING = "polling"
    IN_PROCESS = "in-process"


class InProcessHub:
    """Fan-out inside one process: bounded per-subscriber queues, fed through ``deliver``.

    ``deliver`` never blocks; a subscriber whose queue is full is closed (SubscriberTooSlow)
    instead of growing memory or slowing the others. On its own (as in-process schema
    executions in tests use it) nothing feeds it; ``Hub`` feeds it from the change feed.
    """

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.delivered_seq = 0
        self._by_key: dict[tuple[str, int], set[Subscription]] = {}
        self._count = 0

    @property
    def description(self) -> str:
        return "in-process (single process only)"

    @property
    def subscriber_count(self) -> int:
        return self._count

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for subs in list(self._by_key.values()):
            for sub in list(subs):
                self._close(sub)

    def subscribe(self, interest: Interest) -> Subscription:
        sub = Subscription(interest, asyncio.Queue(maxsize=self.queue_size + 1))
        self._by_key.setdefault(interest.index_key, set()).add(sub)
        self._count += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._by_key.get(sub.interest.index_key)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self._count -= 1
            if not subs:
                del self._by_key[sub.interest.index_key]

    def _close(self, sub: Subscription) -> None:
        self.unsubscribe(sub)
        sub.queue.put_nowait(None)

    def deliver(self, rows: Sequence[FeedRow]) -> None:
        """Fan rows out in order, skipping any already delivered. Never blocks."""
        for row in rows:
            if row.seq <= self.delivered_seq:
                continue
            self.delivered_seq = row.seq
            for key in _row_keys(row):
                for sub in list(self._by_key.get(key, ())):
                    if not sub.interest.matches(row):
                        continue
                    if sub.queue.qsize() >= self.queue_size:
                        sub.overflowed = True
                        self._close(sub)
                    else:
                        sub.queue.put_nowait(row)


class Hub(InProcessHub):
    """One per API process, fed from Redis or the change feed; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        notifier: ChangeNotifier,
        *,
        redis_url: str | None = None,
        redis_prefix: str = "guestgraph:",
        poll_interval_s: float = 0.25,
        safety_poll_s: float = 1.0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        super().__init__(queue_size)
        self.engine = engine
        self.notifier = notifier
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.poll_interval_s = poll_interval_s
        self.safety_poll_s = safety_poll_s
        self.feed = Feed.IN_PROCESS
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closers: list[Callable[[], Awaitable[object]]] = []
        self._stopping = False

    @property
    def description(self) -> str:
        if self.redis_url is None:
            return "in-process (single process only)"
        return "redis pub/sub, polling PostgreSQL while Redis is unreachable"

    async def start(self) -> None:
        self._wake = self.notifier.waiter()
        self._task = asyncio.create_task(self._run(), name="gg-hub")

    def on_stop(self, closer: Callable[[], Awaitable[object]]) -> None:
        """Run ``closer`` when the hub stops (the relay and notifier that feed it)."""
        self._closers.append(closer)

    async def stop(self) -> None:
        self._stopping = True
        await stop_task(self._task, self._wake)
        await super().stop()
        for closer in self._closers:
            await closer()

    # --- reading the feed -----------------------------------------------------------------

    async def catch_up(self) -> None:
        """Deliver every committed row after the last delivered one, from PostgreSQL."""
        async with self._lock:
            while True:
                async with self.engine.connect() as conn:
                    rows = await changefeed.rows_after(
                        conn, self.delivered_seq, limit=CATCH_UP_BATCH
                    )
                self.deliver(rows)
                if len(rows) < CATCH_UP_BATCH:
                    return

    async def _start_at_the_end(self) -> None:
        """Deliver only what commits from now on (retrying until the database answers)."""
        while not self._stopping:
            try:
                async with self.engine.connect() as conn:
                    self.delivered_seq = await changefeed.last_seq(conn)
                return
            except (SQLAlchemyError, OSError) as exc:
                log.warning("hub: cannot read the change feed yet (%s)", type(exc).__name__)
                assert self._wake is not None
                await wait_for(self._wake, REDIS_RETRY_S)

    async def _run(self) -> None:
        await self._start_at_the_end()
        if self.redis_url is None:
            self.feed = Feed.IN_PROCESS
            await self._poll(until_redis_returns=False)
            return
        while not self._stopping:
            try:
                await self._follow_redis(self.redis_url)
            except (RedisError, OSError) as exc:
                log.warning("hub: Redis unreachable (%s); polling the change feed", exc)
            self.feed = Feed.POLLING
            await self._poll(until_redis_returns=True)
            log.info("hub: Redis is back; following pub/sub again")

    async def _poll(self, *, until_redis_returns: bool) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        next_redis_check = loop.time() + REDIS_RETRY_S
        while not self._stopping:
            await self._catch_up_logged()
            if until_redis_returns and loop.time() >= next_redis_check:
                if await self._redis_answers():
                    return
                next_redis_check = loop.time() + REDIS_RETRY_S
            await wait_for(self._wake, self.poll_interval_s)

    async def _redis_answers(self) -> bool:
        assert self.redis_url is not None
        client = aioredis.from_url(self.redis_url, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def _catch_up_logged(self) -> None:
        try:
            await self.catch_up()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("hub: cannot read the change feed (%s)", type(exc).__name__)

    async def _follow_redis(self, url: str) -> None:
        client = aioredis.from_url(url, socket_connect_timeout=2, health_check_interval=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            # subscribe first, then catch up: anything committed in between arrives either
            # way, and duplicates are dropped by seq
            await pubsub.subscribe(channel_name(self.redis_prefix))
            self.feed = Feed.REDIS
            await self._catch_up_logged()
            loop = asyncio.get_running_loop()
            quiet_since = loop.time()
            while not self._stopping:
                message = await pubsub.get_message(timeout=QUIET_CHECK_S)
                if message is None:
                    if loop.time() - quiet_since >= self.safety_poll_s:
                        await self._catch_up_logged()  # quiet: make sure nothing was missed
                        quiet_since = loop.time()
                    continue
                quiet_since = loop.time()
                await self._on_message(message.get("data"))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _on_message(self, data: object) -> None:
        try:
            if not isinstance(data, bytes | str):
                raise TypeError("not a string")
            row = decode_row(data)
        except (ValueError, KeyError, TypeError):
            log.warning("hub: ignoring a malformed change message")
            await self._catch_up_logged()
            return
        if row.seq <= self.delivered_seq:
            return
        if row.seq == self.delivered_seq + 1:
            self.deliver([row])
        else:
            # a gap: rows were lost on the way (or rolled back); PostgreSQL knows which
            await self._catch_up_logged()


# --- replay ---------------------------------------------------------------------------------


async def surviving_customer(engine: AsyncEngine, customer_id: int) -> int:
    """The customer ``customer_id`` was merged into (itself if not merged or unknown), so a
    subscription by a merged-away id follows the person."""
    async with engine.connect() as conn:
        found = await identity.canonical_customer_id(conn, customer_id)
    return customer_id if found is None else found


async def newest_seq(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await changefeed.last_seq(conn)


async def replay(
    engine: AsyncEngine, interest: Interest, *, after: int, upto: int, batch: int = 500
) -> AsyncIterator[FeedRow]:
    """Committed rows matching ``interest`` with ``after < seq <= upto``, oldest first."""
    c = change_feed.c
    cursor = after
    while True:
        query = (
            select(c.seq, c.topic, c.key, c.customer_id, c.order_id, c.store_id, c.payload)
            .where(c.seq > cursor, c.seq <= upto, c.topic.in_(sorted(interest.topics)))
            .order_by(c.seq)
            .limit(batch)
        )
        if interest.order_id is not None:
            query = query.where(c.order_id == interest.order_id)
        if interest.customer_id is not None:
            query = query.where(c.customer_id == interest.customer_id)
        if interest.store_id is not None:
            query = query.where(c.store_id == interest.store_id)
        if interest.store_scope is not None:
            query = query.where(c.store_id.in_(sorted(interest.store_scope)))
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for r in rows:
            yield FeedRow(
                seq=r.seq,
                topic=r.topic,
                key=r.key,
                customer_id=r.customer_id,
                order_id=r.order_id,
                store_id=r.store_id,
                payload=r.payload,
            )
        if len(rows) < batch:
            return
        cursor = rows[-1].seq
