"""Backfill in bulk: a batch of orders costs a fixed number of statements, and the bulk
paths write exactly what the one-by-one paths write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api import importer
from domain.events import StoreRef, StoreUpserted
from domain.model import Source
from readmodel.projector import apply_events
from readmodel.tables import (
    change_feed,
    customer_traits,
    customers,
    identity_ledger,
    ingest_inbox,
    order_line_items,
    order_status_history,
    orders,
    source_records,
)
from tests.ingest_support import square_order, toast_order_event


def order_rows(n: int, *, prefix: str = "BF", customers_every: int = 1) -> list[dict[str, Any]]:
    """``n`` Square orders with 3 line items; order i belongs to customer i // every."""
    rows = []
    for i in range(n):
        order = square_order(
            f"{prefix}{i:05d}",
            version=2,
            customer_id=f"{prefix}-C{i // customers_every}",
            location_id=f"LOC-{prefix}",
        )
        line = order["line_items"][0]
        order["line_items"] = [dict(line, uid=f"li-{k}") for k in range(3)]
        rows.append(order)
    return rows


# the driver's own type introspection (once per connection and type) and the pool's
# liveness pings and transaction control are not statements of the import
_NOT_COUNTED = (
    "WITH RECURSIVE typeinfo_tree",
    "SELECT current_setting('jit')",
    "SELECT set_config('jit'",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    ";",
)


@asynccontextmanager
async def counting_statements(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Every statement sent on ``engine``'s connections opened from now on: through
    SQLAlchemy and straight through the driver (``readmodel.driver``) alike."""
    seen: list[str] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda q: seen.append(q.query))

    def on_execute(*args: Any) -> None:
        seen.append(args[2])

    await engine.dispose()  # connections opened before would not be counted
    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "connect", on_connect)
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        await engine.dispose()
    seen[:] = [q for q in (" ".join(s.split()) for s in seen) if not q.startswith(_NOT_COUNTED)]


async def count_rows(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def import_statements(engine: AsyncEngine, path: Path, n: int) -> int:
    async with counting_statements(engine) as seen:
        summary = await importer.run_import(engine, path, "square-orders", batch_size=n)
    assert (summary.applied, summary.rejected) == (n, 0)
    return len(seen)


async def test_a_batch_of_orders_costs_the_same_statements_for_20_or_400_orders(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    small, large = tmp_path / "small.ndjson", tmp_path / "large.ndjson"
    small.write_bytes(importer.ndjson(order_rows(20, prefix="S")))
    large.write_bytes(importer.ndjson(order_rows(400, prefix="L")))
    statements = await import_statements(engine, small, 20)
    assert await import_statements(engine, large, 400) == statements
    # checkpoint read; savepoint and release; inbox rows; stores (look-up, the new one);
    # new customers (identity.link_records: locks, known records, customers, records,
    # ledger, golden fields); orders (existing, new); menu items; line items (COPY, not
    # counted here); status backlog; history; traits owed; change feed; checkpoint; then,
    # once per import, the end checkpointed again (two writers may each have recorded less)
    # and the traits settled (claim the debt, recompute, find none left)
    assert statements == 26, statements


async def test_orders_of_new_customers_create_the_customers_in_bulk(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(30, customers_every=3)))
    summary = await importer.run_import(engine, path, "square-orders", batch_size=30)
    assert summary.applied == 30
    assert await count_rows(engine, customers) == 10
    assert await count_rows(engine, source_records) == 10
    assert await count_rows(engine, identity_ledger) == 10
    async with engine.connect() as conn:
        traits = {
            r.customer_id: (r.order_count, r.total_spend_amount)
            for r in await conn.execute(select(customer_traits))
        }
        owners = {
            r.customer_id for r in await conn.execute(select(orders.c.customer_id).distinct())
        }
    assert set(traits) == owners and len(owners) == 10
    assert all(count == 3 and spend == 3 * 3154 for count, spend in traits.values())
    # every new order: one upsert and one status change in the feed; one history row
    assert await count_rows(engine, change_feed) == 60
    assert await count_rows(engine, order_status_history) == 30
    assert await count_rows(engine, order_line_items) == 90


async def test_a_card_number_in_an_imported_row_never_reaches_storage(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    order = order_rows(1)[0]
    order["note"] = "paid with 4111 1111 1111 1111, call back"
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson([order, *order_rows(2, prefix="OK")]))
    summary = await importer.run_import(engine, path, "square-orders")
    assert summary.applied == 3
    async with engine.connect() as conn:
        bodies = [bytes(r.raw_body) for r in await conn.execute(select(ingest_inbox.c.raw_body))]
        raws = [r.raw for r in await conn.execute(select(orders.c.raw))]
    assert not any(b"4111" in body for body in bodies)
    assert any(b"[card ****1111]" in body for body in bodies)
    assert [r["note"] for r in raws if "note" in r] == ["paid with [card ****1111], call back"]


async def test_an_older_version_in_a_later_file_only_adds_its_status_to_the_history(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.ndjson"
    newer.write_bytes(
        importer.ndjson([square_order(f"V{i}", version=5, state="COMPLETED") for i in range(5)])
    )
    older = tmp_path / "older.ndjson"
    older.write_bytes(
        importer.ndjson([square_order(f"V{i}", version=3, quantity="9") for i in range(5)])
    )
    content = select(
        orders.c.external_id,
        orders.c.status,
        orders.c.source_version,
        orders.c.total_amount,
        orders.c.raw,
        select(func.sum(order_line_items.c.quantity))
        .where(order_line_items.c.order_id == orders.c.id)
        .scalar_subquery(),
    ).order_by(orders.c.external_id)
    await importer.run_import(engine, newer, "square-orders")
    async with engine.connect() as conn:
        before = (await conn.execute(content)).all()
    late = await importer.run_import(engine, older, "square-orders")
    assert late.applied == 5
    async with engine.connect() as conn:
        after = (await conn.execute(content)).all()
        history = (
            await conn.execute(
                select(order_status_history.c.status, func.count()).group_by(
                    order_status_history.c.status
                )
            )
        ).all()
    assert after == before
    assert {(r.status, r.source_version) for r in after} == {("COMPLETED", 5)}
    assert dict(history) == {"COMPLETED": 5, "READY": 5}


async def test_toast_rows_take_their_stores_currency_and_one_guest_is_one_customer(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    yen, dollars = "rest-tokyo", "rest-unknown"
    async with engine.begin() as conn:
        await apply_events(
            conn, [StoreUpserted(StoreRef(Source.TOAST, yen, currency="JPY"))], actor="test"
        )
    rows = []
    for i, (restaurant, price) in enumerate([(yen, 1200), (dollars, 29.0)] * 3):
        order = toast_order_event(f"T{i}", restaurant=restaurant, price=price, tax=0, tip=0)
        rows.append({**order["details"]["order"], "restaurantGuid": restaurant})
    path = tmp_path / "toast.ndjson"
    path.write_bytes(importer.ndjson(rows))
    summary = await importer.run_import(engine, path, "toast-orders", batch_size=4)
    assert (summary.applied, summary.rejected) == (6, 0)
    async with engine.connect() as conn:
        stored = {
            (r.currency, r.total_amount, r.customer_id)
            for r in await conn.execute(
                select(orders.c.currency, orders.c.total_amount, orders.c.customer_id)
            )
        }
    assert {(currency, total) for currency, total, _ in stored} == {("JPY", 1200), ("USD", 2900)}
    assert len({customer for *_, customer in stored}) == 1
    assert await count_rows(engine, customers) == 1
