"""The change feed's notifications and the relay that publishes them to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel import changefeed
from readmodel.changefeed import Change, FeedRow
from readmodel.database import create_engine
from readmodel.relay import ChangeNotifier, Relay, channel_name, decode_row
from tests.graphql_support import count_statements


async def append(engine: AsyncEngine, *changes: Change) -> list[int]:
    async with engine.begin() as conn:
        return await changefeed.append_changes(conn, list(changes))


def change(n: int, *, size: int = 10) -> Change:
    return Change(
        changefeed.ORDER_STATUS_CHANGED,
        f"order:{n}",
        {"n": n, "note": "x" * size},
        customer_id=7,
        order_id=n,
        store_id=3,
    )


@pytest.fixture
async def notifier(database_url: str, engine: AsyncEngine) -> AsyncIterator[ChangeNotifier]:
    notifier = ChangeNotifier(database_url)
    await notifier.start()
    for _ in range(100):
        if notifier.connected:
            break
        await asyncio.sleep(0.05)
    yield notifier
    await notifier.stop()


async def collect(
    notifier: ChangeNotifier, count: int
) -> tuple[list[list[FeedRow] | None], asyncio.Event]:
    heard: list[list[FeedRow] | None] = []
    done = asyncio.Event()

    def on_rows(rows: list[FeedRow] | None) -> None:
        heard.append(rows)
        if len(heard) >= count:
            done.set()

    notifier.on_rows(on_rows)
    return heard, done


async def test_a_notification_carries_the_committed_rows_in_commit_order(
    engine: AsyncEngine, notifier: ChangeNotifier
) -> None:
    heard, done = await collect(notifier, 2)
    first = await append(engine, change(1), change(2))
    second = await append(engine, change(3))
    await asyncio.wait_for(done.wait(), 5)
    assert heard[0] is not None and heard[1] is not None
    assert [r.seq for r in heard[0]] == first
    assert [r.seq for r in heard[1]] == second
    assert [(r.order_id, r.payload["n"]) for r in heard[0] + heard[1]] == [(1, 1), (2, 2), (3, 3)]
    async with engine.connect() as conn:
        assert await changefeed.rows_after(conn, 0) == heard[0] + heard[1]
    assert notifier.latest == second[-1]


async def test_rows_too_big_for_a_notification_are_announced_by_their_newest_seq(
    engine: AsyncEngine, notifier: ChangeNotifier
) -> None:
    heard, done = await collect(notifier, 1)
    seqs = await append(engine, *(change(n, size=1000) for n in range(10)))
    await asyncio.wait_for(done.wait(), 5)
    assert heard == [None]
    assert notifier.latest == seqs[-1]


async def test_a_batch_too_large_to_notify_is_never_one_that_would_have_fitted(
    engine: AsyncEngine, database_url: str
) -> None:
    """Past MAX_NOTIFY_BYTES / MIN_ROW_JSON_BYTES rows the append does not build the rows'
    JSON at all (an import's batch would be a megabyte, thrown away). Sound only if no row
    is ever shorter than MIN_ROW_JSON_BYTES: the smallest row the feed can hold (shortest
    topic, one-character key, no ids, empty payload), as the notification writes it."""
    shortest = min(
        (v for k, v in vars(changefeed).items() if k.isupper() and isinstance(v, str)),
        key=len,
    )
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(make_url(database_url).render_as_string(False))
    try:
        await listener.add_listener(
            changefeed.CHANGE_FEED_CHANNEL, lambda *args: heard.put_nowait(args[-1])
        )
        await append(engine, Change(shortest, "k", {}))
        body = await asyncio.wait_for(heard.get(), 5)
    finally:
        await listener.close()
    rows = orjson.loads(body)
    assert len(rows) == 1 and rows[0]["topic"] == shortest
    assert len(body.encode()) - len("[]") >= changefeed.MIN_ROW_JSON_BYTES


async def test_a_rolled_back_append_notifies_nobody(
    engine: AsyncEngine, notifier: ChangeNotifier
) -> None:
    heard, done = await collect(notifier, 1)
    async with engine.connect() as conn, conn.begin() as tx:
        await changefeed.append_changes(conn, [change(1)])
        await tx.rollback()
    kept = await append(engine, change(2))
    await asyncio.wait_for(done.wait(), 5)
    assert heard[0] is not None and [r.seq for r in heard[0]] == kept


async def published(pubsub: aioredis.client.PubSub, count: int) -> list[FeedRow]:
    rows: list[FeedRow] = []
    async with asyncio.timeout(10):
        while len(rows) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                rows.append(decode_row(message["data"]))
    return rows


async def test_the_relay_publishes_from_notifications_and_reads_the_feed_only_when_needed(
    database_url: str,
    engine: AsyncEngine,
    notifier: ChangeNotifier,
    redis: aioredis.Redis,
    redis_prefix: str,
) -> None:
    relay_engine = create_engine(database_url, pool_size=2)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel_name(redis_prefix))
    relay = Relay(relay_engine, redis, prefix=redis_prefix, notifier=notifier, safety_poll_s=60)
    try:
        await relay.start()
        for _ in range(100):  # the start-up read of the feed sets the shared cursor
            if await relay.published_seq() is not None:
                break
            await asyncio.sleep(0.05)
        with count_statements(relay_engine) as reads:
            small = [s for n in range(5) for s in await append(engine, change(n))]
            assert [r.seq for r in await published(pubsub, 5)] == small
        assert reads.statements == []  # straight from the notifications

        with count_statements(relay_engine) as reads:
            big = await append(engine, *(change(n, size=1000) for n in range(10)))
            after = await append(engine, change(99))
            rows = await published(pubsub, 11)
        assert [r.seq for r in rows] == big + after  # once each, in order
        assert any("change_feed" in s for s in reads.statements)  # too big: read the feed
        assert await relay.published_seq() == after[-1]
    finally:
        await relay.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await relay_engine.dispose()


async def test_relays_in_two_processes_publish_each_row_once(
    database_url: str,
    engine: AsyncEngine,
    notifier: ChangeNotifier,
    redis: aioredis.Redis,
    redis_prefix: str,
) -> None:
    other = ChangeNotifier(database_url)
    await other.start()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel_name(redis_prefix))
    relays = [
        Relay(engine, redis, prefix=redis_prefix, notifier=n, safety_poll_s=0.2)
        for n in (notifier, other)
    ]
    try:
        for relay in relays:
            await relay.start()
        for _ in range(100):
            if other.connected and await relays[0].published_seq() is not None:
                break
            await asyncio.sleep(0.05)
        seqs = [s for n in range(30) for s in await append(engine, change(n))]
        rows = await published(pubsub, 30)
        assert [r.seq for r in rows] == seqs
        await asyncio.sleep(0.5)  # a few safety reads later: still nothing twice
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    finally:
        for relay in relays:
            await relay.stop()
        await other.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_rows_committed_while_the_listen_connection_was_down_are_still_published(
    database_url: str,
    engine: AsyncEngine,
    notifier: ChangeNotifier,
    redis: aioredis.Redis,
    redis_prefix: str,
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel_name(redis_prefix))
    relay = Relay(engine, redis, prefix=redis_prefix, notifier=notifier, safety_poll_s=60)
    try:
        await relay.start()
        for _ in range(100):
            if await relay.published_seq() is not None:
                break
            await asyncio.sleep(0.05)
        before = await append(engine, change(1))
        assert [r.seq for r in await published(pubsub, 1)] == before
        assert notifier._conn is not None
        notifier._conn.terminate()  # the LISTEN connection drops: notifications are missed
        missed = await append(engine, change(2))
        # on reconnecting, the relay reads the feed (the safety poll is a minute away)
        assert [r.seq for r in await published(pubsub, 1)] == missed
        after = await append(engine, change(3))
        assert [r.seq for r in await published(pubsub, 1)] == after
    finally:
        await relay.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
