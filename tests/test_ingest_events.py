"""POST /ingest/events: canonical batches with per-event results and store scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.ingestion import replay
from api.settings import Settings
from domain.model import Source
from readmodel.tables import (
    ingest_inbox,
    interactions,
    loyalty_accounts,
    menu_items,
    order_status_history,
    orders,
    stores,
)
from tests.factories import make_store
from tests.ingest_support import app_client, configured, token


@pytest.fixture
async def api(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings)) as client:
        yield client


def auth(tok: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}"}


def order_event(event_id: str, *, store: str = "store-1", **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "order.upserted",
        "data": {
            "id": "order-1",
            "store_id": store,
            "customer": {"id": "cust-1", "email": "Dana@Example.com", "given_name": "Dana"},
            "status": "ACCEPTED",
            "fulfillment": "PICKUP",
            "currency": "USD",
            "placed_at": "2025-06-14T18:05:00Z",
            "version": 1,
            "tax": 100,
            "line_items": [
                {"name": "Burrito", "quantity": 2, "unit_price": 950, "catalog_item_id": "burrito"}
            ],
            **data,
        },
    }


BASE_EVENTS: list[dict[str, Any]] = [
    {
        "id": "e1",
        "type": "store.upserted",
        "data": {"id": "store-1", "name": "Mission", "timezone": "America/Los_Angeles"},
    },
    {
        "id": "e2",
        "type": "catalog_item.upserted",
        "data": {
            "id": "burrito",
            "store_id": "store-1",
            "name": "Burrito",
            "price": {"amount": 950, "currency": "USD"},
            "tags": ["Vegetarian"],
        },
    },
    order_event("e3"),
    {
        "id": "e4",
        "type": "order.status_changed",
        "data": {"order_id": "order-1", "status": "READY", "at": "2025-06-14T18:20:00Z"},
    },
    {
        "id": "e5",
        "type": "loyalty.points_changed",
        "data": {"account_id": "acct-1", "customer_id": "cust-1", "points": 19, "kind": "EARN"},
    },
    {
        "id": "e6",
        "type": "interaction.recorded",
        "data": {
            "id": "call-1",
            "customer_id": "cust-1",
            "channel": "phone",
            "kind": "complaint",
            "subject": "cold food",
            "at": "2025-06-14T19:00:00Z",
            "order_id": "order-1",
        },
    },
]


async def test_an_admin_batch_applies_every_kind_of_event(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await api.post(
        "/ingest/events", json={"events": BASE_EVENTS}, headers=auth(token(role="admin"))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["applied"], body["duplicate"], body["rejected"]) == (6, 0, 0)
    assert [r["event_id"] for r in body["results"]] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    async with engine.connect() as conn:
        order = (await conn.execute(select(orders))).one()
        item = (await conn.execute(select(menu_items))).one()
        history = [r.status for r in await conn.execute(select(order_status_history.c.status))]
        account = (await conn.execute(select(loyalty_accounts))).one()
        note = (await conn.execute(select(interactions))).one()
    assert (order.status, order.subtotal_amount, order.total_amount) == ("READY", 1900, 2000)
    assert item.tags == ["vegetarian"]
    assert sorted(history) == ["ACCEPTED", "READY"]
    assert account.balance == 19
    assert (note.kind, note.order_id) == ("COMPLAINT", order.id)
    again = await api.post(
        "/ingest/events", json={"events": BASE_EVENTS}, headers=auth(token(role="admin"))
    )
    assert again.json()["duplicate"] == 6


async def test_a_partner_may_not_write_to_another_partners_store(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    mine = await make_store(engine, source=Source.CANONICAL, external_id="mine")
    await make_store(engine, source=Source.CANONICAL, external_id="theirs")
    events = [order_event("a", store="mine"), order_event("b", store="theirs", id="order-2")]
    response = await api.post(
        "/ingest/events", json={"events": events}, headers=auth(token(stores=[mine]))
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["status"] == "applied"
    assert results[1]["status"] == "rejected"
    assert "outside this client's store scope" in results[1]["reason"]
    async with engine.connect() as conn:
        assert [r.external_id for r in await conn.execute(select(orders.c.external_id))] == [
            "order-1"
        ]
        assert len(list(await conn.execute(select(stores)))) == 2  # no store was created


async def test_a_replayed_partner_event_stays_inside_the_partners_store_scope(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    mine = await make_store(engine, source=Source.CANONICAL, external_id="mine")
    await make_store(engine, source=Source.CANONICAL, external_id="theirs")
    status_first = {
        "id": "s1",
        "type": "order.status_changed",
        "data": {"order_id": "order-1", "status": "READY", "at": "2025-06-14T18:20:00Z"},
    }
    events = [order_event("out", store="theirs", id="order-9"), status_first]
    response = await api.post(
        "/ingest/events", json={"events": events}, headers=auth(token(stores=[mine]))
    )
    assert [r["status"] for r in response.json()["results"]] == ["rejected", "rejected"]
    admin = await api.post(
        "/ingest/events",
        json={"events": [order_event("adm", store="mine")]},
        headers=auth(token(role="admin")),
    )
    assert admin.json()["results"][0]["status"] == "applied"
    async with engine.connect() as conn:
        rows = {
            r.event_id: r
            for r in await conn.execute(
                select(ingest_inbox.c.id, ingest_inbox.c.event_id, ingest_inbox.c.store_scope)
            )
        }
    assert rows["partner-1:out"].store_scope == [mine]
    assert rows["partner-1:adm"].store_scope is None

    # whoever replays it, the partner's event still may not touch another partner's store
    outcome = await replay(engine, rows["partner-1:out"].id, actor="test")
    assert outcome.status == "rejected"
    assert "outside this client's store scope" in (outcome.reason or "")
    # inside its scope, a replay after the cause is gone applies (the order now exists)
    replayed = await replay(engine, rows["partner-1:s1"].id, actor="test")
    assert replayed.status == "applied"
    async with engine.connect() as conn:
        stored = (await conn.execute(select(orders.c.external_id, orders.c.status))).all()
    assert [tuple(r) for r in stored] == [("order-1", "READY")]


async def test_a_bad_event_is_rejected_alone_with_its_field_path(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bad = order_event("bad", status="SHIPPED")
    response = await api.post(
        "/ingest/events",
        json={"events": [BASE_EVENTS[0], bad]},
        headers=auth(token(role="admin")),
    )
    results = response.json()["results"]
    assert results[0]["status"] == "applied"
    assert results[1]["status"] == "rejected"
    assert results[1]["reason"].startswith("events[1].data.status: must be one of PLACED")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_token"),
        ({"authorization": "Bearer not-a-jwt"}, 401, "invalid_token"),
        (auth(token(scope="orders:read")), 403, "insufficient_scope"),
    ],
    ids=["no token", "garbage token", "no ingest scope"],
)
async def test_ingest_requires_a_token_with_ingest_write(
    api: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = await api.post("/ingest/events", json={"events": BASE_EVENTS}, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_a_batch_over_500_events_or_not_json_is_refused(api: httpx.AsyncClient) -> None:
    headers = auth(token(role="admin"))
    many = [dict(BASE_EVENTS[0], id=f"e{i}") for i in range(501)]
    too_many = await api.post("/ingest/events", json={"events": many}, headers=headers)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["code"] == "invalid_batch"
    garbage = await api.post("/ingest/events", content=b"{nope", headers=headers)
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == "malformed_json"
