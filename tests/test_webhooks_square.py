"""Square webhooks: signatures, replays, thin orders completed from a real local Orders API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from readmodel.tables import (
    change_feed,
    customers,
    ingest_inbox,
    loyalty_accounts,
    loyalty_ledger,
    order_line_items,
    order_status_history,
    orders,
    source_records,
)
from tests.ingest_support import (
    VendorApi,
    app_client,
    configured,
    dumps,
    eventually,
    post_square,
    square_customer_event,
    square_order,
    square_thin_order_event,
    vendor_api,
)


@pytest.fixture
async def vendor() -> AsyncIterator[VendorApi]:
    async with vendor_api() as api:
        yield api


@pytest.fixture
async def square(
    engine: AsyncEngine, settings: Settings, vendor: VendorApi
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings, square_api_base_url=vendor.base_url)) as client:
        yield client


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def inbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(ingest_inbox).order_by(ingest_inbox.c.id)))


async def test_a_signed_customer_event_is_applied_and_linked(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await post_square(square, dumps(square_customer_event()))
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    async with engine.connect() as conn:
        record = (await conn.execute(select(source_records))).one()
    assert (record.source, record.external_id) == ("SQUARE", "7Y4E2KQ9N1H3B5TXR0WMVZC8AG")
    assert record.attributes["email"] == "Dana.Ortiz@Example.com"
    [row] = await inbox_rows(engine)
    assert (row.source, row.status) == ("SQUARE", "applied")


@pytest.mark.parametrize("key", ["wrong-key", ""], ids=["wrong key", "empty key"])
async def test_a_forged_signature_is_refused_and_nothing_is_stored(
    square: httpx.AsyncClient, engine: AsyncEngine, key: str
) -> None:
    body = dumps(square_customer_event())
    if key:
        response = await post_square(square, body, key=key)
    else:
        response = await square.post("/webhooks/square", content=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await count(engine, ingest_inbox) == 0
    assert await count(engine, source_records) == 0


async def test_a_signature_over_different_bytes_is_refused(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = dumps(square_customer_event())
    from domain.signatures import square_signature
    from tests.ingest_support import SQUARE_KEY, SQUARE_URL

    sig = square_signature(SQUARE_KEY, SQUARE_URL, body)
    tampered = body.replace(b"Dana", b"Evil")
    response = await square.post(
        "/webhooks/square", content=tampered, headers={"x-square-hmacsha256-signature": sig}
    )
    assert response.status_code == 401
    assert await count(engine, ingest_inbox) == 0


async def test_a_replayed_event_answers_duplicate_and_changes_nothing(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = dumps(square_customer_event(event_id="evt-1"))
    assert (await post_square(square, body)).json()["status"] == "applied"
    feed_before = await count(engine, change_feed)
    again = await post_square(square, body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert await count(engine, ingest_inbox) == 1
    assert await count(engine, change_feed) == feed_before


async def test_an_unknown_event_type_is_stored_and_ignored(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = square_customer_event()
    event["type"] = "payment.created"
    response = await post_square(square, dumps(event))
    assert response.status_code == 200
    [row] = await inbox_rows(engine)
    assert row.status == "applied"
    assert "unhandled Square event type payment.created" in row.reason
    assert await count(engine, source_records) == 0


async def test_signed_malformed_json_is_kept_as_rejected_with_the_reason(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await post_square(square, b'{"event_id": "x", "type": ')
    assert response.status_code == 422
    assert response.json()["status"] == "rejected"
    [row] = await inbox_rows(engine)
    assert row.status == "rejected"
    assert row.reason.startswith("malformed JSON")
    assert bytes(row.raw_body) == b'{"event_id": "x", "type": '


async def test_a_signed_payload_missing_a_field_is_rejected_naming_the_field(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = square_customer_event(event_id="evt-no-id")
    del event["data"]["object"]["customer"]["id"]
    response = await post_square(square, dumps(event))
    assert response.status_code == 422
    assert response.json()["reason"] == "data.object.customer.id: is required"
    [row] = await inbox_rows(engine)
    assert (row.event_id, row.status) == ("evt-no-id", "rejected")


async def test_an_oversized_body_is_refused_before_reading_it(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await post_square(square, b"x" * 70_000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert await count(engine, ingest_inbox) == 0


async def test_an_unconfigured_source_answers_503_and_accepts_nothing(
    engine: AsyncEngine, settings: Settings
) -> None:
    async with app_client(settings) as client:
        response = await post_square(client, dumps(square_customer_event()))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "source_not_configured"
    assert await count(engine, ingest_inbox) == 0


async def order_row(engine: AsyncEngine, external_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(select(orders).where(orders.c.external_id == external_id))
        ).first()


async def test_a_thin_order_event_is_acknowledged_then_completed_from_the_orders_api(
    square: httpx.AsyncClient, engine: AsyncEngine, vendor: VendorApi
) -> None:
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    vendor.orders[order_id] = square_order(order_id, version=5)
    response = await post_square(square, dumps(square_thin_order_event(order_id, version=5)))
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    order = await eventually(lambda: order_row(engine, order_id))
    assert order.status == "READY"
    assert (order.total_amount, order.tax_amount, order.currency) == (3154, 254, "USD")
    assert order.source_version == 5
    async with engine.connect() as conn:
        [line] = list(await conn.execute(select(order_line_items)))
        [row] = list(await conn.execute(select(ingest_inbox)))
    assert (line.name, str(line.quantity), line.unit_price_amount) == (
        "Margherita Pizza",
        "2.0000",
        1450,
    )
    assert row.status == "applied"
    assert vendor.requests == [f"/v2/orders/{order_id}"]
    assert vendor.authorizations == ["Bearer sq-token"]


async def test_when_the_orders_api_is_down_the_event_waits_and_nothing_is_stored(
    square: httpx.AsyncClient, engine: AsyncEngine, vendor: VendorApi
) -> None:
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    vendor.orders[order_id] = square_order(order_id)
    vendor.down = True
    response = await post_square(square, dumps(square_thin_order_event(order_id, version=5)))
    assert response.status_code == 200  # acknowledged: the pending row is durable

    async def retried() -> bool:
        return len(vendor.requests) >= 2

    await eventually(retried)
    assert await order_row(engine, order_id) is None
    [row] = await inbox_rows(engine)
    assert row.status == "pending"
    assert "answered 503" in row.reason
    vendor.down = False
    order = await eventually(lambda: order_row(engine, order_id))
    assert order.status == "READY"


async def test_an_order_the_api_does_not_know_is_rejected_with_the_reason(
    square: httpx.AsyncClient, engine: AsyncEngine, vendor: VendorApi
) -> None:
    await post_square(square, dumps(square_thin_order_event("missing", version=1)))

    async def rejected() -> Any:
        rows = await inbox_rows(engine)
        return rows[0] if rows and rows[0].status == "rejected" else None

    row = await eventually(rejected)
    assert "404" in row.reason


async def test_a_fulfillment_update_moves_a_known_order_at_once(
    square: httpx.AsyncClient, engine: AsyncEngine, vendor: VendorApi
) -> None:
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    vendor.orders[order_id] = square_order(order_id, version=3, fulfillment_state="RESERVED")
    await post_square(square, dumps(square_thin_order_event(order_id, version=3)))
    await eventually(lambda: order_row(engine, order_id))
    vendor.down = True  # the status change must not wait for the fetch
    event = square_thin_order_event(
        order_id, version=4, kind="order.fulfillment.updated", fulfillment=("RESERVED", "PREPARED")
    )
    response = await post_square(square, dumps(event))
    assert response.status_code == 200
    order = await order_row(engine, order_id)
    assert order.status == "READY"
    async with engine.connect() as conn:
        history = [
            r.status
            for r in await conn.execute(
                select(order_status_history.c.status).order_by(order_status_history.c.at)
            )
        ]
        topics = [r.topic for r in await conn.execute(select(change_feed.c.topic))]
    assert history == ["PREPARING", "READY"]
    assert topics.count("order.status_changed") == 2  # created PREPARING, then READY


async def test_card_numbers_in_a_payload_are_stored_nowhere(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = square_customer_event()
    event["data"]["object"]["customer"]["note"] = "card 4111 1111 1111 1111 on file"
    event["data"]["object"]["customer"]["reference_id"] = "4111111111111111"
    response = await post_square(square, dumps(event))
    assert response.status_code == 200
    async with engine.connect() as conn:
        [row] = list(await conn.execute(select(ingest_inbox)))
        [record] = list(await conn.execute(select(source_records)))
    assert b"4111" not in bytes(row.raw_body).replace(b"****1111", b"")
    assert b"[card ****1111]" in bytes(row.raw_body)
    assert record.attributes["reference_id"] == "[card ****1111]"


async def test_loyalty_events_append_to_the_ledger_once(
    square: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = {
        "merchant_id": "ML8Q2X7RZK4TA",
        "type": "loyalty.event.created",
        "event_id": "evt-loyalty-1",
        "created_at": "2025-06-14T18:22:41.512Z",
        "data": {
            "type": "loyalty_event",
            "id": "ev-5f1c",
            "object": {
                "loyalty_event": {
                    "id": "ev-5f1c",
                    "type": "ACCUMULATE_POINTS",
                    "loyalty_account_id": "la-31d0",
                    "source": "SQUARE",
                    "created_at": "2025-06-14T18:22:41Z",
                    "accumulate_points": {"loyalty_program_id": "lp-0a11", "points": 35},
                }
            },
        },
    }
    assert (await post_square(square, dumps(event))).status_code == 200
    # the same ledger event in a different delivery (new event id) is not counted twice
    event["event_id"] = "evt-loyalty-1-redelivered"
    assert (await post_square(square, dumps(event))).status_code == 200
    async with engine.connect() as conn:
        [account] = list(await conn.execute(select(loyalty_accounts)))
        entries = list(await conn.execute(select(loyalty_ledger)))
    assert (account.balance, account.lifetime_points, account.program) == (35, 35, "lp-0a11")
    assert len(entries) == 1


@pytest.mark.parametrize(
    ("blocked", "customers_expected"),
    [
        ({}, 1),
        (
            {
                "identity_blocked_emails": ["dana.ortiz@example.com"],
                "identity_blocked_phones": ["+14155550123"],
            },
            2,
        ),
    ],
    ids=["default policy links", "configured blocklist keeps them apart"],
)
async def test_webhook_ingestion_matches_with_the_configured_identity_policy(
    engine: AsyncEngine,
    settings: Settings,
    vendor: VendorApi,
    blocked: dict[str, list[str]],
    customers_expected: int,
) -> None:
    """GUESTGRAPH_IDENTITY_* reach the identity decision made inside webhook ingestion."""
    app_settings = configured(settings, square_api_base_url=vendor.base_url, **blocked)
    async with app_client(app_settings) as client:
        for external_id in ("SQUARE-A-0001", "SQUARE-B-0002"):
            response = await post_square(client, dumps(square_customer_event(external_id)))
            assert response.json()["status"] == "applied"
    async with engine.connect() as conn:
        golden = (
            await conn.execute(
                select(func.count()).select_from(customers).where(customers.c.merged_into.is_(None))
            )
        ).scalar_one()
    assert golden == customers_expected
