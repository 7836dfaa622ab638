"""Bulk projection of full orders: a batch of ``OrderUpserted`` in a fixed number of
set-based statements (backfill and grouped deliveries).

Same rules as ``Projector._order_upserted`` (version-guarded content, every reported status
kept once in the history, the current status resolved over the history, backlog statuses
joined, traits and change-feed rows), but a statement per *batch* instead of ~15 per order:
each statement takes the batch as arrays (``unnest``) or ``COPY`` on the driver connection
(``readmodel.driver``), so its text is fixed and prepared once per connection. Runs inside
the caller's projector so caches, traits and feed rows are shared; any error propagates,
and the caller falls back to the per-event path.

Statements per batch (pinned by a test): stores (one look-up), customers (one look-up of
known records, one of their survivors; new bare records linked together by
``readmodel.identity.link_records``), existing orders (locked), new orders,
menu items, line items (``COPY``), status backlog, status history; plus, only when needed,
the update of newer versions and the re-resolution of orders whose history grew.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from domain.events import CustomerRef, OrderUpserted, StoreRef
from domain.identity import CustomerRecord
from domain.model import OrderStatus, Source
from domain.order_status import StatusObservation, resolve_status
from readmodel import identity
from readmodel.driver import Driver, driver
from readmodel.projector import (
    _SET_STATUS,
    Projector,
    _is_newer,
    _milestones,
    _OrderRow,
    _seen_version,
)

# The bulk path shares the per-event path's private rules on purpose: one definition of
# "newer", of milestones and of the status update.

Key = tuple[str, str]

_EXISTING = """
SELECT o.id, o.source, o.external_id, o.store_id, o.customer_id, o.status, o.source_version
FROM orders o JOIN unnest($1::text[], $2::text[]) AS k(source, external_id)
  ON o.source = k.source AND o.external_id = k.external_id
ORDER BY o.id
FOR UPDATE OF o
"""

# content columns, in the order of ``_content``
_CONTENT = (
    ("store_id", "bigint"),
    ("customer_id", "bigint"),
    ("source_record_id", "bigint"),
    ("fulfillment", "text"),
    ("channel", "text"),
    ("currency", "text"),
    ("subtotal_amount", "bigint"),
    ("tax_amount", "bigint"),
    ("tip_amount", "bigint"),
    ("discount_amount", "bigint"),
    ("total_amount", "bigint"),
    ("source_version", "bigint"),
    ("placed_at", "timestamptz"),
    ("promised_at", "timestamptz"),
    ("raw", "text"),
)


def _unnest(columns: Sequence[tuple[str, str]], first: int = 1) -> str:
    args = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(columns))
    names = ", ".join(name for name, _ in columns)
    return f"unnest({args}) AS v({names})"


def _select(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"v.{name}::jsonb" if name == "raw" else f"v.{name}" for name, _ in columns)


_NEW_COLUMNS = (
    ("source", "text"),
    ("external_id", "text"),
    ("status", "text"),
    *_CONTENT,
    ("accepted_at", "timestamptz"),
    ("ready_at", "timestamptz"),
    ("completed_at", "timestamptz"),
)
_INSERT = f"""
INSERT INTO orders ({", ".join(name for name, _ in _NEW_COLUMNS)})
SELECT {_select(_NEW_COLUMNS)} FROM {_unnest(_NEW_COLUMNS)}
ON CONFLICT (source, external_id) DO NOTHING
RETURNING id, source, external_id
"""

_UPDATE = f"""
UPDATE orders o SET {
    ", ".join(
        f"{name} = {expr}"
        for name, expr in (
            (name, f"v.{name}::jsonb" if name == "raw" else f"v.{name}") for name, _ in _CONTENT
        )
    )
}, updated_at = now()
FROM {_unnest((("id", "bigint"), *_CONTENT))}
WHERE o.id = v.id
"""

_MENU = """
SELECT m.source, m.external_id, m.id
FROM menu_items m JOIN unnest($1::text[], $2::text[]) AS k(source, external_id)
  ON m.source = k.source AND m.external_id = k.external_id
"""

_LINE_COLUMNS = (
    "order_id",
    "position",
    "external_id",
    "name",
    "quantity",
    "unit_price_amount",
    "total_amount",
    "currency",
    "menu_item_id",
    "modifiers",
)

_BACKLOG = """
DELETE FROM order_status_backlog b
USING unnest($1::text[], $2::text[]) AS k(source, external_id)
WHERE b.source = k.source AND b.order_external_id = k.external_id
RETURNING b.source, b.order_external_id, b.status, b.at, b.source_version
"""

_HISTORY = """
INSERT INTO order_status_history (order_id, status, previous_status, at, source, source_version)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                     $6::bigint[])
ON CONFLICT (order_id, status, source_version) DO NOTHING
RETURNING order_id
"""

_SEEN = """
SELECT order_id, source_version, at, status FROM order_status_history
WHERE order_id = ANY($1::bigint[])
"""

People = dict[Key, tuple[int | None, int | None]]


async def _store_ids(projector: Projector, refs: Sequence[StoreRef]) -> dict[Key, int]:
    """Each store's id: known stores in one look-up, new ones created (the projector's rules)."""
    await projector.prime_stores(refs)
    return {(r.source.value, r.external_id): await projector.store_id(r) for r in refs}


async def _customers(projector: Projector, db: Driver, refs: Sequence[CustomerRef]) -> People:
    """(golden id, source record id) per reference. Bare references: known records in one
    look-up, new ones linked together (``identity.link_records``: they carry no match key,
    so each is a new customer); references carrying a record through the projector (which
    answers those its caller linked ahead with ``Projector.link_customers``)."""
    conn = projector.conn
    found: People = {}
    bare = sorted({(r.source.value, r.external_id) for r in refs if r.record is None})
    if bare:
        rows = await db.fetch(
            "SELECT sr.source, sr.external_id, sr.id, sr.customer_id FROM source_records sr"
            " JOIN unnest($1::text[], $2::text[]) AS k(source, external_id)"
            " ON sr.source = k.source AND sr.external_id = k.external_id",
            [k[0] for k in bare],
            [k[1] for k in bare],
        )
        canonical = await identity.canonical_customer_ids(conn, [r["customer_id"] for r in rows])
        for r in rows:
            owner = int(r["customer_id"])
            found[(r["source"], r["external_id"])] = (canonical.get(owner, owner), int(r["id"]))
        new = [CustomerRecord(Source(s), e) for s, e in bare if (s, e) not in found]
        if new:
            linked = await identity.link_records(
                conn, new, actor=projector.actor, policy=projector.policy
            )
            for key, link in linked.items():
                found[key] = (link.customer_id, link.source_record_id)
    for ref in refs:
        key = (ref.source.value, ref.external_id)
        if ref.record is not None or key not in found:
            # a record to link, or a bare one another transaction created meanwhile
            found[key] = await projector.customer(ref)
    return found


def _content(
    e: OrderUpserted, store_id: int, who: tuple[int | None, int | None]
) -> tuple[Any, ...]:
    return (
        store_id,
        who[0],
        who[1],
        e.fulfillment.value,
        e.channel,
        e.currency,
        e.subtotal_amount,
        e.tax_amount,
        e.tip_amount,
        e.discount_amount,
        e.total_amount,
        e.version,
        e.placed_at,
        e.promised_at,
        orjson.dumps(e.raw).decode(),
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Row tuples as one list per column (the arrays ``unnest`` takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


async def apply_orders(projector: Projector, events: Sequence[OrderUpserted]) -> None:
    """Apply full orders in bulk inside ``projector``'s transaction."""
    if not events:
        return
    db = await driver(projector.conn)
    by_order: dict[Key, list[OrderUpserted]] = defaultdict(list)
    for e in events:
        by_order[(e.source.value, e.external_id)].append(e)
    newest = {
        key: max(group, key=lambda e: (e.version is not None, e.version or 0))
        for key, group in by_order.items()
    }
    stores = await _store_ids(projector, [e.store for e in newest.values()])
    people = await _customers(projector, db, [e.customer for e in newest.values() if e.customer])

    def who(e: OrderUpserted) -> tuple[int | None, int | None]:
        if e.customer is None:
            return None, None
        return people[(e.customer.source.value, e.customer.external_id)]

    def store_of(e: OrderUpserted) -> int:
        return stores[(e.store.source.value, e.store.external_id)]

    keys = list(by_order)
    existing = await _existing(db, keys)

    # --- new orders: one insert; a key a concurrent transaction inserted first is updated --
    rows: dict[Key, _OrderRow] = dict(existing)
    fresh_keys: list[Key] = []
    candidates = [k for k in keys if k not in existing]
    if candidates:
        values = []
        for key in candidates:
            e = newest[key]
            m = _milestones(e.status, e.status_at)
            values.append(
                (
                    key[0],
                    key[1],
                    e.status.value,
                    *_content(e, store_of(e), who(e)),
                    m["accepted_at"],
                    m["ready_at"],
                    m["completed_at"],
                )
            )
        inserted = await db.fetch(_INSERT, *_columns(values, len(_NEW_COLUMNS)))
        for r in inserted:
            key = (r["source"], r["external_id"])
            e = newest[key]
            rows[key] = _OrderRow(int(r["id"]), store_of(e), who(e)[0], e.status, e.version)
            fresh_keys.append(key)
        raced = [k for k in candidates if k not in rows]
        if raced:
            late = await _existing(db, raced)
            existing.update(late)
            rows.update(late)
    # --- newer versions of stored orders: one update ---------------------------------------
    updated_keys = [k for k in existing if _is_newer(newest[k].version, existing[k].source_version)]
    if updated_keys:
        values = [
            (existing[k].id, *_content(newest[k], store_of(newest[k]), who(newest[k])))
            for k in updated_keys
        ]
        await db.execute(_UPDATE, *_columns(values, len(_CONTENT) + 1))
        for k in updated_keys:
            old = existing[k]
            projector.touch_customer(old.customer_id)
            e = newest[k]
            rows[k] = _OrderRow(old.id, store_of(e), who(e)[0], old.status, e.version)
        await db.execute(
            "DELETE FROM order_line_items WHERE order_id = ANY($1::bigint[])",
            [existing[k].id for k in updated_keys],
        )
    # --- line items of every new or replaced order -----------------------------------------
    written = [*fresh_keys, *updated_keys]
    await _lines(db, [(rows[k].id, newest[k]) for k in written])
    for k in written:
        projector.order_changed(rows[k], newest[k].source)
    for k in fresh_keys:
        projector.add_change(projector.status_change(rows[k], None, newest[k].status_at))
    await _history(projector, db, by_order, rows, fresh_keys)


async def _existing(db: Driver, keys: Sequence[Key]) -> dict[Key, _OrderRow]:
    """Stored orders among ``keys``, row-locked until commit."""
    found = await db.fetch(_EXISTING, [k[0] for k in keys], [k[1] for k in keys])
    return {
        (r["source"], r["external_id"]): _OrderRow(
            int(r["id"]),
            int(r["store_id"]),
            r["customer_id"],
            OrderStatus(r["status"]),
            r["source_version"],
        )
        for r in found
    }


async def _lines(db: Driver, orders_written: Sequence[tuple[int, OrderUpserted]]) -> None:
    """Every line of the given orders, in one ``COPY`` (menu items looked up once)."""
    catalog = sorted(
        {
            (e.source.value, ln.catalog_external_id)
            for _, e in orders_written
            for ln in e.lines
            if ln.catalog_external_id
        }
    )
    menu: dict[Key, int] = {}
    if catalog:
        menu = {
            (r["source"], r["external_id"]): int(r["id"])
            for r in await db.fetch(_MENU, [k[0] for k in catalog], [k[1] for k in catalog])
        }
    records = [
        (
            order_id,
            i,
            ln.external_id,
            ln.name,
            ln.quantity,
            ln.unit_price_amount,
            ln.total_amount,
            e.currency,
            menu.get((e.source.value, ln.catalog_external_id)) if ln.catalog_external_id else None,
            list(ln.modifiers),
        )
        for order_id, e in orders_written
        for i, ln in enumerate(e.lines)
    ]
    if records:
        await db.copy("order_line_items", _LINE_COLUMNS, records)


async def _history(
    projector: Projector,
    db: Driver,
    by_order: dict[Key, list[OrderUpserted]],
    rows: dict[Key, _OrderRow],
    fresh_keys: list[Key],
) -> None:
    """Every reported status once; re-resolve orders whose history grew beyond the one
    status they were inserted with."""
    observations: list[tuple[Any, ...]] = []
    for key, group in by_order.items():
        row = rows[key]
        for e in group:
            observations.append(
                (
                    row.id,
                    e.status.value,
                    row.status.value,
                    e.status_at,
                    e.source.value,
                    _seen_version(e.version, e.status_at),
                )
            )
    if fresh_keys:
        backlog = await db.fetch(_BACKLOG, [k[0] for k in fresh_keys], [k[1] for k in fresh_keys])
        for r in backlog:
            row = rows[(r["source"], r["order_external_id"])]
            observations.append(
                (row.id, r["status"], row.status.value, r["at"], r["source"], r["source_version"])
            )
    inserted = await db.fetch(_HISTORY, *_columns(observations, 6))
    grown: dict[int, int] = defaultdict(int)
    for r in inserted:
        grown[int(r["order_id"])] += 1
    fresh_ids = {rows[k].id for k in fresh_keys}
    to_resolve = sorted(i for i, n in grown.items() if i not in fresh_ids or n > 1)
    if not to_resolve:
        return
    history: dict[int, list[StatusObservation]] = defaultdict(list)
    for seen in await db.fetch(_SEEN, to_resolve):
        history[int(seen["order_id"])].append(
            StatusObservation(seen["source_version"] or 0, seen["at"], OrderStatus(seen["status"]))
        )
    resolved = {i: resolve_status(history[i]) for i in to_resolve}
    await projector.conn.execute(
        _SET_STATUS,
        [{"id": i, "status": r.status.value} for i, r in resolved.items() if r is not None],
    )
    by_id = {row.id: row for row in rows.values()}
    for i, now in resolved.items():
        assert now is not None
        row = by_id[i]
        if now.status is not row.status:
            projector.touch_customer(row.customer_id)
            moved = _OrderRow(row.id, row.store_id, row.customer_id, now.status, row.source_version)
            projector.add_change(projector.status_change(moved, row.status, now.at))
