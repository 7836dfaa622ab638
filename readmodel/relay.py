"""After-commit relay: change-feed rows → Redis pub/sub, safe with any number of API processes.

Every API process runs one ``Relay``. ``append_changes`` sends a PostgreSQL ``NOTIFY`` in
the committing transaction that carries the rows themselves; PostgreSQL delivers
notifications in commit order, which is sequence order (see ``readmodel.changefeed``). So
while its ``LISTEN`` connection stays up, the relay publishes straight from the
notifications, without reading the table. It reads the committed rows after the last
*published* sequence from PostgreSQL instead whenever the notifications may be incomplete:
at start, after the ``LISTEN`` connection was re-established, when a transaction's rows were
too big for a notification, after a Redis error, and every ``safety_poll_s`` as a safety net.

Either way the rows go to a Lua script that, atomically inside Redis, publishes only the
rows above the shared cursor (``<prefix>live:published``) and advances it. So with many
relays racing each row is published once, in sequence order; a relay that crashed between
reading and publishing simply leaves the cursor behind and the next read (of any process)
catches up from it.

Redis pub/sub itself is at-most-once, so subscribers never trust it alone: the hub drops
duplicates by sequence and fills any gap from PostgreSQL (see ``readmodel.hub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel import changefeed
from readmodel.changefeed import CHANGE_FEED_CHANNEL

log = logging.getLogger("guestgraph.relay")

RELAY_BATCH = 500
RECONNECT_DELAY_S = 1.0
STOP_GRACE_S = 2.0

# KEYS[1] = cursor key; ARGV[1] = channel; then (seq, message) pairs in ascending seq.
PUBLISH_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local sent = 0
for i = 2, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > cur then
    redis.call('PUBLISH', ARGV[1], ARGV[i + 1])
    cur = seq
    sent = sent + 1
  end
end
redis.call('SET', KEYS[1], string.format('%d', cur))
return sent
"""


def channel_name(prefix: str) -> str:
    """The Redis pub/sub channel change-feed rows are published on."""
    return f"{prefix}live:changes"


def cursor_key(prefix: str) -> str:
    """The Redis key holding the highest sequence published so far."""
    return f"{prefix}live:published"


def encode_row(row: changefeed.FeedRow) -> bytes:
    return orjson.dumps(
        {
            "seq": row.seq,
            "topic": row.topic,
            "key": row.key,
            "customer_id": row.customer_id,
            "order_id": row.order_id,
            "store_id": row.store_id,
            "payload": row.payload,
        }
    )


def decode_row(data: bytes | str) -> changefeed.FeedRow:
    """Parse a published message; raises ValueError/KeyError/TypeError on a malformed one."""
    raw = orjson.loads(data)
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    return changefeed.row_from_json(raw)


def _asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class ChangeNotifier:
    """One ``LISTEN guestgraph_change_feed`` connection per process, shared by its waiters.

    ``waiter()`` returns an event set on every notification; ``latest`` is the highest
    sequence announced. When the connection drops it reconnects in the background;
    meanwhile waiters still wake on their own poll timeouts, so nothing depends on it.

    ``on_rows(callback)``: ``callback(rows)`` runs for every notification with the rows it
    carries, in commit order, or with ``None`` when it has none to offer (the notification
    only named a sequence, or the connection was (re)established and notifications may
    have been missed): then the callback's owner must read the feed itself.
    """

    def __init__(self, database_url: str) -> None:
        self._dsn = _asyncpg_dsn(database_url)
        self._waiters: list[asyncio.Event] = []
        self._row_listeners: list[Callable[[list[changefeed.FeedRow] | None], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        self.latest = 0

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.append(event)
        return event

    def on_rows(self, callback: Callable[[list[changefeed.FeedRow] | None], None]) -> None:
        self._row_listeners.append(callback)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_listening(), name="gg-change-notifier")

    async def stop(self) -> None:
        self._stopping = True
        await stop_task(self._task, self._stop)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
            self._conn = None

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        rows: list[changefeed.FeedRow] | None = None
        try:
            rows, newest = changefeed.rows_from_notification(payload)
            self.latest = max(self.latest, newest)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed change-feed notification")
        for listener in self._row_listeners:
            listener(rows)
        self._wake_all()

    def _wake_all(self) -> None:
        for event in self._waiters:
            event.set()

    async def _keep_listening(self) -> None:
        while not self._stopping:
            if not self.connected:
                try:
                    conn = await asyncpg.connect(self._dsn, timeout=10)
                    try:
                        await conn.add_listener(CHANGE_FEED_CHANNEL, self._on_notify)
                    except BaseException:  # cancelled by stop(): do not strand the connection
                        conn.terminate()
                        raise
                    self._conn = conn
                    # anything committed while we were not listening: let waiters look now
                    for listener in self._row_listeners:
                        listener(None)
                    self._wake_all()
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    log.warning("change-feed LISTEN unavailable: %s", type(exc).__name__)
            await wait_for(self._stop, RECONNECT_DELAY_S)


async def wait_for(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass, then clear it."""
    with contextlib.suppress(TimeoutError):
        # asyncio.wait_for, not asyncio.timeout: on 3.11 a cancel that lands as the timeout
        # fires can be swallowed by asyncio.timeout, leaving a task that never stops
        await asyncio.wait_for(event.wait(), seconds)
    event.clear()


async def stop_task(task: asyncio.Task[None] | None, wake: asyncio.Event | None = None) -> None:
    """End a loop that checks a ``stopping`` flag (set by the caller): wake it and let it
    finish its current step, so no database connection is abandoned mid-query; cancel it
    only if it does not end within a grace period."""
    if task is None or task.done():
        return
    if wake is not None:
        wake.set()
    await asyncio.wait({task}, timeout=STOP_GRACE_S)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=5)


class Relay:
    """Publishes committed change-feed rows to Redis; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        redis: aioredis.Redis,
        *,
        prefix: str,
        notifier: ChangeNotifier,
        safety_poll_s: float = 1.0,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._channel = channel_name(prefix)
        self._cursor_key = cursor_key(prefix)
        self._safety_poll_s = safety_poll_s
        self._script: Callable[..., Any] = redis.register_script(PUBLISH_SCRIPT)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # rows the notifications carried, not yet published (commit order); bounded: past
        # RELAY_BATCH, or when a notification carries none, read the feed instead
        self._pending: list[changefeed.FeedRow] = []
        self._read_the_feed = True
        self._wake = asyncio.Event()
        notifier.on_rows(self._on_rows)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gg-relay")

    async def stop(self) -> None:
        self._stopping = True
        await stop_task(self._task, self._wake)

    def _on_rows(self, rows: list[changefeed.FeedRow] | None) -> None:
        if rows is None or len(self._pending) + len(rows) > RELAY_BATCH:
            self._read_the_feed = True
            self._pending.clear()
        elif not self._read_the_feed:
            self._pending += rows
        self._wake.set()

    async def published_seq(self) -> int | None:
        value = await self._redis.get(self._cursor_key)
        return None if value is None else int(value)

    async def publish_pending(self) -> int:
        """Publish every committed row above the shared cursor; return how many *we* sent."""
        cursor = await self.published_seq()
        if cursor is None:
            # a fresh Redis: start at the feed's end (hubs fill anything older from PostgreSQL)
            async with self._engine.connect() as conn:
                start = await changefeed.last_seq(conn)
            await self._redis.set(self._cursor_key, start, nx=True)
            cursor = await self.published_seq() or 0
        sent = 0
        while True:
            async with self._engine.connect() as conn:
                rows = await changefeed.rows_after(conn, cursor, limit=RELAY_BATCH)
            if not rows:
                return sent
            sent += await self._publish(rows)
            cursor = rows[-1].seq
            if len(rows) < RELAY_BATCH:
                return sent

    async def _publish(self, rows: list[changefeed.FeedRow]) -> int:
        """Publish ``rows`` (ascending seq) above the shared cursor; return how many we sent."""
        args: list[Any] = [self._channel]
        for row in rows:
            args += [row.seq, encode_row(row)]
        return int(await self._script(keys=[self._cursor_key], args=args))

    async def _step(self) -> None:
        """Publish what the notifications carried, or read the feed when they cannot be
        trusted to be complete (start, reconnect, a row too big to carry, the safety poll)."""
        if self._read_the_feed:
            # everything notified so far has committed: the read below sees it
            self._read_the_feed = False
            self._pending.clear()
            await self.publish_pending()
            return
        rows, self._pending = self._pending, []
        if rows:
            await self._publish(rows)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_safety_read = loop.time() + self._safety_poll_s
        while not self._stopping:
            if loop.time() >= next_safety_read:
                self._read_the_feed = True
            try:
                if self._read_the_feed:
                    next_safety_read = loop.time() + self._safety_poll_s
                await self._step()
            except (RedisError, OSError, SQLAlchemyError) as exc:
                log.warning("relay: cannot publish yet (%s); will retry", type(exc).__name__)
                self._read_the_feed = True
                await wait_for(self._wake, RECONNECT_DELAY_S)
                if self._stopping:
                    return
                continue
            if not self._pending and not self._read_the_feed:
                await wait_for(self._wake, max(0.0, next_safety_read - loop.time()))
