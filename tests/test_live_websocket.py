"""The websocket endpoint under bad input and resource limits: protocol close codes, caps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.settings import Mode, Settings
from domain.model import OrderStatus
from readmodel import changefeed
from tests.factories import make_order, make_store
from tests.ingest_support import JWT_SECRET, token
from tests.live_support import change_status, order_gid, running_server

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
WATCH = "subscription($o: ID) { orderStatusChanged(orderId: $o) { cursor status } }"

ServerFactory = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def serve(engine: AsyncEngine, settings: Settings) -> ServerFactory:
    """Start the app with some settings changed: ``async with serve(ws_...=...) as url``."""

    def start(**changes: Any) -> AbstractAsyncContextManager[str]:
        return running_server(settings.model_copy(update=changes))

    return start


@pytest.fixture
async def url(serve: ServerFactory) -> AsyncIterator[str]:
    async with serve() as u:
        yield u


def connect(url: str, protocol: str = TRANSPORT_WS, **kw: Any) -> Any:
    return websockets.connect(url, subprotocols=[protocol], **kw)  # type: ignore[list-item]


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection, seconds: float = 5) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), seconds))
        if message["type"] not in ("ping", "ka"):
            return message


async def closed_with(ws: ClientConnection, seconds: float = 5) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def init(ws: ClientConnection) -> None:
    await send(ws, {"type": "connection_init", "payload": {}})
    assert (await receive(ws))["type"] == "connection_ack"


def subscribe(op_id: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": op_id, "type": "subscribe", "payload": {"query": WATCH, "variables": variables}}


async def test_subscribe_before_connection_init_closes_4401(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("1"))
        assert (await closed_with(ws))[0] == 4401


async def test_legacy_start_before_connection_init_closes_4401(url: str) -> None:
    async with connect(url, LEGACY_WS) as ws:
        await send(ws, {"id": "1", "type": "start", "payload": {"query": WATCH}})
        assert (await closed_with(ws))[0] == 4401


async def test_production_without_credentials_is_refused_at_init_4403(
    serve: ServerFactory,
) -> None:
    async with serve(mode=Mode.PRODUCTION) as url, connect(url) as ws:
        await send(ws, {"type": "connection_init", "payload": {"authToken": "nonsense"}})
        assert (await closed_with(ws))[0] == 4403


async def test_a_connection_that_never_initialises_is_closed_4408(serve: ServerFactory) -> None:
    async with serve(ws_init_timeout_s=0.3) as url:
        async with connect(url) as ws:
            assert (await closed_with(ws))[0] == 4408
        async with connect(url, LEGACY_WS) as ws:
            assert (await closed_with(ws))[0] == 4408


async def test_a_second_init_closes_4429_and_a_duplicate_id_4409(url: str) -> None:
    async with connect(url) as ws:
        await init(ws)
        await send(ws, {"type": "connection_init"})
        assert (await closed_with(ws))[0] == 4429
    async with connect(url) as ws:
        await init(ws)
        await send(ws, subscribe("same"))
        await send(ws, subscribe("same"))
        assert (await closed_with(ws))[0] == 4409


@pytest.mark.parametrize(
    "frame",
    ["{not json", json.dumps({"type": "launch_missiles"}), json.dumps({"id": 1})],
)
async def test_malformed_frames_close_4400(url: str, frame: str) -> None:
    async with connect(url) as ws:
        await init(ws)
        await ws.send(frame)
        assert (await closed_with(ws))[0] == 4400


async def test_a_binary_frame_closes_4400(url: str) -> None:
    async with connect(url) as ws:
        await init(ws)
        await ws.send(b"\x00\x01")
        assert (await closed_with(ws))[0] == 4400


async def test_an_oversized_frame_closes_1009(serve: ServerFactory) -> None:
    async with serve(ws_max_frame_bytes=4096) as url, connect(url) as ws:
        await init(ws)
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": "#" * 10_000}})
        assert (await closed_with(ws))[0] == 1009


async def test_subscriptions_over_the_cap_get_an_error_for_that_id(serve: ServerFactory) -> None:
    async with serve(ws_max_subscriptions=2) as url, connect(url) as ws:
        await init(ws)
        for op_id in ("1", "2", "3"):
            await send(ws, subscribe(op_id))
        message = await receive(ws)
        assert message["id"] == "3" and message["type"] == "error"
        assert "limit" in message["payload"][0]["message"]


async def test_the_server_pings_to_keep_the_connection_alive(serve: ServerFactory) -> None:
    async with serve(ws_keep_alive_s=0.2) as url:
        async with connect(url) as ws:
            await init(ws)
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message == {"type": "ping"}
        async with connect(url, LEGACY_WS) as ws:
            await send(ws, {"type": "connection_init"})
            types = {json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] for _ in range(3)}
            assert "ka" in types


async def test_a_foreign_origin_is_refused_unless_allowed(serve: ServerFactory) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with serve() as url, connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    allowed = ["https://console.example"]
    async with (
        serve(allowed_origins=allowed) as url,
        connect(url, origin="https://console.example") as ws,
    ):
        await init(ws)


async def test_a_misbehaving_connection_does_not_disturb_other_subscribers(
    engine: AsyncEngine, url: str
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    async with connect(url) as good:
        await init(good)
        await send(good, subscribe("w", {"o": order_gid(order)}))
        await asyncio.sleep(0.3)
        async with connect(url) as bad:
            await init(bad)
            await bad.send("{garbage")
            assert (await closed_with(bad))[0] == 4400
        await change_status(engine, order, OrderStatus.READY)
        message = await receive(good)
        assert message["type"] == "next"
        assert message["payload"]["data"]["orderStatusChanged"]["status"] == "READY"


async def test_a_subscriber_that_falls_behind_is_cut_off_with_a_resume_cursor(
    engine: AsyncEngine, serve: ServerFactory
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    # in-process feed: a burst committed together reaches the hub as one batch
    async with serve(redis_url=None, live_queue_size=2) as url, connect(url) as ws:
        await init(ws)
        await send(ws, subscribe("w", {"o": order_gid(order)}))
        await asyncio.sleep(0.3)
        burst = [OrderStatus.ACCEPTED, OrderStatus.PREPARING, OrderStatus.READY] * 2
        async with engine.begin() as conn:
            await changefeed.append_changes(
                conn,
                [
                    changefeed.Change(
                        changefeed.ORDER_STATUS_CHANGED,
                        f"order:{order}",
                        {"status": s.value},
                        order_id=order,
                        store_id=store,
                    )
                    for s in burst
                ],
            )
        code, reason = await closed_with(ws)
    assert code == 4499
    assert reason.startswith("subscriber too slow; resubscribe with after: ")


WATCH_ANY = """
subscription($s: ID) {
  orderStatusChanged(storeId: $s) { cursor status order { id externalId status } }
}
"""


async def _authorized(url: str, bearer: str) -> ClientConnection:
    ws = await websockets.connect(url, subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
    await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}})
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


async def test_with_a_token_in_production_events_carry_the_current_order_and_stay_in_scope(
    engine: AsyncEngine, serve: ServerFactory
) -> None:
    mine = await make_store(engine, name="Mine")
    other = await make_store(engine, name="Other")
    order = await make_order(engine, store_id=mine, status=OrderStatus.PLACED)
    foreign = await make_order(engine, store_id=other, status=OrderStatus.PLACED)
    async with serve(mode=Mode.PRODUCTION, jwt_secret=JWT_SECRET) as url:
        support = await _authorized(url, token(role="support", scope="orders:read pii:read"))
        partner = await _authorized(url, token(role="partner", scope="orders:read", stores=[mine]))
        for ws in (support, partner):
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": WATCH_ANY}})
            )
        await asyncio.sleep(0.3)
        await change_status(engine, foreign, OrderStatus.ACCEPTED)
        await change_status(engine, order, OrderStatus.READY)
        seen_by_support = [await receive(support) for _ in range(2)]
        seen_by_partner = await receive(partner)
        await support.close()
        await partner.close()
    statuses = [m["payload"]["data"]["orderStatusChanged"] for m in seen_by_support]
    assert [s["status"] for s in statuses] == ["ACCEPTED", "READY"]
    assert statuses[1]["order"] == {
        "id": order_gid(order),
        "externalId": statuses[1]["order"]["externalId"],
        "status": "READY",  # the order as it is now, not as an earlier event cached it
    }
    partner_event = seen_by_partner["payload"]["data"]["orderStatusChanged"]
    assert partner_event["order"]["id"] == order_gid(order)  # the foreign store's is absent


async def test_a_bad_token_is_refused_at_init_4403(serve: ServerFactory) -> None:
    async with serve(mode=Mode.PRODUCTION, jwt_secret=JWT_SECRET) as url, connect(url) as ws:
        await send(ws, {"type": "connection_init", "payload": {"Authorization": "Bearer x.y.z"}})
        assert (await closed_with(ws))[0] == 4403


async def test_shared_streams_keep_each_connections_money_locale(
    engine: AsyncEngine, url: str
) -> None:
    store = await make_store(engine)
    order = await make_order(
        engine,
        store_id=store,
        status=OrderStatus.PLACED,
        items=[{"name": "Pie", "unit_price": 123456}],
    )
    document = (
        "subscription($o: ID) { orderStatusChanged(orderId: $o) { order { total { formatted } } } }"
    )
    formatted = {}
    sockets = {}
    for language in ("en-US", "de-DE"):
        ws = await websockets.connect(
            url,
            subprotocols=[TRANSPORT_WS],
            additional_headers={"Accept-Language": language},  # type: ignore[list-item]
        )
        await init(ws)
        payload = {"query": document, "variables": {"o": order_gid(order)}}
        await send(ws, {"id": "1", "type": "subscribe", "payload": payload})
        sockets[language] = ws
    await asyncio.sleep(0.3)
    await change_status(engine, order, OrderStatus.READY)
    for language, ws in sockets.items():
        message = await receive(ws)
        formatted[language] = message["payload"]["data"]["orderStatusChanged"]["order"]["total"]
        await ws.close()
    assert formatted["en-US"]["formatted"] == "$1,234.56"
    assert formatted["de-DE"]["formatted"].startswith("1.234,56")


async def test_variables_that_cannot_form_a_shared_group_are_answered_individually(
    engine: AsyncEngine, url: str
) -> None:
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    async with connect(url) as ws:
        await init(ws)
        await send(ws, subscribe("big", {"o": 2**70}))  # beyond any JSON encoder's integers
        await send(ws, subscribe("ok", {"o": order_gid(order)}))
        await asyncio.sleep(0.3)
        await change_status(engine, order, OrderStatus.READY)
        messages: dict[str, dict[str, Any]] = {}
        while len(messages) < 2:
            message = await receive(ws)
            messages.setdefault(message["id"], message)
    assert messages["big"]["type"] in ("next", "error", "complete")  # answered, not dropped
    assert messages["ok"]["type"] == "next"
    assert messages["ok"]["payload"]["data"]["orderStatusChanged"]["status"] == "READY"
