"""Helpers for the live tests: status changes written as ingestion writes them, real servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from domain.model import OrderStatus
from readmodel import changefeed
from readmodel.tables import order_status_history, orders
from resolvers.live.ids import to_global_id
from tests import services


async def change_status(engine: AsyncEngine, order_id: int, status: OrderStatus) -> int:
    """Move an order to ``status`` in one transaction with its change-feed row; return seq."""
    at = datetime.now(UTC)
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(orders.c.status, orders.c.store_id, orders.c.customer_id, orders.c.source)
                .where(orders.c.id == order_id)
                .with_for_update()
            )
        ).one()
        await conn.execute(update(orders).where(orders.c.id == order_id).values(status=status))
        await conn.execute(
            order_status_history.insert().values(
                order_id=order_id,
                status=status.value,
                previous_status=row.status,
                at=at,
                source=row.source,
            )
        )
        (seq,) = await changefeed.append_changes(
            conn,
            [
                changefeed.Change(
                    topic=changefeed.ORDER_STATUS_CHANGED,
                    key=f"order:{order_id}",
                    payload={
                        "status": status.value,
                        "previous_status": row.status,
                        "at": at.isoformat(),
                        "source": row.source,
                    },
                    customer_id=row.customer_id,
                    order_id=order_id,
                    store_id=row.store_id,
                )
            ],
        )
    return seq


def order_gid(order_id: int) -> str:
    return str(to_global_id("Order", order_id))


def store_gid(store_id: int) -> str:
    return str(to_global_id("Store", store_id))


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings, apps: list[Starlette] | None = None
) -> AsyncIterator[str]:
    """The app served by uvicorn in this event loop; yields ``ws://127.0.0.1:<port>/graphql``.

    The app is appended to ``apps`` when given, for tests that look inside it.
    """
    port = services.free_port()
    app = create_app(settings)
    if apps is not None:
        apps.append(app)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws_max_size=settings.ws_max_frame_bytes,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=10)


def transport(url: str, protocol: str = "graphql-transport-ws") -> Any:
    return WebsocketsTransport(url=url, subprotocols=[protocol])


class Watcher:
    """A subscription running in the background, collecting its events."""

    def __init__(self, url: str, document: str, variables: dict[str, Any], **kw: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.subscribed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(url, document, variables, kw))

    async def _run(
        self, url: str, document: str, variables: dict[str, Any], kw: dict[str, Any]
    ) -> None:
        request = GraphQLRequest(document, variable_values=variables)
        try:
            async with Client(transport=transport(url, **kw)) as session:
                stream = session.subscribe(request)
                # the server registers the subscription while we wait for the first event
                asyncio.get_running_loop().call_later(0.3, self.subscribed.set)
                async for result in stream:
                    async with self._changed:
                        self.events.append(next(iter(result.values())))
                        self._changed.notify_all()
        except Exception as exc:
            self.error = exc
            self.subscribed.set()
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, count: int, seconds: float = 10) -> list[dict[str, Any]]:
        """The events so far, once there are ``count`` of them; raises the stream's error."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(
                lambda: len(self.events) >= count or self.error is not None
            )
        if self.error is not None:
            raise self.error
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=5)
