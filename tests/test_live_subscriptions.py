"""orderStatusChanged and customerActivity over a real websocket against a running server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import WebSocketRoute

from api.settings import Settings
from domain.model import OrderStatus
from readmodel import changefeed
from tests.factories import make_customer, make_order, make_store
from tests.live_support import Watcher, change_status, order_gid, running_server, store_gid

ORDER_STATUS = """
subscription Watch($orderId: ID, $storeId: ID, $customerId: ID, $after: String) {
  orderStatusChanged(orderId: $orderId, storeId: $storeId, customerId: $customerId,
                     after: $after) {
    cursor orderId storeId previousStatus status at
  }
}
"""

ACTIVITY = """
subscription Activity($customerId: ID!, $after: String) {
  customerActivity(customerId: $customerId, after: $after) {
    __typename
    ... on OrderStatusEvent { cursor status }
    ... on LoyaltyChangeEvent { cursor points balance reason }
    ... on InteractionEvent { cursor channel subject }
  }
}
"""


@pytest.fixture
async def server(engine: AsyncEngine, settings: Settings) -> AsyncIterator[str]:
    async with running_server(settings) as url:
        yield url


async def test_status_changes_arrive_in_order_with_cursors(
    engine: AsyncEngine, server: str
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    watcher = Watcher(server, ORDER_STATUS, {"orderId": order_gid(order)})
    await watcher.subscribed.wait()
    flow = [OrderStatus.ACCEPTED, OrderStatus.PREPARING, OrderStatus.READY, OrderStatus.COMPLETED]
    seqs = [await change_status(engine, order, status) for status in flow]
    events = await watcher.wait_for(4)
    await watcher.stop()
    assert [e["status"] for e in events] == [s.value for s in flow]
    assert [e["previousStatus"] for e in events] == ["PLACED", "ACCEPTED", "PREPARING", "READY"]
    assert [e["cursor"] for e in events] == [str(s) for s in seqs]
    assert {e["orderId"] for e in events} == {order_gid(order)}
    assert {e["storeId"] for e in events} == {store_gid(store)}


async def test_a_store_feed_sees_only_its_own_orders(engine: AsyncEngine, server: str) -> None:
    downtown = await make_store(engine, name="Downtown")
    uptown = await make_store(engine, name="Uptown")
    mine = await make_order(engine, store_id=downtown, status=OrderStatus.PLACED)
    theirs = await make_order(engine, store_id=uptown, status=OrderStatus.PLACED)
    watcher = Watcher(server, ORDER_STATUS, {"storeId": store_gid(downtown)})
    await watcher.subscribed.wait()
    await change_status(engine, theirs, OrderStatus.ACCEPTED)
    await change_status(engine, mine, OrderStatus.ACCEPTED)
    await change_status(engine, theirs, OrderStatus.READY)
    await change_status(engine, mine, OrderStatus.READY)
    events = await watcher.wait_for(2)
    await asyncio.sleep(0.3)
    await watcher.stop()
    assert [(e["orderId"], e["status"]) for e in watcher.events] == [
        (order_gid(mine), "ACCEPTED"),
        (order_gid(mine), "READY"),
    ]
    assert len(events) == 2


async def test_resuming_after_a_cursor_replays_exactly_the_missed_events(
    engine: AsyncEngine, server: str
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    first = await change_status(engine, order, OrderStatus.ACCEPTED)
    await change_status(engine, order, OrderStatus.PREPARING)
    await change_status(engine, order, OrderStatus.READY)
    watcher = Watcher(server, ORDER_STATUS, {"orderId": order_gid(order), "after": str(first)})
    replayed = await watcher.wait_for(2)
    assert [e["status"] for e in replayed] == ["PREPARING", "READY"]
    await change_status(engine, order, OrderStatus.COMPLETED)
    events = await watcher.wait_for(3)
    await asyncio.sleep(0.3)
    await watcher.stop()
    assert [e["status"] for e in watcher.events] == ["PREPARING", "READY", "COMPLETED"]
    assert len(events) == 3


async def test_no_gap_and_no_duplicate_while_changes_commit_during_the_replay(
    engine: AsyncEngine, server: str
) -> None:
    store = await make_store(engine)
    orders = [await make_order(engine, store_id=store, status=OrderStatus.PLACED) for _ in range(5)]
    start = await change_status(engine, orders[0], OrderStatus.ACCEPTED)
    for order in orders:
        await change_status(engine, order, OrderStatus.PREPARING)

    async def keep_changing() -> list[int]:
        seqs = []
        for status in (OrderStatus.READY, OrderStatus.COMPLETED):
            for order in orders:
                seqs.append(await change_status(engine, order, status))
        return seqs

    writer = asyncio.create_task(keep_changing())
    watcher = Watcher(server, ORDER_STATUS, {"storeId": store_gid(store), "after": str(start)})
    later = await writer
    events = await watcher.wait_for(5 + len(later))
    await asyncio.sleep(0.5)
    await watcher.stop()
    cursors = [int(e["cursor"]) for e in watcher.events]
    assert cursors == sorted(set(cursors)), "in order, no duplicate"
    assert cursors[-len(later) :] == later
    assert len(events) == 5 + len(later)


async def test_customer_activity_interleaves_orders_loyalty_and_interactions(
    engine: AsyncEngine, server: str
) -> None:
    store = await make_store(engine)
    alice = await make_customer(engine, given_name="Alice")
    order = await make_order(engine, store_id=store, customer_id=alice, status=OrderStatus.PLACED)
    customer_gid = __import__("resolvers.live.ids", fromlist=["x"]).to_global_id("Customer", alice)
    watcher = Watcher(server, ACTIVITY, {"customerId": customer_gid})
    await watcher.subscribed.wait()
    await change_status(engine, order, OrderStatus.READY)
    async with engine.begin() as conn:
        await changefeed.append_changes(
            conn,
            [
                changefeed.Change(
                    changefeed.LOYALTY_CHANGED,
                    f"customer:{alice}",
                    {"points": 120, "balance": 320, "reason": "order"},
                    customer_id=alice,
                ),
                changefeed.Change(
                    changefeed.INTERACTION_RECORDED,
                    f"customer:{alice}",
                    {"interaction_id": 7, "channel": "PHONE", "subject": "Where is my order?"},
                    customer_id=alice,
                ),
            ],
        )
    events = await watcher.wait_for(3)
    await watcher.stop()
    assert [e["__typename"] for e in events] == [
        "OrderStatusEvent",
        "LoyaltyChangeEvent",
        "InteractionEvent",
    ]
    assert events[1]["points"] == 120 and events[1]["balance"] == 320
    assert events[2]["subject"] == "Where is my order?"


@pytest.mark.parametrize("after", ["yesterday", "-1", "99999999"])
async def test_a_bad_cursor_is_a_graphql_error(server: str, after: str) -> None:
    watcher = Watcher(server, ORDER_STATUS, {"after": after})
    with pytest.raises(TransportQueryError) as caught:
        await watcher.wait_for(1)
    assert "after" in str(caught.value)


async def test_legacy_graphql_ws_protocol_delivers_too(engine: AsyncEngine, server: str) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    watcher = Watcher(
        server,
        ORDER_STATUS,
        {"orderId": order_gid(order)},
        protocol="graphql-ws",
    )
    await watcher.subscribed.wait()
    await change_status(engine, order, OrderStatus.READY)
    events = await watcher.wait_for(1)
    await watcher.stop()
    assert events[0]["status"] == "READY"


async def test_identical_subscriptions_share_one_execution_per_event(
    engine: AsyncEngine, settings: Settings
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    apps: list[Any] = []
    async with running_server(settings, apps) as url:
        same = {"storeId": store_gid(store)}
        watchers = [Watcher(url, ORDER_STATUS, same) for _ in range(3)]
        single = Watcher(url, ORDER_STATUS, {"orderId": order_gid(order)})
        for w in [*watchers, single]:
            await w.subscribed.wait()
        view = next(r.app for r in apps[0].routes if isinstance(r, WebSocketRoute))
        shared = view.shared  # the WS /graphql view's groups
        assert shared.group_count == 2
        for status in (OrderStatus.ACCEPTED, OrderStatus.READY):
            await change_status(engine, order, status)
        streams = [await w.wait_for(2) for w in [*watchers, single]]
        executions = [g.executions for g in shared._groups.values()]
        for w in [*watchers, single]:
            await w.stop()
    assert all(s == streams[0] for s in streams)
    assert sorted(executions) == [2, 2]


async def test_following_a_merged_away_customer_follows_the_person(
    engine: AsyncEngine, server: str
) -> None:
    from readmodel import identity
    from resolvers.live.ids import to_global_id

    store = await make_store(engine)
    older = await make_customer(engine, given_name="Dana", email="dana@example.com")
    newer = await make_customer(engine, given_name="Dana", email="dana.o@example.com")
    async with engine.begin() as conn:
        survivor = await identity.merge_customers(conn, older, newer, actor="test", force=True)
    order = await make_order(
        engine, store_id=store, customer_id=survivor, status=OrderStatus.PLACED
    )
    merged_away = newer if survivor == older else older
    watcher = Watcher(server, ACTIVITY, {"customerId": str(to_global_id("Customer", merged_away))})
    await watcher.subscribed.wait()
    await change_status(engine, order, OrderStatus.READY)
    events = await watcher.wait_for(1)
    await watcher.stop()
    assert events[0]["__typename"] == "OrderStatusEvent"
    assert events[0]["status"] == "READY"


def shared_groups(apps: list[Any]) -> Any:
    view = next(r.app for r in apps[0].routes if isinstance(r, WebSocketRoute))
    return view.shared  # the WS /graphql view's groups


async def test_subscriptions_with_after_replay_their_own_history_then_share_the_live_one(
    engine: AsyncEngine, settings: Settings
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    first = await change_status(engine, order, OrderStatus.ACCEPTED)
    second = await change_status(engine, order, OrderStatus.PREPARING)
    apps: list[Any] = []
    async with running_server(settings, apps) as url:
        variables: dict[str, Any] = {"orderId": order_gid(order)}
        live_only = Watcher(url, ORDER_STATUS, variables)
        from_first = Watcher(url, ORDER_STATUS, {**variables, "after": str(first)})
        from_second = Watcher(url, ORDER_STATUS, {**variables, "after": str(second)})
        assert [e["status"] for e in await from_first.wait_for(1)] == ["PREPARING"]
        for w in (live_only, from_second):
            await w.subscribed.wait()
        shared = shared_groups(apps)
        assert shared.group_count == 1
        later = [
            await change_status(engine, order, status)
            for status in (OrderStatus.READY, OrderStatus.COMPLETED)
        ]
        await from_first.wait_for(3)
        await live_only.wait_for(2)
        await from_second.wait_for(2)
        await asyncio.sleep(0.3)
        executions = [g.executions for g in shared._groups.values()]
        for w in (live_only, from_first, from_second):
            await w.stop()
    assert [int(e["cursor"]) for e in from_first.events] == [second, *later]
    assert [int(e["cursor"]) for e in from_second.events] == later
    assert [int(e["cursor"]) for e in live_only.events] == later
    assert executions == [2]  # the live events ran once for all three


async def test_legacy_graphql_ws_subscriptions_share_the_same_execution(
    engine: AsyncEngine, settings: Settings
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    apps: list[Any] = []
    async with running_server(settings, apps) as url:
        same = {"storeId": store_gid(store)}
        legacy = [Watcher(url, ORDER_STATUS, same, protocol="graphql-ws") for _ in range(2)]
        current = Watcher(url, ORDER_STATUS, same)
        for w in [*legacy, current]:
            await w.subscribed.wait()
        shared = shared_groups(apps)
        assert shared.group_count == 1
        for status in (OrderStatus.ACCEPTED, OrderStatus.READY):
            await change_status(engine, order, status)
        streams = [await w.wait_for(2) for w in [*legacy, current]]
        executions = [g.executions for g in shared._groups.values()]
        for w in [*legacy, current]:
            await w.stop()
    assert all(s == streams[0] for s in streams)
    assert [e["status"] for e in streams[0]] == ["ACCEPTED", "READY"]
    assert executions == [2]


async def test_resuming_a_document_that_does_not_select_the_cursor_runs_on_its_own(
    engine: AsyncEngine, settings: Settings
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    first = await change_status(engine, order, OrderStatus.ACCEPTED)
    await change_status(engine, order, OrderStatus.PREPARING)
    document = """
    subscription Watch($orderId: ID, $after: String) {
      orderStatusChanged(orderId: $orderId, after: $after) { status }
    }
    """
    apps: list[Any] = []
    async with running_server(settings, apps) as url:
        watcher = Watcher(url, document, {"orderId": order_gid(order), "after": str(first)})
        assert await watcher.wait_for(1) == [{"status": "PREPARING"}]
        group_count = shared_groups(apps).group_count
        await change_status(engine, order, OrderStatus.READY)
        events = await watcher.wait_for(2)
        await asyncio.sleep(0.3)
        await watcher.stop()
    assert group_count == 0  # without cursors the seam could not be found in shared frames
    assert events == [{"status": "PREPARING"}, {"status": "READY"}]
