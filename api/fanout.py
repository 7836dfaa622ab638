"""The live fan-out of one API process: change notifier, relay (with Redis) and hub.

``start_live_fanout`` is called from the app's lifespan; it returns the started hub that
every GraphQL context carries (``hub.stop()`` stops the relay and notifier too). See
docs/live.md for how the pieces fit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.types.execution import PreExecutionError

from api.settings import Settings
from domain.viewer import Viewer
from readmodel.hub import Hub
from readmodel.relay import ChangeNotifier, Relay
from resolvers.context import Context

log = logging.getLogger("guestgraph.fanout")


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


# --- shared execution: one GraphQL execution per group of identical subscriptions -----------
#
# A straightforward subscription re-executes its selection for every subscriber (~280 µs of
# CPU each on this machine), so one event to 2,000 sockets took ~0.6 s to reach the last.
# Live subscriptions *without* ``after`` that send the same document and variables, for
# viewers who see the same rows, are identical streams: the first one starts a ``Group``
# that executes the subscription once; every member gets the same encoded payload and only
# its own id is spliced into the frame. A member with a full queue is cut off alone.
# Subscriptions with ``after`` replay a private history first and run individually.

GROUPABLE_FIELDS = frozenset({"orderStatusChanged", "customerActivity"})
TOO_SLOW = "subscriber too slow"


@functools.lru_cache(maxsize=512)
def _parsed(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except GraphQLError:
        return None


def _after_is_unset(field: FieldNode, variables: dict[str, Any]) -> bool:
    for argument in field.arguments or ():
        if argument.name.value != "after":
            continue
        value = argument.value
        if isinstance(value, NullValueNode):
            return True
        if isinstance(value, VariableNode):
            return variables.get(value.name.value) is None
        return False
    return True


def is_groupable(query: str, variables: dict[str, Any], operation_name: str | None) -> bool:
    """A single live subscription field, no ``after``: its stream is the same for everyone."""
    document = _parsed(query)
    if document is None:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return False
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return False
    field = selections[0]
    return field.name.value in GROUPABLE_FIELDS and _after_is_unset(field, variables)


def _cursor_of(data: dict[str, Any] | None) -> str | None:
    """The ``cursor`` of the event in a result, if the document selected it."""
    for event in (data or {}).values():
        if isinstance(event, dict) and isinstance(event.get("cursor"), str):
            return str(event["cursor"])
    return None


def _viewer_key(viewer: Viewer) -> tuple[object, ...]:
    stores = None if viewer.store_ids is None else tuple(sorted(viewer.store_ids))
    return (viewer.role, tuple(sorted(viewer.scopes)), stores, viewer.customer_id)


Frame = tuple[str, str, str | None]
"""(message type, encoded payload, event cursor): ``("next", "{...}", "42")``,
``("error", "[...]", None)`` or ``("complete", "", None)``; a member's stream ends after
"error" or "complete"."""


@dataclass(eq=False)
class Member:
    queue: asyncio.Queue[Frame]
    queue_size: int
    overflowed: bool = False

    def offer(self, frame: Frame) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.queue_size and frame[0] == "next":
            self.overflowed = True
            self.queue.put_nowait(("complete", "", None))
            return
        self.queue.put_nowait(frame)


@dataclass(eq=False)
class Group:
    key: tuple[object, ...]
    members: set[Member] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    executions: int = 0


class SharedSubscriptions:
    """The groups of one process (kept on the app state)."""

    def __init__(self, schema: Any, queue_size: int) -> None:
        self._schema = schema
        self._queue_size = queue_size
        self._groups: dict[tuple[object, ...], Group] = {}

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def join(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: Context,
    ) -> Member:
        """Become a member of the group for this stream (starting it if needed)."""
        key = (
            query,
            operation_name,
            orjson.dumps(variables, option=orjson.OPT_SORT_KEYS),
            _viewer_key(context.viewer),
            context.locale,  # money is formatted for the connection's Accept-Language
        )
        group = self._groups.get(key)
        if group is None:
            group = Group(key)
            self._groups[key] = group
            group_context = Context(engine=context.engine, hub=context.hub, viewer=context.viewer)
            group_context.__dict__["locale"] = context.locale  # a cached_property
            group.task = asyncio.create_task(
                self._run(group, query, variables, operation_name, group_context)
            )
        member = Member(asyncio.Queue(maxsize=self._queue_size + 2), self._queue_size)
        group.members.add(member)
        return member

    def leave(self, member: Member) -> None:
        for key, group in list(self._groups.items()):
            if member in group.members:
                group.members.discard(member)
                if not group.members:
                    del self._groups[key]
                    if group.task is not None:
                        group.task.cancel()
                return

    async def _run(
        self,
        group: Group,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: Context,
    ) -> None:
        end: Frame = ("complete", "", None)
        try:
            stream = await self._schema.subscribe(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
            )
            async for result in stream:
                if isinstance(result, PreExecutionError):
                    errors = [e.formatted for e in result.errors or []]
                    end = ("error", orjson.dumps(errors).decode(), None)
                    return
                if any(e.message.startswith(TOO_SLOW) for e in result.errors or []):
                    # the group itself fell behind the hub: every member resumes by cursor
                    for member in group.members:
                        member.overflowed = True
                    return
                group.executions += 1
                payload: dict[str, Any] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [e.formatted for e in result.errors]
                frame: Frame = ("next", orjson.dumps(payload).decode(), _cursor_of(result.data))
                for member in list(group.members):
                    member.offer(frame)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shared subscription failed")
        finally:
            if self._groups.get(group.key) is group:
                del self._groups[group.key]
            for member in list(group.members):
                if member.overflowed:
                    member.queue.put_nowait(("complete", "", None))
                else:
                    member.offer(end)
