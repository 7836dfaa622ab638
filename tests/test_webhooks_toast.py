"""Toast webhooks: full orders, decimal money in the restaurant's currency, reordering."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from domain.model import Source
from readmodel.tables import customer_traits, ingest_inbox, order_line_items, orders
from tests.factories import make_store
from tests.ingest_support import app_client, configured, dumps, post_toast, toast_order_event

RESTAURANT = "1f9e7d3c-2b4a-4c5d-8e9f-000000000001"


@pytest.fixture
async def toast(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings)) as client:
        yield client


async def the_order(engine: AsyncEngine, guid: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(orders).where(orders.c.external_id == guid))).one()


async def test_a_signed_order_is_stored_in_minor_units_with_its_guest(
    toast: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guid = str(uuid.uuid4())
    response = await post_toast(toast, dumps(toast_order_event(guid)))
    assert response.status_code == 200, response.text
    order = await the_order(engine, guid)
    assert (order.subtotal_amount, order.tax_amount, order.tip_amount, order.total_amount) == (
        2900,
        254,
        400,
        3554,
    )
    assert order.status == "PREPARING"  # approved, selection SENT, check PAID not CLOSED
    assert order.fulfillment == "PICKUP"
    assert order.raw["checks"][0]["taxAmount"] == 2.54  # the raw decimal is kept
    async with engine.connect() as conn:
        traits = (await conn.execute(select(customer_traits))).one()
        [line] = list(await conn.execute(select(order_line_items)))
    assert (traits.order_count, traits.total_spend_amount) == (1, 3554)
    assert (line.unit_price_amount, line.total_amount) == (1450, 2900)


async def test_a_wrong_signature_is_refused(toast: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await post_toast(toast, dumps(toast_order_event("x")), secret="not-the-secret")
    assert response.status_code == 401
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(ingest_inbox))).scalar() == 0


async def test_a_replayed_delivery_is_a_duplicate(toast: httpx.AsyncClient) -> None:
    body = dumps(toast_order_event(str(uuid.uuid4()), event_guid="evt-toast-1"))
    assert (await post_toast(toast, body)).json()["status"] == "applied"
    assert (await post_toast(toast, body)).json() == {
        "event_id": "evt-toast-1",
        "status": "duplicate",
        "duplicate": True,
    }


async def test_an_older_version_arriving_late_never_overwrites_the_newer(
    toast: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guid = str(uuid.uuid4())
    newer = toast_order_event(
        guid, modified="2025-06-14T18:40:00.000+0000", price=35.0, payment_status="CLOSED"
    )
    older = toast_order_event(guid, modified="2025-06-14T18:20:00.000+0000", price=29.0)
    assert (await post_toast(toast, dumps(newer))).status_code == 200
    assert (await post_toast(toast, dumps(older))).status_code == 200
    order = await the_order(engine, guid)
    assert order.subtotal_amount == 3500
    assert order.status == "COMPLETED"  # the older PREPARING is history, not current


@pytest.mark.parametrize(
    ("currency", "price", "tax", "tip", "expected"),
    [
        ("JPY", 1200.0, 96.0, 0.0, (1200, 96, 0, 1296)),
        ("KWD", 2.125, 0.105, 0.5, (2125, 105, 500, 2730)),
    ],
    ids=["zero-decimal JPY", "three-decimal KWD"],
)
async def test_money_uses_the_restaurants_currency_exponent(
    toast: httpx.AsyncClient,
    engine: AsyncEngine,
    currency: str,
    price: float,
    tax: float,
    tip: float,
    expected: tuple[int, int, int, int],
) -> None:
    restaurant = f"rest-{currency}"
    await make_store(
        engine, source=Source.TOAST, external_id=restaurant, currency=currency, country="JP"
    )
    guid = str(uuid.uuid4())
    event = toast_order_event(guid, restaurant=restaurant, price=price, tax=tax, tip=tip)
    assert (await post_toast(toast, dumps(event))).status_code == 200
    order = await the_order(engine, guid)
    assert order.currency == currency
    amounts = (order.subtotal_amount, order.tax_amount, order.tip_amount, order.total_amount)
    assert amounts == expected


async def test_an_unknown_event_type_is_stored_and_answered_200(
    toast: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = toast_order_event("x", event_type="menu_updated")
    response = await post_toast(toast, dumps(event))
    assert response.status_code == 200
    async with engine.connect() as conn:
        row = (await conn.execute(select(ingest_inbox))).one()
        assert (await conn.execute(select(func.count()).select_from(orders))).scalar() == 0
    assert row.status == "applied"
    assert "menu_updated" in row.reason


async def test_a_voided_order_is_canceled(toast: httpx.AsyncClient, engine: AsyncEngine) -> None:
    guid = str(uuid.uuid4())
    event = toast_order_event(guid)
    event["details"]["order"]["voided"] = True
    await post_toast(toast, dumps(event))
    assert (await the_order(engine, guid)).status == "CANCELED"


async def test_concurrent_deliveries_commit_together_and_each_gets_its_own_answer(
    toast: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    import asyncio

    bodies = [dumps(toast_order_event(f"conc-{i}", event_guid=f"conc-evt-{i}")) for i in range(20)]
    bodies.append(bodies[3])  # the same delivery twice, at the same time
    answers = await asyncio.gather(*(post_toast(toast, b) for b in bodies))
    assert all(a.status_code == 200 for a in answers)
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses.count("applied") == 20
    assert statuses.count("duplicate") == 1
    assert {a.json()["event_id"] for a in answers} == {f"conc-evt-{i}" for i in range(20)}
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(orders))).scalar() == 20


async def test_a_batch_waiting_on_the_database_does_not_hold_up_the_next_one(
    engine: AsyncEngine, settings: Settings
) -> None:
    import asyncio

    from sqlalchemy import text

    from readmodel.tables import stores

    # the waiting statement must outlast the test's steps, however slow the machine
    async with app_client(configured(settings, statement_timeout_ms=120_000)) as toast:
        await make_store(engine, source=Source.TOAST, external_id="rest-busy")
        await make_store(engine, source=Source.TOAST, external_id="rest-free")
        slow = dumps(toast_order_event("order-slow", restaurant="rest-busy"))
        other_guest = toast_order_event("order-fast", restaurant="rest-free")
        other_guest["details"]["order"]["checks"][0]["customer"] = {
            "guid": "guest-2",
            "firstName": "Ari",
            "email": "ari@example.com",
        }
        fast = dumps(other_guest)
        async with engine.connect() as holder:
            # another transaction holds the busy store's row: an order for it must wait
            await holder.execute(
                select(stores.c.id).where(stores.c.external_id == "rest-busy").with_for_update()
            )
            first = asyncio.create_task(post_toast(toast, slow))
            async with asyncio.timeout(20):
                # polling pg_stat_activity: PostgreSQL has no event for "a backend now waits"
                while not await _someone_waits_on_a_lock(engine):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                answer = await post_toast(toast, fast)  # committed while the first one waits
            assert answer.json()["status"] == "applied"
            assert not first.done()
            async with engine.connect() as conn:
                found = await conn.scalar(
                    select(func.count())
                    .select_from(orders)
                    .where(orders.c.external_id == "order-fast")
                )
            assert found == 1
            await holder.execute(text("COMMIT"))
        assert (await first).json()["status"] == "applied"
        assert (await the_order(engine, "order-slow")).status is not None


async def _someone_waits_on_a_lock(engine: AsyncEngine) -> bool:
    from sqlalchemy import text

    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_a_delivery_the_database_times_out_on_is_refused_for_retry_not_rejected(
    engine: AsyncEngine, settings: Settings
) -> None:
    from sqlalchemy import text

    from readmodel.tables import stores

    await make_store(engine, source=Source.TOAST, external_id="rest-busy")
    body = dumps(toast_order_event("order-late", restaurant="rest-busy", event_guid="evt-late"))
    async with app_client(configured(settings, statement_timeout_ms=300)) as client:
        async with engine.connect() as holder:
            await holder.execute(
                select(stores.c.id).where(stores.c.external_id == "rest-busy").with_for_update()
            )
            refused = await post_toast(client, body)
            await holder.execute(text("COMMIT"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "ingestion_unavailable"
        async with engine.connect() as conn:
            kept = await conn.scalar(select(func.count()).select_from(ingest_inbox))
        assert kept == 0  # nothing half-written, nothing dead-lettered
        retried = await post_toast(client, body)
    assert retried.status_code == 200 and retried.json()["status"] == "applied"
