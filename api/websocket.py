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
from collections.abc import Awaitable, Callable
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
from strawberry.subscriptions.protocols.graphql_ws.types import CompleteMessage, ErrorMessage
from strawberry.types.unset import UNSET, UnsetType

from api import auth
from api.fanout import SharedPlan, SharedSubscriptions
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


async def _send_text(adapter: Any, text: str) -> None:
    """Send a pre-encoded frame on strawberry's websocket adapter."""
    websocket: WebSocket = adapter.ws
    try:
        await websocket.send_text(text)
    except WebSocketDisconnect as exc:
        raise WebSocketDisconnected from exc


class SharedStream:
    """One operation's part in a shared group (api.fanout), for either protocol: its own
    replay first (with ``after``), then the group's frames with this operation's id spliced
    in; a member that fell behind closes the socket with 4499 and its resume cursor."""

    def __init__(
        self,
        shared: SharedSubscriptions,
        plan: SharedPlan,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: Context,
    ) -> None:
        self.shared = shared
        self.plan = plan
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.context = context

    async def relay(
        self,
        operation_id: str,
        next_type: str,
        *,
        send_text: Callable[[str], Awaitable[None]],
        send_errors: Callable[[list[dict[str, Any]]], Awaitable[None]],
        send_complete: Callable[[], Awaitable[None]],
        close: Callable[..., Awaitable[None]],
    ) -> None:
        shared = self.shared
        member = shared.join(self.plan, self.query, self.operation_name, self.context)
        prefix = '{"id":' + orjson.dumps(operation_id).decode() + ',"type":"' + next_type + '"'
        prefix += ',"payload":'
        last_cursor = self.plan.after or "none"
        floor = -1 if self.plan.after is None else int(self.plan.after)
        try:
            replay = shared.replay(
                member,
                self.plan,
                self.query,
                self.variables,
                self.operation_name,
                self.context,
            )
            async for kind, body, cursor in replay:
                if kind != "next":
                    return await self._end(kind, body, send_errors, send_complete)
                await send_text(prefix + body + "}")
                if cursor is not None:
                    last_cursor = cursor
                    floor = max(floor, int(cursor))
            while True:
                kind, body, cursor = await member.queue.get()
                if kind == "next":
                    if cursor is not None and int(cursor) <= floor:
                        continue  # already replayed
                    await send_text(prefix + body + "}")
                    last_cursor = cursor or last_cursor
                    continue
                if member.overflowed:
                    reason = f"subscriber too slow; resubscribe with after: {last_cursor}"
                    await close(code=SLOW_SUBSCRIBER_CLOSE_CODE, reason=reason)
                    return None
                return await self._end(kind, body, send_errors, send_complete)
        except WebSocketDisconnected:
            return None
        finally:
            shared.leave(member)

    @staticmethod
    async def _end(
        kind: str,
        body: str,
        send_errors: Callable[[list[dict[str, Any]]], Awaitable[None]],
        send_complete: Callable[[], Awaitable[None]],
    ) -> None:
        if kind == "error":
            await send_errors(orjson.loads(body))
        else:
            await send_complete()


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
        """Live subscriptions share one execution per group (api.fanout)."""
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
        shared: SharedSubscriptions = self.view.shared  # type: ignore[attr-defined]
        plan = (
            shared.plan(payload["query"], variables, operation_name)
            if isinstance(variables, dict)
            else None
        )
        if plan is None:
            return await super().handle_subscribe(message)
        operation: Operation[Context, None] = Operation(
            self, message["id"], payload["query"], variables, operation_name
        )
        stream = SharedStream(
            shared, plan, payload["query"], variables, operation_name, self.context
        )

        async def send_errors(errors: list[dict[str, Any]]) -> None:
            await operation.send_initial_errors([GraphQLError(e["message"]) for e in errors])

        async def send_complete() -> None:
            await operation.send_operation_message({"id": operation.id, "type": "complete"})

        operation.task = asyncio.create_task(
            stream.relay(
                operation.id,
                "next",
                send_text=lambda text: _send_text(self.websocket, text),
                send_errors=send_errors,
                send_complete=send_complete,
                close=self.websocket.close,
            )
        )
        operation.task.add_done_callback(self._task_done)
        self.operations[message["id"]] = operation
        return None

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(BaseException):
                await self._pinger
        await super().shutdown()


class _LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws, plus the init timeout it lacks (close 4408, as the new protocol)
    and shared execution of live subscriptions (api.fanout)."""

    init_timeout_s: float = 10.0

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        shared: SharedSubscriptions = self.view.shared  # type: ignore[attr-defined]
        plan = (
            shared.plan(query, variables or {}, operation_name)
            if isinstance(variables, dict | None) and isinstance(query, str)
            else None
        )
        if plan is None:
            return await super().handle_async_results(
                operation_id, query, operation_name, variables
            )
        stream = SharedStream(shared, plan, query, variables or {}, operation_name, self.context)

        async def send_errors(errors: list[dict[str, Any]]) -> None:
            # as strawberry's legacy handler: the first error as the payload
            await self.send_message(
                ErrorMessage(type="error", id=operation_id, payload=cast(Any, errors[0]))
            )

        async def send_complete() -> None:
            await self.send_message(CompleteMessage(type="complete", id=operation_id))

        try:
            await stream.relay(
                operation_id,
                "data",
                send_text=lambda text: _send_text(self.websocket, text),
                send_errors=send_errors,
                send_complete=send_complete,
                close=self.websocket.close,
            )
        except asyncio.CancelledError:  # stopped by the client
            with contextlib.suppress(Exception):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

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
