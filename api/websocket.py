"""``WS /graphql``: subscriptions over ``graphql-transport-ws`` and legacy ``graphql-ws``.

- ``connection_init`` is required before anything else (both protocols); its payload is
  checked by ONE hook, ``authorize_connection``, which turns it into the connection's Viewer
  or refuses the connection (close 4403).
- A connection that does not send ``connection_init`` within ``ws_init_timeout_s`` is
  closed with 4408; at most ``ws_max_subscriptions`` operations run per connection.
- The server pings (``ping`` / legacy ``ka``) every ``ws_keep_alive_s`` so proxies keep the
  socket open and dead peers are noticed.
- Browser origins other than the server's own must be listed in ``GUESTGRAPH_ALLOWED_ORIGINS``
  (``origin_allowed``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET, UnsetType

from api.settings import Settings
from domain.viewer import DEVELOPMENT_ADMIN, Viewer
from resolvers.context import Context
from resolvers.schema import schema


@dataclass
class ConnectionContext(Context):
    """A websocket connection's context: strawberry stores the init payload here."""

    connection_params: dict[str, object] | None = None


async def authorize_connection(payload: dict[str, object], websocket: WebSocket) -> Viewer:
    """The viewer for a connection whose ``connection_init`` carried ``payload``.

    The single place websocket auth is decided. Raises ConnectionRejectionError (the
    connection is closed with 4403) when the connection may not proceed.

    Until token auth is wired in here, only development mode admits connections.
    """
    settings: Settings = websocket.app.state.guestgraph.settings
    if settings.is_development:
        return DEVELOPMENT_ADMIN
    raise ConnectionRejectionError({"reason": "authentication required"})


def origin_allowed(origin: str, settings: Settings) -> bool:
    """May a page on ``origin`` (another site than ours) open a websocket here?"""
    allowed = {o.rstrip("/") for o in settings.allowed_origins}
    return "*" in allowed or origin.rstrip("/") in allowed


class _TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, plus server pings after the connection is acknowledged."""

    keep_alive_interval: float = 15.0
    _pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_forever())

    async def _ping_forever(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.keep_alive_interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(BaseException):
                await self._pinger
        await super().shutdown()


class _LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws, plus the init timeout it lacks (close 4408, as the new protocol)."""

    init_timeout_s: float = 10.0

    async def handle(self) -> None:
        watchdog = asyncio.create_task(self._close_if_not_initialised())
        try:
            await super().handle()
        finally:
            watchdog.cancel()
            with contextlib.suppress(BaseException):
                await watchdog

    async def _close_if_not_initialised(self) -> None:
        await asyncio.sleep(self.init_timeout_s)
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")


class LiveWebSocketApp(GraphQL[Context, None]):
    """The ASGI app behind ``WS /graphql``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            keep_alive=True,
            keep_alive_interval=settings.ws_keep_alive_s,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        self.settings = settings
        keep_alive_s, init_s = settings.ws_keep_alive_s, settings.ws_init_timeout_s

        class TransportWS(_TransportWSHandler):
            keep_alive_interval = keep_alive_s

        class LegacyWS(_LegacyWSHandler):
            init_timeout_s = init_s

        self.graphql_transport_ws_handler_class = TransportWS
        self.graphql_ws_handler_class = LegacyWS

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.app.state.guestgraph
        return ConnectionContext(engine=state.engine, hub=state.hub, request=request)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        assert isinstance(context, ConnectionContext)
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        context.viewer = await authorize_connection(context.connection_params or {}, websocket)
        return cast(UnsetType, UNSET)

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        return origin_allowed(origin, self.settings)
