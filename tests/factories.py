"""Keyword-only factories that write real rows: tests build their world with these, not mocks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.model import FulfillmentType, OrderStatus, Source
from readmodel import identity
from readmodel.tables import menu_items, order_line_items, order_status_history, orders, stores

_counter = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


async def make_store(
    engine: AsyncEngine,
    *,
    name: str = "Downtown",
    timezone: str = "America/New_York",
    country: str = "US",
    currency: str = "USD",
    source: Source = Source.SQUARE,
    external_id: str | None = None,
    phone: str | None = None,
) -> int:
    async with engine.begin() as conn:
        return int(
            (
                await conn.execute(
                    insert(stores)
                    .values(
                        source=source.value,
                        external_id=external_id or _next("loc"),
                        name=name,
                        timezone=timezone,
                        country=country,
                        currency=currency,
                        phone=phone,
                    )
                    .returning(stores.c.id)
                )
            ).scalar_one()
        )


async def make_menu_item(
    engine: AsyncEngine,
    *,
    name: str,
    price: int,
    currency: str = "USD",
    store_id: int | None = None,
    tags: Sequence[str] = (),
    source: Source = Source.SQUARE,
) -> int:
    async with engine.begin() as conn:
        return int(
            (
                await conn.execute(
                    insert(menu_items)
                    .values(
                        source=source.value,
                        external_id=_next("item"),
                        store_id=store_id,
                        name=name,
                        price_amount=price,
                        currency=currency,
                        tags=list(tags),
                    )
                    .returning(menu_items.c.id)
                )
            ).scalar_one()
        )


async def make_customer(
    engine: AsyncEngine,
    *,
    given_name: str | None = "Dana",
    family_name: str | None = "Ortiz",
    email: str | None = None,
    phone: str | None = None,
    source: Source = Source.SQUARE,
    external_id: str | None = None,
) -> int:
    """A golden customer with one source record, created through identity resolution."""
    record = CustomerRecord(
        source=source,
        external_id=external_id or _next("cust"),
        given_name=given_name,
        family_name=family_name,
        email=email,
        phone=phone,
    )
    async with engine.begin() as conn:
        linked = await identity.link_record(conn, record, actor="test")
    return linked.customer_id


async def make_order(
    engine: AsyncEngine,
    *,
    store_id: int,
    customer_id: int | None = None,
    status: OrderStatus = OrderStatus.COMPLETED,
    fulfillment: FulfillmentType = FulfillmentType.PICKUP,
    channel: str = "ONLINE",
    placed_at: datetime | None = None,
    promised_at: datetime | None = None,
    items: Sequence[dict[str, Any]] = (),
    currency: str = "USD",
    tax: int = 0,
    tip: int = 0,
    discount: int = 0,
    source: Source = Source.SQUARE,
    external_id: str | None = None,
) -> int:
    """An order with line items (``{"name", "quantity", "unit_price", "menu_item_id"?}``)."""
    placed = placed_at or datetime.now(UTC)
    lines = [
        {
            "position": i,
            "name": item["name"],
            "quantity": Decimal(str(item.get("quantity", 1))),
            "unit_price_amount": item["unit_price"],
            "total_amount": int(Decimal(str(item.get("quantity", 1))) * item["unit_price"]),
            "currency": currency,
            "menu_item_id": item.get("menu_item_id"),
            "modifiers": list(item.get("modifiers", [])),
        }
        for i, item in enumerate(items)
    ]
    subtotal = sum(int(line["total_amount"]) for line in lines)
    async with engine.begin() as conn:
        order_id = (
            await conn.execute(
                insert(orders)
                .values(
                    source=source.value,
                    external_id=external_id or _next("order"),
                    store_id=store_id,
                    customer_id=customer_id,
                    status=status.value,
                    fulfillment=fulfillment.value,
                    channel=channel,
                    currency=currency,
                    subtotal_amount=subtotal,
                    tax_amount=tax,
                    tip_amount=tip,
                    discount_amount=discount,
                    total_amount=subtotal + tax + tip - discount,
                    placed_at=placed,
                    promised_at=promised_at,
                )
                .returning(orders.c.id)
            )
        ).scalar_one()
        if lines:
            await conn.execute(
                insert(order_line_items), [{**ln, "order_id": order_id} for ln in lines]
            )
        await conn.execute(
            insert(order_status_history).values(
                order_id=order_id, status=status.value, at=placed, source=source.value
            )
        )
    return int(order_id)
