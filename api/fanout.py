"""The live fan-out of one API process: change notifier, relay (with Redis) and hub.

``start_live_fanout`` is called from the app's lifespan; it returns the started hub that
every GraphQL context carries (``hub.stop()`` stops the relay and notifier too). See
docs/live.md for how the pieces fit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    ValueNode,
    VariableNode,
    get_named_type,
    parse,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.types.execution import PreExecutionError

from api.settings import Settings
from domain.viewer import Viewer
from readmodel.hub import Hub
from readmodel.relay import ChangeNotifier, Relay
from resolvers.context import Context
from resolvers.live.stream import LiveContext, parse_cursor

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
# Live subscriptions that send the same document and variables, for viewers who see the
# same rows, are identical streams: the first one starts a ``Group`` that executes the
# subscription once (without ``after``); every member gets the same encoded payload and only
# its own id is spliced into the frame. A member with a full queue is cut off alone.
#
# A subscription with ``after`` joins the group of the same document with ``after: null``
# and replays its own history first: it joins (its queue starts collecting the group's
# frames), waits until the group follows the hub, replays ``after < seq <= newest`` with a
# replay-only execution of its own document, then passes on the group's frames with a cursor
# above the last one it replayed (and above ``after``). Every row is thus replayed or live
# (or both, and then dropped once by cursor), as in ``resolvers.live.stream``; this needs
# every event of the document to select ``cursor`` (otherwise it runs individually).

GROUPABLE_FIELDS = frozenset({"orderStatusChanged", "customerActivity"})
TOO_SLOW = "subscriber too slow"


@functools.lru_cache(maxsize=512)
def _parsed(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except GraphQLError:
        return None


@dataclass(frozen=True)
class SharedPlan:
    """How a subscription joins a group: the group runs ``live_variables`` (``after``
    null); a member with ``after`` replays from it first."""

    live_variables: dict[str, Any]
    after: str | None = None


def _after_argument(field: FieldNode) -> ValueNode | None:
    for argument in field.arguments or ():
        if argument.name.value == "after":
            return argument.value
    return None


def _cursor_in(selections: Sequence[SelectionNode], type_name: str) -> bool:
    """Does this selection give every event of type ``type_name`` a ``cursor`` key?"""
    for node in selections:
        if isinstance(node, FieldNode):
            alias = node.alias.value if node.alias else None
            if node.name.value == "cursor" and alias in (None, "cursor"):
                return True
        elif isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            matches = condition is None or condition.name.value == type_name
            if matches and _cursor_in(node.selection_set.selections, type_name):
                return True
    return False


def _every_event_has_a_cursor(schema: GraphQLSchema, field: FieldNode) -> bool:
    subscription = schema.subscription_type
    definition = subscription.fields.get(field.name.value) if subscription else None
    if definition is None or field.selection_set is None:
        return False
    event_type = get_named_type(definition.type)
    if isinstance(event_type, GraphQLObjectType):
        types: Sequence[GraphQLObjectType] = [event_type]
    elif isinstance(event_type, GraphQLUnionType | GraphQLInterfaceType):
        types = schema.get_possible_types(event_type)
    else:
        return False
    selections = field.selection_set.selections
    return all(_cursor_in(selections, t.name) for t in types)


def shared_plan(
    schema: GraphQLSchema, query: str, variables: dict[str, Any], operation_name: str | None
) -> SharedPlan | None:
    """The plan for a single live subscription field whose stream can be shared, else None.

    Without ``after`` the stream is the same for everyone; with ``after`` given as a
    variable holding a well-formed cursor it can be, after a private replay, if every event
    selects ``cursor``. Anything else (and every error case) runs individually."""
    document = _parsed(query)
    if document is None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.name.value not in GROUPABLE_FIELDS:
        return None
    after = _after_argument(field)
    if after is None or isinstance(after, NullValueNode):
        return SharedPlan(variables)
    if not isinstance(after, VariableNode):
        return None
    name = after.name.value
    definitions = operations[0].variable_definitions or ()
    if any(d.variable.name.value == name and d.default_value for d in definitions):
        return None  # an omitted `after` would not mean "live only"
    value = variables.get(name)
    if value is None:  # omitted or null: one group with the resuming ones
        return SharedPlan({**variables, name: None})
    if not isinstance(value, str) or _cursor_value(value) is None:
        return None  # a bad cursor: the individual path reports it
    if not _every_event_has_a_cursor(schema, field):
        return None
    return SharedPlan({**variables, name: None}, after=value)


def _cursor_value(after: str) -> int | None:
    try:
        return parse_cursor(after)
    except GraphQLError:
        return None


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
class Group:
    key: tuple[object, ...]
    members: set[Member] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    executions: int = 0
    live: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the group's execution follows the hub (or has ended)."""


@dataclass(eq=False)
class Member:
    queue: asyncio.Queue[Frame]
    queue_size: int
    group: Group
    overflowed: bool = False

    def offer(self, frame: Frame) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.queue_size and frame[0] == "next":
            self.overflowed = True
            self.queue.put_nowait(("complete", "", None))
            return
        self.queue.put_nowait(frame)


def _encoded(result: Any) -> str:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    return orjson.dumps(payload).decode()


def _live_context(context: Context, **live: Any) -> LiveContext:
    copy = LiveContext(
        engine=context.engine,
        hub=context.hub,
        request=context.request,
        viewer=context.viewer,
        read_engine=context.read_engine,
        **live,
    )
    copy.__dict__["locale"] = context.locale  # a cached_property
    return copy


class SharedSubscriptions:
    """The groups of one process (kept on the app state)."""

    def __init__(self, schema: Any, queue_size: int) -> None:
        self._schema = schema
        self._queue_size = queue_size
        self._groups: dict[tuple[object, ...], Group] = {}

    @property
    def graphql_schema(self) -> GraphQLSchema:
        schema: GraphQLSchema = self._schema._schema
        return schema

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def plan(
        self, query: str, variables: dict[str, Any], operation_name: str | None
    ) -> SharedPlan | None:
        try:
            orjson.dumps(variables)  # part of the group key
        except TypeError:  # e.g. an integer beyond 64 bits: let the executor judge it
            return None
        return shared_plan(self.graphql_schema, query, variables, operation_name)

    def join(
        self, plan: SharedPlan, query: str, operation_name: str | None, context: Context
    ) -> Member:
        """Become a member of the group for this stream (starting it if needed)."""
        variables = plan.live_variables
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
            group_context = _live_context(context, live_started=group.live)
            group_context.request = None  # the group belongs to no one connection
            group.task = asyncio.create_task(
                self._run(group, query, variables, operation_name, group_context)
            )
        member = Member(asyncio.Queue(maxsize=self._queue_size + 2), self._queue_size, group)
        group.members.add(member)
        return member

    def leave(self, member: Member) -> None:
        group = member.group
        group.members.discard(member)
        if not group.members and self._groups.get(group.key) is group:
            del self._groups[group.key]
            if group.task is not None:
                group.task.cancel()

    async def replay(
        self,
        member: Member,
        plan: SharedPlan,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        context: Context,
    ) -> AsyncIterator[Frame]:
        """A member's own history after ``plan.after``, once its group follows the hub:
        "next" frames (then "complete" if one carried errors, as an individual execution
        would end). Afterwards the member passes on the group's frames whose cursor is above
        both ``plan.after`` and the last replayed cursor."""
        await member.group.live.wait()
        if plan.after is None:
            return
        stream = await self._schema.subscribe(
            query,
            variable_values=variables,
            context_value=_live_context(context, replay_only=True),
            operation_name=operation_name,
        )
        async for result in stream:
            if isinstance(result, PreExecutionError):
                yield (
                    "error",
                    orjson.dumps([e.formatted for e in result.errors or []]).decode(),
                    None,
                )
                return
            cursor = _cursor_of(result.data)
            yield ("next", _encoded(result), cursor)
            if result.errors:
                yield ("complete", "", None)
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
                frame: Frame = ("next", _encoded(result), _cursor_of(result.data))
                for member in list(group.members):
                    member.offer(frame)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shared subscription failed")
        finally:
            group.live.set()  # members waiting for it find the end in their queues
            if self._groups.get(group.key) is group:
                del self._groups[group.key]
            for member in list(group.members):
                if member.overflowed:
                    member.queue.put_nowait(("complete", "", None))
                else:
                    member.offer(end)
