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

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET, UnsetType

from api import auth
from api.fanout import Member, SharedSubscriptions, is_groupable
from api.graphql_http import StrictTransportWSHandler
from api.settings import Settings
from domain.viewer import Viewer
from resolvers.context import Context
from resolvers.live.stream import SLOW_SUBSCRIBER_CLOSE_CODE


@dataclass
class ConnectionContext(Context):
    """A websocket connection's context: strawberry stores the init payload here."""

    connection_params: dict[str, object] | None = None


async def authorize_connection(payload: dict[str, object], websocket: WebSocket) -> Viewer:
    """The viewer for a connection whose ``connection_init`` carried ``payload``.

    The single place websocket auth is decided: the token check is ``api.auth``'s (an
    ``Authorization: Bearer ...`` entry in the payload; none in development mode = the
    development admin). Raises ConnectionRejectionError (the connection is closed with
    4403) for a bad token, or for no token at all outside development mode.
    """
    try:
        viewer = await auth.authorize_connection(payload, websocket)
    except auth.ConnectionRejected as exc:
        raise ConnectionRejectionError({"reason": exc.reason}) from None
    if viewer.is_anonymous:
        raise ConnectionRejectionError({"reason": "a bearer token is required"})
    return viewer


def origin_allowed(origin: str, settings: Settings) -> bool:
    """May a page on ``origin`` (another site than ours) open a websocket here?"""
    allowed = {o.rstrip("/") for o in settings.allowed_origins}
    return "*" in allowed or origin.rstrip("/") in allowed


class _TransportWSHandler(StrictTransportWSHandler):  # auth: non-object frames close 4400
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

    async def handle_subscribe(self, message: Any) -> None:
        """Live subscriptions without ``after`` share one execution (api.fanout)."""
        payload = message.get("payload")
        if (
            not self.connection_acknowledged
            or not isinstance(payload, dict)
            or not isinstance(payload.get("query"), str)
            or message.get("id") in self.operations
            or (
                self.max_subscriptions_per_connection is not None
                and len(self.operations) >= self.max_subscriptions_per_connection
            )
        ):
            return await super().handle_subscribe(message)
        variables = payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(variables, dict) or not is_groupable(
            payload["query"], variables, operation_name
        ):
            return await super().handle_subscribe(message)
        shared: SharedSubscriptions = self.view.shared  # type: ignore[attr-defined]
        member = shared.join(payload["query"], variables, operation_name, self.context)
        operation: Operation[Context, None] = Operation(
            self, message["id"], payload["query"], variables, operation_name
        )
        operation.task = asyncio.create_task(self._relay_shared(operation, shared, member))
        operation.task.add_done_callback(self._task_done)
        self.operations[message["id"]] = operation
        return None

    async def _relay_shared(
        self, operation: Operation[Context, None], shared: SharedSubscriptions, member: Member
    ) -> None:
        """Send the group's frames to this socket, with this operation's id spliced in."""
        prefix = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":'
        last_cursor = "none"
        try:
            while True:
                kind, body, cursor = await member.queue.get()
                if kind == "next":
                    await self._send_raw(prefix + '"next","payload":' + body + "}")
                    last_cursor = cursor or last_cursor
                    continue
                if member.overflowed:
                    reason = f"subscriber too slow; resubscribe with after: {last_cursor}"
                    await self.websocket.close(code=SLOW_SUBSCRIBER_CLOSE_CODE, reason=reason)
                    return
                if kind == "error":
                    errors = [GraphQLError(e["message"]) for e in orjson.loads(body)]
                    await operation.send_initial_errors(errors)
                    return
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
                return
        except WebSocketDisconnected:
            return
        finally:
            shared.leave(member)

    async def _send_raw(self, text: str) -> None:
        websocket: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        try:
            await websocket.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

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

    def __init__(self, settings: Settings, schema: strawberry.Schema) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            keep_alive=True,
            keep_alive_interval=settings.ws_keep_alive_s,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        self.settings = settings
        self.shared = SharedSubscriptions(schema, settings.live_queue_size)
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
