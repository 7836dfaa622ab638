"""The ingest inbox: one row per received source event, unique on (source, event id).

A row is written in the same transaction as the event's effects, so "acknowledged" means
"durable". Statuses: ``applied``, ``rejected`` (kept with the reason: a dead letter that
``guestgraph inbox replay`` can re-run), ``pending`` (accepted, waiting for the background
fetcher to complete a thin event). ``duplicate`` is only ever an answer, never a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import InboxStatus
from readmodel.driver import driver
from readmodel.tables import ingest_inbox


@dataclass(frozen=True)
class InboxRow:
    id: int
    source: str
    event_id: str
    event_type: str | None
    status: InboxStatus
    reason: str | None
    raw_body: bytes
    headers: dict[str, Any]
    received_at: datetime
    attempts: int
    store_scope: frozenset[int] | None = None  # the stores its events were limited to


def _row(r: Any) -> InboxRow:
    return InboxRow(
        r.id,
        r.source,
        r.event_id,
        r.event_type,
        InboxStatus(r.status),
        r.reason,
        bytes(r.raw_body),
        dict(r.headers),
        r.received_at,
        r.attempts,
        None if r.store_scope is None else frozenset(int(i) for i in r.store_scope),
    )


async def record(
    conn: AsyncConnection,
    *,
    source: str,
    event_id: str,
    event_type: str | None,
    status: InboxStatus,
    raw_body: bytes,
    headers: Mapping[str, str] | None = None,
    reason: str | None = None,
    store_scope: frozenset[int] | None = None,
) -> int | None:
    """Insert the event's row; None when (source, event id) is already there (a replay).

    A ``pending`` row is due for the background fetcher at once. ``store_scope``: the stores
    the sender may write to (None: any), kept so a replay applies the event the same way."""
    inserted = (
        await conn.execute(
            pg_insert(ingest_inbox)
            .values(
                source=source,
                event_id=event_id,
                event_type=event_type,
                status=status.value,
                reason=reason,
                raw_body=raw_body,
                headers=dict(headers or {}),
                processed_at=None if status is InboxStatus.PENDING else func.now(),
                next_attempt_at=func.now() if status is InboxStatus.PENDING else None,
                store_scope=None if store_scope is None else sorted(store_scope),
            )
            .on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(ingest_inbox.c.id)
        )
    ).scalar_one_or_none()
    return None if inserted is None else int(inserted)


_RECORD_MANY = """
INSERT INTO ingest_inbox (source, event_id, event_type, status, reason, raw_body, headers,
                          processed_at, store_scope)
SELECT v.source, v.event_id, v.event_type, v.status, v.reason, v.raw_body, v.headers::jsonb,
       now(), $8::bigint[]
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
            $7::text[]) AS v(source, event_id, event_type, status, reason, raw_body, headers)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id, source, event_id
"""


async def record_many(
    conn: AsyncConnection,
    rows: Sequence[Mapping[str, Any]],
    *,
    store_scope: frozenset[int] | None = None,
) -> dict[tuple[str, str], int]:
    """Insert ``applied`` rows (source, event_id, event_type, raw_body, headers; a row may
    also carry ``status`` ``rejected`` and its ``reason``) in one statement; return the ids
    of those that were new, by (source, event id). ``store_scope``: as for ``record``."""
    if not rows:
        return {}
    unique = rows
    result = await (await driver(conn)).fetch(
        _RECORD_MANY,
        [r["source"] for r in unique],
        [r["event_id"] for r in unique],
        [r.get("event_type") for r in unique],
        [r.get("status", InboxStatus.APPLIED.value) for r in unique],
        [r.get("reason") for r in unique],
        [bytes(r["raw_body"]) for r in unique],
        [orjson.dumps(dict(r.get("headers") or {})).decode() for r in unique],
        None if store_scope is None else sorted(store_scope),
    )
    return {(r["source"], r["event_id"]): int(r["id"]) for r in result}


async def set_status(
    conn: AsyncConnection, row_id: int, status: InboxStatus, *, reason: str | None = None
) -> None:
    await conn.execute(
        update(ingest_inbox)
        .where(ingest_inbox.c.id == row_id)
        .values(
            status=status.value,
            reason=reason,
            processed_at=func.now(),
            next_attempt_at=None if status is not InboxStatus.PENDING else func.now(),
        )
    )


async def get(conn: AsyncConnection, row_id: int) -> InboxRow | None:
    r = (await conn.execute(select(ingest_inbox).where(ingest_inbox.c.id == row_id))).first()
    return None if r is None else _row(r)


async def find(conn: AsyncConnection, source: str, event_id: str) -> InboxRow | None:
    r = (
        await conn.execute(
            select(ingest_inbox)
            .where(ingest_inbox.c.source == source)
            .where(ingest_inbox.c.event_id == event_id)
        )
    ).first()
    return None if r is None else _row(r)


async def list_rows(
    conn: AsyncConnection, *, status: InboxStatus | None = None, limit: int = 100
) -> list[InboxRow]:
    query = select(ingest_inbox).order_by(ingest_inbox.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(ingest_inbox.c.status == status.value)
    return [_row(r) for r in await conn.execute(query)]


async def ids_with_status(conn: AsyncConnection, status: InboxStatus) -> list[int]:
    rows = await conn.execute(
        select(ingest_inbox.c.id)
        .where(ingest_inbox.c.status == status.value)
        .order_by(ingest_inbox.c.id)
    )
    return [int(r.id) for r in rows]


async def claim_due(conn: AsyncConnection, *, limit: int, lease: timedelta) -> list[InboxRow]:
    """Pending rows whose next attempt is due, leased for ``lease`` (commit to take them).

    SKIP LOCKED lets several processes share the work; the lease keeps a row from being
    fetched twice while one process works on it, and frees it if that process dies.
    """
    result = await conn.execute(
        text(
            """
UPDATE ingest_inbox SET next_attempt_at = now() + :lease, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM ingest_inbox
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""
        ),
        {"lease": lease, "limit": limit},
    )
    return [_row(r) for r in result]


async def retry_later(conn: AsyncConnection, row_id: int, *, delay: timedelta, reason: str) -> None:
    await conn.execute(
        update(ingest_inbox)
        .where(ingest_inbox.c.id == row_id)
        .where(ingest_inbox.c.status == InboxStatus.PENDING.value)
        .values(next_attempt_at=func.now() + delay, reason=reason)
    )


async def lock_pending(conn: AsyncConnection, row_id: int) -> bool:
    """Lock a row for completion; False if it is no longer pending (another worker won)."""
    status = (
        await conn.execute(
            select(ingest_inbox.c.status).where(ingest_inbox.c.id == row_id).with_for_update()
        )
    ).scalar_one_or_none()
    return status == InboxStatus.PENDING.value


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(ingest_inbox.c.status, func.count()).group_by(ingest_inbox.c.status)
    )
    return {r[0]: int(r[1]) for r in rows}
