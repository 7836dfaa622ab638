"""The change feed: a transactional outbox with a commit-ordered sequence.

Every committed change (order upserts and status changes, customer merges, loyalty and
interactions) appends rows here *in the same transaction* as the change itself. Rows are
appended under a transaction-scoped advisory lock, so ``seq`` order is commit order: once a
reader has seen ``seq = n`` committed, no row with a smaller ``seq`` can commit later. A
subscriber resuming ``after: n`` therefore misses nothing and sees nothing twice.

The same statement that appends the rows takes the lock (so it is held only from there to
the commit) and sends ``NOTIFY guestgraph_change_feed`` carrying the rows as a JSON array;
PostgreSQL delivers notifications in commit order, so a listener that stays connected hears
every committed row in sequence order without reading the table (``readmodel.relay``). Rows
too big for one notification are announced by their newest ``seq`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel.driver import driver
from readmodel.tables import change_feed

# pg_advisory_xact_lock key for "appending to the change feed" ('ggfeed' as an int64)
CHANGE_FEED_LOCK_KEY = 0x6767_6665_6564

# NOTIFY channel: append_changes notifies it in the same transaction, so listeners hear of
# new rows exactly when they commit (the payload is the newest seq appended).
CHANGE_FEED_CHANNEL = "guestgraph_change_feed"

# Topics. Payloads are JSON objects; ids in payloads are database ids (ints).
ORDER_UPSERTED = "order.upserted"
ORDER_STATUS_CHANGED = "order.status_changed"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_MERGED = "customer.merged"
CUSTOMER_SPLIT = "customer.split"
LOYALTY_CHANGED = "loyalty.changed"
INTERACTION_RECORDED = "interaction.recorded"
PREFERENCES_UPDATED = "preferences.updated"


@dataclass(frozen=True)
class Change:
    """One change-feed row to append. ``key`` identifies the entity (e.g. ``order:42``)."""

    topic: str
    key: str
    payload: dict[str, Any]
    customer_id: int | None = None
    order_id: int | None = None
    store_id: int | None = None


@dataclass(frozen=True)
class FeedRow:
    seq: int
    topic: str
    key: str
    customer_id: int | None
    order_id: int | None
    store_id: int | None
    payload: dict[str, Any] = field(default_factory=dict)


# One statement, so the lock is held from here to the commit and no longer: take the
# change-feed lock, insert the rows in the caller's order (the identity assigns ``seq`` after
# the lock, in that order), and NOTIFY with the rows themselves (JSON array, as
# ``rows_from_notification`` reads it), or with only the newest seq when they would not fit
# in a notification (listeners then read the feed). Fixed text over arrays on the driver
# connection (see readmodel.driver): prepared once per connection, whatever the batch size.
_APPEND = """
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock($7::bigint) AS ok),
appended AS (
  INSERT INTO change_feed (topic, key, payload, customer_id, order_id, store_id)
  SELECT v.topic, v.key, v.payload::jsonb, v.customer_id, v.order_id, v.store_id
  FROM locked CROSS JOIN unnest(
    $1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]
  ) WITH ORDINALITY AS v(topic, key, payload, customer_id, order_id, store_id, n)
  ORDER BY v.n
  RETURNING seq, topic, key, customer_id, order_id, store_id, payload
),
message AS (
  SELECT array_agg(seq ORDER BY seq) AS seqs, max(seq) AS newest,
    json_agg(json_build_object(
      'seq', seq, 'topic', topic, 'key', key, 'customer_id', customer_id,
      'order_id', order_id, 'store_id', store_id, 'payload', payload) ORDER BY seq)
      FILTER (WHERE $10::boolean)::text AS body
  FROM appended
)
SELECT seqs, pg_notify(
  $8::text,
  CASE WHEN octet_length(body) <= $9::int THEN body ELSE newest::text END)
FROM message
"""

# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
MAX_NOTIFY_BYTES = 7900
# a row's JSON takes at least this many bytes: more rows than MAX_NOTIFY_BYTES / this can
# never fit in a notification, so the statement does not build the JSON of a large batch
# (an import's 4,000 rows: about a megabyte, built to be thrown away)
MIN_ROW_JSON_BYTES = 100


async def append_changes(conn: AsyncConnection, changes: Sequence[Change]) -> list[int]:
    """Append ``changes`` inside the caller's transaction; return their sequence numbers.

    Call this as late as possible in the transaction: the advisory lock it takes is held
    until commit and serializes appenders. One round trip (lock, insert, notify).
    """
    if not changes:
        return []
    rows = await (await driver(conn)).fetch(
        _APPEND,
        [c.topic for c in changes],
        [c.key for c in changes],
        [orjson.dumps(c.payload, option=orjson.OPT_NON_STR_KEYS).decode() for c in changes],
        [c.customer_id for c in changes],
        [c.order_id for c in changes],
        [c.store_id for c in changes],
        CHANGE_FEED_LOCK_KEY,
        CHANGE_FEED_CHANNEL,
        MAX_NOTIFY_BYTES,
        len(changes) * MIN_ROW_JSON_BYTES <= MAX_NOTIFY_BYTES,
    )
    return [int(seq) for seq in rows[0]["seqs"]]


def row_from_json(raw: dict[str, Any]) -> FeedRow:
    """A row from its JSON form (notifications, Redis messages); KeyError/TypeError/
    ValueError when malformed."""
    payload = raw.get("payload") or {}
    if not isinstance(payload, dict):
        raise TypeError("payload is not an object")
    return FeedRow(
        seq=int(raw["seq"]),
        topic=str(raw["topic"]),
        key=str(raw["key"]),
        customer_id=raw.get("customer_id"),
        order_id=raw.get("order_id"),
        store_id=raw.get("store_id"),
        payload=payload,
    )


def rows_from_notification(payload: str) -> tuple[list[FeedRow] | None, int]:
    """Read a change-feed NOTIFY payload: (the rows, or None when only the newest seq was
    sent; the newest seq). ValueError/KeyError/TypeError when malformed."""
    if not payload.startswith("["):
        return None, int(payload)
    rows = [row_from_json(raw) for raw in orjson.loads(payload)]
    if not rows:
        raise ValueError("empty notification")
    return rows, rows[-1].seq


async def rows_after(conn: AsyncConnection, after: int, *, limit: int = 1000) -> list[FeedRow]:
    """Committed rows with ``seq > after``, oldest first."""
    result = await conn.execute(
        select(change_feed)
        .where(change_feed.c.seq > after)
        .order_by(change_feed.c.seq)
        .limit(limit)
    )
    return [
        FeedRow(
            seq=r.seq,
            topic=r.topic,
            key=r.key,
            customer_id=r.customer_id,
            order_id=r.order_id,
            store_id=r.store_id,
            payload=r.payload,
        )
        for r in result
    ]


async def last_seq(conn: AsyncConnection) -> int:
    value = await conn.scalar(text("SELECT coalesce(max(seq), 0) FROM change_feed"))
    return int(value or 0)
