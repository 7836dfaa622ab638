"""The projector's guarantees: any arrival order and any duplication end in the same state."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from domain.events import (
    DomainEvent,
    OrderLine,
    OrderStatusObserved,
    OrderUpserted,
    StoreRef,
)
from domain.model import FulfillmentType, OrderStatus, Source
from readmodel.database import create_engine
from readmodel.projector import apply_events
from readmodel.tables import order_line_items, order_status_history, orders

T0 = datetime(2025, 6, 14, 18, 0, tzinfo=UTC)


def order_at(external_id: str, version: int, status: OrderStatus) -> OrderUpserted:
    return OrderUpserted(
        source=Source.SQUARE,
        external_id=external_id,
        store=StoreRef(Source.SQUARE, "loc-prop"),
        customer=None,
        status=status,
        status_at=T0 + timedelta(minutes=version),
        fulfillment=FulfillmentType.PICKUP,
        channel="POS",
        currency="USD",
        subtotal_amount=1000 * version,
        tax_amount=10 * version,
        tip_amount=0,
        discount_amount=0,
        total_amount=1010 * version,
        placed_at=T0,
        version=version,
        lines=tuple(
            OrderLine(f"item {i}", Decimal(version), 100, 100 * version) for i in range(version)
        ),
    )


def history_of(external_id: str) -> list[DomainEvent]:
    """One order's life: full versions 1-4 plus fulfillment updates, a late cancel after
    completion (recorded, never current) and a backwards move."""
    return [
        order_at(external_id, 1, OrderStatus.PLACED),
        order_at(external_id, 2, OrderStatus.ACCEPTED),
        OrderStatusObserved(
            Source.SQUARE, external_id, OrderStatus.PREPARING, T0 + timedelta(minutes=3), 3
        ),
        order_at(external_id, 4, OrderStatus.READY),
        OrderStatusObserved(
            Source.SQUARE, external_id, OrderStatus.COMPLETED, T0 + timedelta(minutes=5), 5
        ),
        OrderStatusObserved(
            Source.SQUARE, external_id, OrderStatus.CANCELED, T0 + timedelta(minutes=6), 6
        ),
        OrderStatusObserved(
            Source.SQUARE, external_id, OrderStatus.ACCEPTED, T0 + timedelta(minutes=7), 7
        ),
    ]


async def _apply_each_and_read(database_url: str, events: list[DomainEvent], ext: str) -> Any:
    engine = create_engine(database_url, pool_size=1)
    try:
        for event in events:  # one transaction per delivery, like the webhooks
            async with engine.begin() as conn:
                await apply_events(conn, [event], actor="test")
        async with engine.connect() as conn:
            order = (await conn.execute(select(orders).where(orders.c.external_id == ext))).one()
            lines = [
                (r.position, r.name, r.quantity, r.total_amount)
                for r in await conn.execute(
                    select(order_line_items)
                    .where(order_line_items.c.order_id == order.id)
                    .order_by(order_line_items.c.position)
                )
            ]
            history = sorted(
                (r.status, r.at, r.source_version)
                for r in await conn.execute(
                    select(order_status_history).where(order_status_history.c.order_id == order.id)
                )
            )
        return (
            order.status,
            order.source_version,
            order.total_amount,
            order.accepted_at,
            order.ready_at,
            order.completed_at,
            lines,
            history,
        )
    finally:
        await engine.dispose()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_permutation_and_duplication_of_an_orders_events_ends_in_the_same_state(
    database_url: str, data: st.DataObject
) -> None:
    ext = f"prop-{uuid.uuid4().hex}"
    events = history_of(ext)
    shuffled = data.draw(st.permutations(events))
    duplicated = data.draw(st.lists(st.sampled_from(events), max_size=4))
    arrival = list(shuffled) + duplicated
    state = asyncio.run(_apply_each_and_read(database_url, arrival, ext))

    ref = f"ref-{uuid.uuid4().hex}"
    expected = asyncio.run(_apply_each_and_read(database_url, history_of(ref), ref))
    assert state == expected
    status, version, total, *_ = state
    assert (status, version, total) == ("COMPLETED", 4, 4040)


def versions_of(external_id: str) -> list[OrderUpserted]:
    return [
        order_at(external_id, 1, OrderStatus.PLACED),
        order_at(external_id, 2, OrderStatus.PREPARING),
        order_at(external_id, 3, OrderStatus.COMPLETED),
        order_at(external_id, 4, OrderStatus.CANCELED),  # after completion: history only
        order_at(external_id, 5, OrderStatus.READY),  # backwards: history only
    ]


async def _apply_in_bulk_chunks(
    database_url: str, chunks: list[list[OrderUpserted]], ext: str
) -> Any:
    from readmodel.bulk import apply_orders
    from readmodel.projector import Projector

    engine = create_engine(database_url, pool_size=1)
    try:
        for chunk in chunks:
            async with engine.begin() as conn:
                projector = Projector(conn, actor="test")
                await apply_orders(projector, chunk)
                await projector.finish()
    finally:
        await engine.dispose()
    return await _apply_each_and_read(database_url, [], ext)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_bulk_batches_in_any_order_end_where_one_by_one_application_ends(
    database_url: str, data: st.DataObject
) -> None:
    ext = f"bulk-{uuid.uuid4().hex}"
    arrival = list(data.draw(st.permutations(versions_of(ext))))
    arrival += data.draw(st.lists(st.sampled_from(versions_of(ext)), max_size=3))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arrival) - 1), max_size=3)))
    bounds = [0, *cuts, len(arrival)]
    chunks = [arrival[a:b] for a, b in itertools.pairwise(bounds) if arrival[a:b]]
    state = asyncio.run(_apply_in_bulk_chunks(database_url, chunks, ext))

    ref = f"ref-{uuid.uuid4().hex}"
    expected = asyncio.run(_apply_each_and_read(database_url, list(versions_of(ref)), ref))
    assert state == expected
    assert state[:3] == ("COMPLETED", 5, 5050)
