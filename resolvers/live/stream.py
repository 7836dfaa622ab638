"""One subscriber's stream: replay from PostgreSQL after a cursor, then live, with no seam.

The order matters: subscribe to the hub *first* (live rows start queueing), then read the
newest committed sequence ``upto`` and replay matching rows ``after < seq <= upto`` from
PostgreSQL, then pass on live rows with ``seq > upto`` only. A row committed at any moment
is thus either replayed or queued live (or both, and then dropped once by seq): never lost,
never twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketState

from readmodel.changefeed import FeedRow
from readmodel.hub import Interest, SubscriberTooSlow, newest_seq, replay
from resolvers.context import Context

log = logging.getLogger("guestgraph.live")

SLOW_SUBSCRIBER_CLOSE_CODE = 4499
"""Close code for a subscriber cut off because it could not keep up (reason names the cursor)."""


@dataclass
class LiveContext(Context):
    """A context for shared subscription executions (``api.fanout``).

    ``live_started`` is set once the live stream follows the hub; ``replay_only`` makes a
    stream with ``after`` end after its replay (its live part comes from a shared group).
    """

    live_started: asyncio.Event | None = None
    replay_only: bool = False


def parse_cursor(after: str | None) -> int | None:
    """``after`` as a sequence number; GraphQLError when it is not a non-negative integer."""
    if after is None:
        return None
    text = after.strip()
    if not text.isdigit() or len(text) > 18:
        raise GraphQLError("after: not a cursor (expected the `cursor` of an earlier event)")
    return int(text)


async def live_rows(
    context: Context, interest: Interest, after: str | None
) -> AsyncIterator[FeedRow]:
    """Rows for ``interest``: the ones after ``after`` first (if given), then live ones."""
    after_seq = parse_cursor(after)
    live = not (isinstance(context, LiveContext) and context.replay_only)
    hub = context.hub
    sub = hub.subscribe(interest) if live else None
    if isinstance(context, LiveContext) and context.live_started is not None:
        context.live_started.set()
    last_sent = after_seq
    try:
        replayed_upto: int | None = None
        if after_seq is not None:
            upto = await newest_seq(context.engine)
            if after_seq > upto:
                raise GraphQLError(f"after: cursor {after_seq} is ahead of the change feed")
            async for row in replay(context.engine, interest, after=after_seq, upto=upto):
                last_sent = row.seq
                _fresh_loaders(context)
                yield row
            replayed_upto = upto
        if sub is None:
            return
        async for row in sub.rows():
            if replayed_upto is not None and row.seq <= replayed_upto:
                continue
            last_sent = row.seq
            _fresh_loaders(context)
            yield row
    except SubscriberTooSlow:
        await _close_slow(context, last_sent)
    finally:
        if sub is not None:
            hub.unsubscribe(sub)


def _fresh_loaders(context: Context) -> None:
    """Each event resolves its fields with new DataLoaders: a long-lived subscription must
    not answer from what its loaders cached for an earlier event."""
    context.__dict__.pop("loaders", None)  # Context.loaders is a cached_property


async def _close_slow(context: Context, last_sent: int | None) -> None:
    cursor = "none" if last_sent is None else str(last_sent)
    reason = f"subscriber too slow; resubscribe with after: {cursor}"
    log.warning("closing a websocket: %s", reason)
    ws = context.request
    if isinstance(ws, WebSocket) and ws.application_state is WebSocketState.CONNECTED:
        await ws.close(code=SLOW_SUBSCRIBER_CLOSE_CODE, reason=reason)
    raise GraphQLError(reason)
