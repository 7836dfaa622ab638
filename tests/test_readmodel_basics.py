"""The shared read-model building blocks: change feed, traits, loyalty ledger, record linking."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.model import OrderStatus, Source
from readmodel import changefeed, identity, loyalty, traits
from readmodel.tables import customer_traits, loyalty_accounts
from tests.factories import make_customer, make_menu_item, make_order, make_store


async def test_change_feed_sequence_follows_commit_order(engine: AsyncEngine) -> None:
    """A transaction that appends later, commits later: readers never see a seq appear behind."""
    first_locked = asyncio.Event()
    release_first = asyncio.Event()

    async def slow_writer() -> list[int]:
        async with engine.begin() as conn:
            seqs = await changefeed.append_changes(conn, [changefeed.Change("t", "k:1", {"n": 1})])
            first_locked.set()
            await release_first.wait()
            return seqs

    async def fast_writer() -> list[int]:
        await first_locked.wait()
        async with engine.begin() as conn:
            return await changefeed.append_changes(conn, [changefeed.Change("t", "k:2", {"n": 2})])

    slow = asyncio.create_task(slow_writer())
    fast = asyncio.create_task(fast_writer())
    await asyncio.sleep(0.3)
    # the second writer waits on the first's advisory lock: nothing is visible yet
    async with engine.connect() as conn:
        assert await changefeed.rows_after(conn, 0) == []
    assert not fast.done()
    release_first.set()
    slow_seqs, fast_seqs = await slow, await fast
    assert slow_seqs < fast_seqs
    async with engine.connect() as conn:
        rows = await changefeed.rows_after(conn, 0)
    assert [r.payload["n"] for r in rows] == [1, 2]


async def test_traits_summarise_a_customers_orders(engine: AsyncEngine) -> None:
    store = await make_store(engine, timezone="America/New_York")
    pizza = await make_menu_item(engine, name="Margherita", price=1450)
    soda = await make_menu_item(engine, name="Soda", price=300)
    alice = await make_customer(engine, given_name="Alice")
    # 12:30 and 13:10 in New York (UTC-5 in January)
    await make_order(
        engine,
        store_id=store,
        customer_id=alice,
        placed_at=datetime(2026, 1, 5, 17, 30, tzinfo=UTC),
        items=[{"name": "Margherita", "quantity": 2, "unit_price": 1450, "menu_item_id": pizza}],
        channel="ONLINE",
    )
    await make_order(
        engine,
        store_id=store,
        customer_id=alice,
        placed_at=datetime(2026, 1, 6, 17, 10, tzinfo=UTC),
        items=[
            {"name": "Margherita", "quantity": 1, "unit_price": 1450, "menu_item_id": pizza},
            {"name": "Soda", "quantity": 1, "unit_price": 300, "menu_item_id": soda},
        ],
        channel="IN_STORE",
    )
    await make_order(
        engine,
        store_id=store,
        customer_id=alice,
        status=OrderStatus.CANCELED,
        items=[{"name": "Soda", "quantity": 9, "unit_price": 300, "menu_item_id": soda}],
    )
    async with engine.begin() as conn:
        await traits.recompute_traits(conn, [alice])
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(customer_traits).where(customer_traits.c.customer_id == alice)
            )
        ).one()
    assert row.order_count == 2
    assert row.total_spend_amount == 2900 + 1450 + 300
    assert row.currency == "USD"
    assert row.usual_order_hour in (12, 13)
    assert row.channel_mix == {"ONLINE": 1, "IN_STORE": 1}
    assert row.store_ids == [store]
    assert [f["name"] for f in row.favorite_items] == ["Margherita", "Soda"]
    assert row.favorite_items[0]["quantity"] == 3.0


async def test_ledger_is_idempotent_and_guards_the_balance(engine: AsyncEngine) -> None:
    customer = await make_customer(engine)
    async with engine.begin() as conn:
        account = await loyalty.ensure_account(
            conn, customer_id=customer, program="Stamps", source="SQUARE", external_id="la-1"
        )
        earned = await loyalty.append_entry(
            conn,
            account_id=account,
            points=50,
            kind="ACCUMULATE_POINTS",
            actor="t",
            idempotency_key="k1",
            source="SQUARE",
        )
        again = await loyalty.append_entry(
            conn,
            account_id=account,
            points=50,
            kind="ACCUMULATE_POINTS",
            actor="t",
            idempotency_key="k1",
            source="SQUARE",
        )
    assert earned.balance == 50 and not earned.duplicate
    assert again.duplicate and again.entry_id == earned.entry_id and again.balance == 50
    with pytest.raises(loyalty.InsufficientPoints):
        async with engine.begin() as conn:
            await loyalty.append_entry(
                conn,
                account_id=account,
                points=-80,
                kind="REDEEM",
                actor="t",
                idempotency_key="k2",
                source="CANONICAL",
            )
    async with engine.connect() as conn:
        balance = await conn.scalar(
            select(loyalty_accounts.c.balance).where(loyalty_accounts.c.id == account)
        )
    assert balance == 50


async def test_the_same_source_record_always_lands_on_the_same_customer(
    engine: AsyncEngine,
) -> None:
    record = CustomerRecord(source=Source.HUBSPOT, external_id="751", given_name="Dana")
    async with engine.begin() as conn:
        first = await identity.link_record(conn, record)
    async with engine.begin() as conn:
        second = await identity.link_record(conn, record)
    assert first.created_customer and not second.created_customer
    assert first.customer_id == second.customer_id
    assert first.source_record_id == second.source_record_id
