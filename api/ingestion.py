"""Ingestion orchestration: raw source bytes → deliveries → one transaction each.

Shared by the webhooks, ``POST /ingest/events``, the background fetcher, ``guestgraph
import`` and ``guestgraph inbox replay``: every path records the inbox row and the event's
effects in the same transaction, so what was acknowledged is durable and a replay of the
same (source, event id) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.cards import scrub_json, scrub_text
from domain.events import (
    ContactFetchNeeded,
    DomainEvent,
    Ignored,
    OrderFetchNeeded,
    OrderUpserted,
)
from domain.matching import MatchPolicy
from domain.model import InboxStatus, Source
from domain.sources import hubspot, salesforce, square, toast
from domain.sources.common import ParseError
from readmodel import bulk, inbox
from readmodel.projector import ProjectionError, Projector, store_currencies

log = logging.getLogger("guestgraph.ingest")

# headers worth keeping with a stored event (never signatures or credentials)
# batches of at least this many full orders take the bulk path
BULK_MIN = 2
BULK_MAX = 1000  # keeps multi-row statements under PostgreSQL's bind-parameter limit

KEPT_HEADERS = (
    "square-retry-number",
    "square-retry-reason",
    "square-initial-delivery-timestamp",
    "toast-attempt-number",
    "toast-event-type",
    "webhook-id",
    "webhook-timestamp",
)


@dataclass(frozen=True)
class Delivery:
    """One source event, ready to record: either mapped ``events`` or an ``error``."""

    source: Source
    event_id: str
    event_type: str | None
    raw_body: bytes
    events: Sequence[DomainEvent] = ()
    error: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_fetch(self) -> bool:
        return any(isinstance(e, OrderFetchNeeded | ContactFetchNeeded) for e in self.events)


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: str  # applied | duplicate | rejected | pending
    reason: str | None = None
    inbox_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.status == "duplicate":
            body["duplicate"] = True
        if self.reason:
            body["reason"] = self.reason
        return body


class Malformed(Exception):
    """The body is not JSON at all."""


# SQLSTATE classes that say "try again", not "this event is bad": transaction rollback
# (deadlock, serialization failure), connection trouble, insufficient resources, operator
# intervention (statement timeout, shutdown), lock not available.
_TRANSIENT = ("40", "08", "53", "57", "55P03")


def transient(exc: DBAPIError) -> bool:
    """True for a database error that says nothing about the event (retry it later)."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
    return exc.connection_invalidated or str(code).startswith(_TRANSIENT)


def _db_reason(exc: DBAPIError) -> str:
    """A database refusal (a value out of range, a constraint) as a one-line reason."""
    return f"database refused the event: {str(exc.orig).splitlines()[0]}"


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: headers[k] for k in KEPT_HEADERS if k in headers}


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def decode(body: bytes) -> tuple[Any, bytes]:
    """Parse JSON and scrub card numbers; return (value, bytes safe to store).

    Raises Malformed (with the scrubbed text kept nowhere but the caller's reject row).
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"malformed JSON: {exc}") from None
    return scrubbed(body, value)


def scrubbed(body: bytes, value: Any) -> tuple[Any, bytes]:
    """``value`` (``body`` parsed) with card numbers scrubbed, and the bytes safe to store."""
    clean = scrub_json(value)
    if clean != value:
        return clean, orjson.dumps(clean)
    return value, body


def rejected_body(body: bytes) -> bytes:
    """A malformed body as it may be stored: card numbers scrubbed from its text."""
    return scrub_text(body.decode("utf-8", "replace")).encode()


def _malformed(source: Source, body: bytes, reason: str) -> Delivery:
    return Delivery(source, body_digest(body), None, rejected_body(body), error=reason)


def square_deliveries(body: bytes) -> list[Delivery]:
    try:
        value, stored = decode(body)
    except Malformed as exc:
        return [_malformed(Source.SQUARE, body, str(exc))]
    try:
        envelope = square.parse_event(value)
    except ParseError as exc:
        return [_unmappable(Source.SQUARE, value, stored, str(exc))]
    return [
        Delivery(Source.SQUARE, envelope.event_id, envelope.event_type, stored, envelope.events)
    ]


def _unmappable(
    source: Source,
    value: Any,
    stored: bytes,
    reason: str,
    headers: Mapping[str, str] | None = None,
) -> Delivery:
    """A JSON payload that cannot be mapped: keyed by its event id if it has one."""
    event_id = None
    if isinstance(value, dict):
        for key in ("event_id", "guid", "eventId", "id"):
            if isinstance(value.get(key), str | int) and str(value[key]).strip():
                event_id = f"{value[key]}"
                break
    ident = event_id or body_digest(stored)
    return Delivery(source, ident, None, stored, error=reason, headers=headers or {})


@dataclass(frozen=True)
class Unmapped:
    """A Toast body, decoded but not mapped yet: Toast omits the currency, so mapping needs
    the restaurant's, read in the ingesting transaction (one query for a whole batch)."""

    value: Any
    stored: bytes
    restaurant: str | None
    headers: Mapping[str, str] = field(default_factory=dict)

    def mapped(self, currency: str | None) -> Delivery:
        try:
            envelope = toast.parse_event(self.value, currency=currency or "USD")
        except ParseError as exc:
            return _unmappable(Source.TOAST, self.value, self.stored, str(exc), self.headers)
        return Delivery(
            Source.TOAST,
            envelope.event_id,
            envelope.event_type,
            self.stored,
            envelope.events,
            headers=self.headers,
        )


Received = Delivery | Unmapped


def toast_received(body: bytes, value: Any = None) -> Received:
    """A Toast body as received. ``value``: the body already parsed (signature check)."""
    try:
        value, stored = decode(body) if value is None else scrubbed(body, value)
    except Malformed as exc:
        return _malformed(Source.TOAST, body, str(exc))
    try:
        restaurant = toast.restaurant_guid(value)
    except ParseError as exc:
        return _unmappable(Source.TOAST, value, stored, str(exc))
    return Unmapped(value, stored, restaurant)


async def mapped(
    conn: AsyncConnection, received: Sequence[Received], projector: Projector | None = None
) -> list[Delivery]:
    """Every received body as a delivery; the currencies of the Toast restaurants among them
    read in one query (which also tells ``projector`` their store ids)."""
    restaurants = {r.restaurant for r in received if isinstance(r, Unmapped) and r.restaurant}
    currencies: dict[str, str] = {}
    if restaurants and projector is not None:
        currencies = await projector.store_currencies(Source.TOAST, restaurants)
    elif restaurants:
        currencies = await store_currencies(conn, Source.TOAST, restaurants)
    return [
        r.mapped(currencies.get(r.restaurant or "")) if isinstance(r, Unmapped) else r
        for r in received
    ]


async def toast_deliveries(conn: AsyncConnection, body: bytes) -> list[Delivery]:
    return await mapped(conn, [toast_received(body)])


def hubspot_deliveries(body: bytes) -> list[Delivery]:
    try:
        value, _ = decode(body)
    except Malformed as exc:
        return [_malformed(Source.HUBSPOT, body, str(exc))]
    items = value if isinstance(value, list) else [value]
    deliveries = []
    for index, item in enumerate(items):
        stored = orjson.dumps(item)
        try:
            [parsed] = hubspot.parse_batch([item])
        except ParseError as exc:
            reason = str(exc).replace("[0]", f"[{index}]", 1)
            deliveries.append(_unmappable(Source.HUBSPOT, item, stored, reason))
            continue
        deliveries.append(
            Delivery(Source.HUBSPOT, parsed.event_id, parsed.event_type, stored, parsed.events)
        )
    return deliveries


def salesforce_deliveries(body: bytes, delivery_id: str | None) -> list[Delivery]:
    try:
        value, stored = decode(body)
    except Malformed as exc:
        return [_malformed(Source.SALESFORCE, body, str(exc))]
    try:
        envelope = salesforce.parse_event(value)
    except ParseError as exc:
        ident = delivery_id or body_digest(stored)
        return [Delivery(Source.SALESFORCE, ident, None, stored, error=str(exc))]
    event_id = envelope.event_id or delivery_id or body_digest(stored)
    return [Delivery(Source.SALESFORCE, event_id, envelope.event_type, stored, envelope.events)]


async def deliveries_for(
    engine: AsyncEngine, source: Source, body: bytes, headers: Mapping[str, str]
) -> list[Delivery]:
    """Map a stored or received body of ``source`` (used by replay and the webhooks)."""
    if source is Source.SQUARE:
        return square_deliveries(body)
    if source is Source.TOAST:
        async with engine.connect() as conn:
            return await toast_deliveries(conn, body)
    if source is Source.HUBSPOT:
        return hubspot_deliveries(body)
    if source is Source.SALESFORCE:
        return salesforce_deliveries(body, headers.get("webhook-id"))
    raise ValueError(f"no webhook mapping for {source}")


async def ingest(
    engine: AsyncEngine,
    deliveries: Sequence[Received],
    *,
    actor: str,
    store_scope: frozenset[int] | None = None,
    policy: MatchPolicy | None = None,
) -> list[Outcome]:
    """Record and apply ``deliveries`` in ONE transaction (one savepoint each).

    ``policy`` is the identity matching configuration (``Settings.match_policy()``)."""
    async with engine.begin() as conn:
        return await ingest_in(
            conn, deliveries, actor=actor, store_scope=store_scope, policy=policy
        )


async def ingest_in(
    conn: AsyncConnection,
    received: Sequence[Received],
    *,
    actor: str,
    store_scope: frozenset[int] | None = None,
    policy: MatchPolicy | None = None,
    defer_traits: bool = False,
) -> list[Outcome]:
    """Like ``ingest``, in the caller's transaction. Each delivery's effects are applied
    in a savepoint: one that cannot be applied is rolled back alone and kept as rejected.
    ``defer_traits``: record the touched customers as owing their traits (imports)."""
    projector = Projector(
        conn, actor=actor, store_scope=store_scope, policy=policy, defer_traits=defer_traits
    )
    deliveries = await mapped(conn, received, projector)
    outcomes = await _ingest_bulk(conn, projector, deliveries)
    if outcomes is None:
        outcomes = [await _ingest_one(conn, projector, d) for d in deliveries]
    await projector.finish()
    return outcomes


def bulkable(d: Delivery) -> bool:
    """A delivery that mapped to full orders only: it can take the bulk path."""
    return (
        d.error is None and bool(d.events) and all(isinstance(e, OrderUpserted) for e in d.events)
    )


async def _ingest_bulk(
    conn: AsyncConnection, projector: Projector, deliveries: Sequence[Delivery]
) -> list[Outcome] | None:
    if not BULK_MIN <= len(deliveries) <= BULK_MAX or not all(bulkable(d) for d in deliveries):
        return None
    return await ingest_orders_in_bulk(conn, projector, deliveries)


async def ingest_orders_in_bulk(
    conn: AsyncConnection,
    projector: Projector,
    deliveries: Sequence[Delivery],
    *,
    raise_transient: bool = False,
) -> list[Outcome] | None:
    """Deliveries of full orders (``bulkable``) in bulk: inbox rows in one statement, orders
    in a handful (see ``readmodel.bulk``). None when a row cannot be applied: the savepoint
    rolls back and the caller takes the per-delivery path. The caller finishes ``projector``.
    ``raise_transient``: a transient database error (a deadlock with a concurrent batch, a
    lost connection) is raised for the caller to retry the batch, instead of falling back."""
    mark = projector.mark()
    try:
        async with conn.begin_nested():
            fresh = await inbox.record_many(
                conn,
                [
                    {
                        "source": d.source.value,
                        "event_id": d.event_id,
                        "event_type": d.event_type,
                        "raw_body": d.raw_body,
                        "headers": dict(d.headers),
                    }
                    # in key order: two batches in flight with the same deliveries insert
                    # (and wait on) their rows in the same order, never in a cycle
                    for d in sorted(deliveries, key=lambda d: (d.source.value, d.event_id))
                ],
                store_scope=projector.store_scope,
            )
            applied = [d for d in deliveries if (d.source.value, d.event_id) in fresh]
            events = [e for d in applied for e in d.events if isinstance(e, OrderUpserted)]
            await projector.prime_stores(e.store for e in events)
            await projector.link_customers(e.customer for e in events)
            await bulk.apply_orders(projector, events)
    except (ProjectionError, DBAPIError) as exc:
        if raise_transient and isinstance(exc, DBAPIError) and transient(exc):
            raise
        projector.rolled_back(mark)
        log.info("bulk apply fell back to one delivery at a time: %s", exc)
        return None
    outcomes = []
    seen: set[tuple[str, str]] = set()
    for d in deliveries:
        key = (d.source.value, d.event_id)
        first = key in fresh and key not in seen
        seen.add(key)
        status = "applied" if first else "duplicate"
        outcomes.append(Outcome(d.event_id, status, None, fresh.get(key) if first else None))
    return outcomes


async def _ingest_one(conn: AsyncConnection, projector: Projector, d: Delivery) -> Outcome:
    source = d.source.value
    if d.error is not None:
        row = await inbox.record(
            conn,
            source=source,
            event_id=d.event_id,
            event_type=d.event_type,
            status=InboxStatus.REJECTED,
            raw_body=d.raw_body,
            headers=d.headers,
            reason=d.error,
            store_scope=projector.store_scope,
        )
        if row is None:
            return Outcome(d.event_id, "duplicate")
        log.warning("rejected %s event %s: %s", source, d.event_id, d.error)
        return Outcome(d.event_id, "rejected", d.error, row)
    ignored = [e.reason for e in d.events if isinstance(e, Ignored)]
    status = InboxStatus.PENDING if d.needs_fetch else InboxStatus.APPLIED
    row = await inbox.record(
        conn,
        source=source,
        event_id=d.event_id,
        event_type=d.event_type,
        status=status,
        raw_body=d.raw_body,
        headers=d.headers,
        reason="; ".join(ignored) or None,
        store_scope=projector.store_scope,
    )
    if row is None:
        return Outcome(d.event_id, "duplicate")
    mark = projector.mark()
    try:
        async with conn.begin_nested():
            await projector.apply(d.events)
    except (ProjectionError, DBAPIError) as exc:
        if isinstance(exc, DBAPIError) and transient(exc):
            raise  # the whole transaction fails: the sender is told to retry, nothing is kept
        # the savepoint rolled back this delivery's effects (and its pending feed rows);
        # the inbox row stays, as rejected with the reason
        projector.rolled_back(mark)
        reason = exc.reason if isinstance(exc, ProjectionError) else _db_reason(exc)
        await inbox.set_status(conn, row, InboxStatus.REJECTED, reason=reason)
        log.warning("rejected %s event %s: %s", source, d.event_id, reason)
        return Outcome(d.event_id, "rejected", reason, row)
    return Outcome(d.event_id, status.value, "; ".join(ignored) or None, row)


# --- re-running stored events (guestgraph inbox replay) ----------------------------------------


async def redeliver(engine: AsyncEngine, row: inbox.InboxRow) -> list[Delivery]:
    """Map a stored inbox row again, with today's mappers."""
    from api import importer  # import rows are mapped by their file kind

    source = Source(row.source)
    if row.event_type and row.event_type.startswith(importer.EVENT_TYPE_PREFIX):
        kind = row.event_type.removeprefix(importer.EVENT_TYPE_PREFIX)
        async with engine.connect() as conn:
            return [await importer.delivery_for(conn, kind, orjson.loads(row.raw_body))]
    if source is Source.CANONICAL:
        return [importer.canonical_delivery("replay", orjson.loads(row.raw_body))]
    return await deliveries_for(engine, source, row.raw_body, row.headers)


async def replay(
    engine: AsyncEngine, row_id: int, *, actor: str, policy: MatchPolicy | None = None
) -> Outcome:
    """Re-run one stored event (a rejected one, after a fix). Its row keeps its id. The event
    is applied under the store scope stored with the row (a partner's events never reach
    stores outside its scope, whoever replays them); ``policy``: identity matching."""
    async with engine.connect() as conn:
        row = await inbox.get(conn, row_id)
    if row is None:
        raise LookupError(f"no inbox row {row_id}")
    deliveries = await redeliver(engine, row)
    failed = next((d.error for d in deliveries if d.error), None)
    async with engine.begin() as conn:
        if failed is not None:
            await inbox.set_status(conn, row.id, InboxStatus.REJECTED, reason=failed)
            return Outcome(row.event_id, "rejected", failed, row.id)
        # under the limits it first arrived with: a partner's events stay in its stores
        projector = Projector(conn, actor=actor, store_scope=row.store_scope, policy=policy)
        try:
            async with conn.begin_nested():
                for d in deliveries:
                    await projector.apply(d.events)
                await projector.finish()
        except ProjectionError as exc:
            await inbox.set_status(conn, row.id, InboxStatus.REJECTED, reason=exc.reason)
            return Outcome(row.event_id, "rejected", exc.reason, row.id)
        pending = any(d.needs_fetch for d in deliveries)
        status = InboxStatus.PENDING if pending else InboxStatus.APPLIED
        await inbox.set_status(conn, row.id, status)
    return Outcome(row.event_id, status.value, None, row.id)
