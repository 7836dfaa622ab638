"""Bulk projection of full orders: a batch of ``OrderUpserted`` in a fixed number of
multi-row statements (backfill and grouped deliveries).

Same rules as ``Projector._order_upserted`` (version-guarded content, every reported status
kept once in the history, the current status resolved over the history, backlog statuses
joined, traits and change-feed rows), but a statement per *batch* instead of ~15 per order.
Runs inside the caller's projector so caches, traits and feed rows are shared; any error
propagates, and the caller falls back to the per-event path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from domain.events import CustomerRef, OrderUpserted
from domain.model import OrderStatus
from domain.order_status import StatusObservation, resolve_status
from readmodel import identity
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
from readmodel.tables import (
    menu_items,
    order_line_items,
    order_status_backlog,
    order_status_history,
    orders,
    source_records,
)

Key = tuple[str, str]


async def _customers(
    projector: Projector, refs: Sequence[CustomerRef]
) -> dict[Key, tuple[int | None, int | None]]:
    """(golden id, source record id) per reference: bare references to known records in
    one query; the rest through identity resolution, one by one."""
    conn = projector.conn
    found: dict[Key, tuple[int | None, int | None]] = {}
    bare = sorted({(r.source.value, r.external_id) for r in refs if r.record is None})
    if bare:
        rows = (
            await conn.execute(
                select(
                    source_records.c.source,
                    source_records.c.external_id,
                    source_records.c.id,
                    source_records.c.customer_id,
                ).where(tuple_(source_records.c.source, source_records.c.external_id).in_(bare))
            )
        ).all()
        canonical = await identity.canonical_customer_ids(conn, [r.customer_id for r in rows])
        for r in rows:
            found[(r.source, r.external_id)] = (canonical.get(r.customer_id, r.customer_id), r.id)
    for ref in refs:
        key = (ref.source.value, ref.external_id)
        if key not in found or ref.record is not None:
            found[key] = await projector.customer(ref)
    return found


async def apply_orders(projector: Projector, events: Sequence[OrderUpserted]) -> None:
    """Apply full orders in bulk inside ``projector``'s transaction."""
    if not events:
        return
    conn = projector.conn
    by_order: dict[Key, list[OrderUpserted]] = defaultdict(list)
    for e in events:
        by_order[(e.source.value, e.external_id)].append(e)
    newest = {
        key: max(group, key=lambda e: (e.version is not None, e.version or 0))
        for key, group in by_order.items()
    }
    stores = {key: await projector.store_id(e.store) for key, e in newest.items()}
    people = await _customers(projector, [e.customer for e in newest.values() if e.customer])

    def who(e: OrderUpserted) -> tuple[int | None, int | None]:
        if e.customer is None:
            return None, None
        return people[(e.customer.source.value, e.customer.external_id)]

    existing_rows = (
        await conn.execute(
            select(
                orders.c.id,
                orders.c.source,
                orders.c.external_id,
                orders.c.store_id,
                orders.c.customer_id,
                orders.c.status,
                orders.c.source_version,
            )
            .where(tuple_(orders.c.source, orders.c.external_id).in_(sorted(by_order)))
            .with_for_update()
        )
    ).all()
    existing = {
        (r.source, r.external_id): _OrderRow(
            r.id, r.store_id, r.customer_id, OrderStatus(r.status), r.source_version
        )
        for r in existing_rows
    }

    def content(e: OrderUpserted) -> dict[str, Any]:
        customer_id, record_id = who(e)
        return {
            "store_id": stores[(e.source.value, e.external_id)],
            "customer_id": customer_id,
            "source_record_id": record_id,
            "fulfillment": e.fulfillment.value,
            "channel": e.channel,
            "currency": e.currency,
            "subtotal_amount": e.subtotal_amount,
            "tax_amount": e.tax_amount,
            "tip_amount": e.tip_amount,
            "discount_amount": e.discount_amount,
            "total_amount": e.total_amount,
            "source_version": e.version,
            "placed_at": e.placed_at,
            "promised_at": e.promised_at,
            "raw": dict(e.raw),
        }

    # --- new orders: one multi-row insert ------------------------------------------------
    fresh_keys = [k for k in by_order if k not in existing]
    rows: dict[Key, _OrderRow] = dict(existing)
    if fresh_keys:
        values = []
        for key in fresh_keys:
            e = newest[key]
            values.append(
                {
                    "source": e.source.value,
                    "external_id": e.external_id,
                    "status": e.status.value,
                    **content(e),
                    **_milestones(e.status, e.status_at),
                }
            )
        inserted = await conn.execute(
            pg_insert(orders)
            .values(values)
            .returning(orders.c.id, orders.c.source, orders.c.external_id)
        )
        for r in inserted:
            e = newest[(r.source, r.external_id)]
            customer_id, _ = who(e)
            rows[(r.source, r.external_id)] = _OrderRow(
                r.id, stores[(r.source, r.external_id)], customer_id, e.status, e.version
            )
    # --- newer versions of stored orders: executemany update -------------------------------
    updated_keys = [k for k in existing if _is_newer(newest[k].version, existing[k].source_version)]
    if updated_keys:
        await conn.execute(
            update(orders)
            .where(orders.c.id == bindparam("order_id"))
            .values({c: bindparam(f"v_{c}") for c in content(newest[updated_keys[0]])}),
            [
                {"order_id": existing[k].id, **{f"v_{c}": v for c, v in content(newest[k]).items()}}
                for k in updated_keys
            ],
        )
        for k in updated_keys:
            old = existing[k]
            projector.touch_customer(old.customer_id)
            customer_id, _ = who(newest[k])
            rows[k] = _OrderRow(old.id, stores[k], customer_id, old.status, newest[k].version)
        await conn.execute(
            delete(order_line_items).where(
                order_line_items.c.order_id.in_([existing[k].id for k in updated_keys])
            )
        )
    # --- line items of every new or replaced order ------------------------------------------
    written = [*fresh_keys, *updated_keys]
    catalog = sorted(
        {
            (newest[k].source.value, ln.catalog_external_id)
            for k in written
            for ln in newest[k].lines
            if ln.catalog_external_id
        }
    )
    menu: dict[Key, int] = {}
    if catalog:
        menu = {
            (r.source, r.external_id): r.id
            for r in await conn.execute(
                select(menu_items.c.source, menu_items.c.external_id, menu_items.c.id).where(
                    tuple_(menu_items.c.source, menu_items.c.external_id).in_(catalog)
                )
            )
        }
    lines = [
        {
            "order_id": rows[k].id,
            "position": i,
            "external_id": ln.external_id,
            "name": ln.name,
            "quantity": ln.quantity,
            "unit_price_amount": ln.unit_price_amount,
            "total_amount": ln.total_amount,
            "currency": newest[k].currency,
            "menu_item_id": menu.get((newest[k].source.value, ln.catalog_external_id or "")),
            "modifiers": list(ln.modifiers),
        }
        for k in written
        for i, ln in enumerate(newest[k].lines)
    ]
    if lines:
        await conn.execute(insert(order_line_items), lines)
    for k in written:
        projector.order_changed(rows[k], newest[k].source)
    for k in fresh_keys:
        projector.add_change(projector.status_change(rows[k], None, newest[k].status_at))
    await _history(projector, by_order, newest, rows, fresh_keys)


async def _history(
    projector: Projector,
    by_order: dict[Key, list[OrderUpserted]],
    newest: dict[Key, OrderUpserted],
    rows: dict[Key, _OrderRow],
    fresh_keys: list[Key],
) -> None:
    """Every reported status once; re-resolve orders whose history grew beyond the one
    status they were inserted with."""
    conn = projector.conn
    observations: list[dict[str, Any]] = []
    for key, group in by_order.items():
        for e in group:
            observations.append(
                {
                    "order_id": rows[key].id,
                    "status": e.status.value,
                    "previous_status": rows[key].status.value,
                    "at": e.status_at,
                    "source": e.source.value,
                    "source_version": _seen_version(e.version, e.status_at),
                }
            )
    backlog = await conn.execute(
        delete(order_status_backlog)
        .where(
            tuple_(order_status_backlog.c.source, order_status_backlog.c.order_external_id).in_(
                fresh_keys or [("", "")]
            )
        )
        .returning(
            order_status_backlog.c.source,
            order_status_backlog.c.order_external_id,
            order_status_backlog.c.status,
            order_status_backlog.c.at,
            order_status_backlog.c.source_version,
        )
    )
    for r in backlog:
        key = (r.source, r.order_external_id)
        observations.append(
            {
                "order_id": rows[key].id,
                "status": r.status,
                "previous_status": rows[key].status.value,
                "at": r.at,
                "source": r.source,
                "source_version": r.source_version,
            }
        )
    inserted = await conn.execute(
        pg_insert(order_status_history)
        .values(observations)
        .on_conflict_do_nothing(index_elements=["order_id", "status", "source_version"])
        .returning(order_status_history.c.order_id)
    )
    grown: dict[int, int] = defaultdict(int)
    for r in inserted:
        grown[r.order_id] += 1
    fresh_ids = {rows[k].id for k in fresh_keys}
    to_resolve = sorted(i for i, n in grown.items() if i not in fresh_ids or n > 1)
    if not to_resolve:
        return
    history: dict[int, list[StatusObservation]] = defaultdict(list)
    for seen in await conn.execute(
        select(
            order_status_history.c.order_id,
            order_status_history.c.source_version,
            order_status_history.c.at,
            order_status_history.c.status,
        ).where(order_status_history.c.order_id.in_(to_resolve))
    ):
        history[seen.order_id].append(
            StatusObservation(seen.source_version or 0, seen.at, OrderStatus(seen.status))
        )
    by_id = {row.id: row for row in rows.values()}
    await conn.execute(
        _SET_STATUS,
        [
            {"id": i, "status": resolve_status(history[i]).status.value}  # type: ignore[union-attr]
            for i in to_resolve
        ],
    )
    for i in to_resolve:
        resolved = resolve_status(history[i])
        assert resolved is not None
        row = by_id[i]
        if resolved.status is not row.status:
            projector.touch_customer(row.customer_id)
            moved = _OrderRow(
                row.id, row.store_id, row.customer_id, resolved.status, row.source_version
            )
            projector.add_change(projector.status_change(moved, row.status, resolved.at))
