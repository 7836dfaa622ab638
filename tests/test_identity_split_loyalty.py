"""A split through ingestion: the loyalty account a split-off record brought goes with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from domain.model import Source
from readmodel import identity
from readmodel.tables import loyalty_accounts, source_records
from tests.ingest_support import app_client, configured, token


@pytest.fixture
async def api(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings)) as client:
        yield client


def customer(event_id: str, external_id: str, email: str) -> dict[str, Any]:
    data = {"id": external_id, "email": email, "given_name": "Dana", "family_name": "Ortiz"}
    return {"id": event_id, "type": "customer.upserted", "data": data}


def points(event_id: str, account: str, customer_id: str, amount: int) -> dict[str, Any]:
    data = {"account_id": account, "customer_id": customer_id, "points": amount, "kind": "EARN"}
    return {"id": event_id, "type": "loyalty.points_changed", "data": data}


async def test_an_ingested_account_follows_its_record_out_of_a_customer(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    events = [
        customer("e1", "cust-1", "dana@x.com"),
        customer("e2", "cust-2", "Dana@X.com"),  # the same person: linked by email
        points("e3", "acct-1", "cust-1", 40),
        points("e4", "acct-2", "cust-2", 15),
    ]
    response = await api.post(
        "/ingest/events",
        json={"events": events},
        headers={"authorization": f"Bearer {token(role='admin')}"},
    )
    assert response.json()["applied"] == 4, response.text
    async with engine.connect() as conn:
        owners = {
            r.external_id: (r.customer_id, r.id) for r in await conn.execute(select(source_records))
        }
    assert owners["cust-1"][0] == owners["cust-2"][0]
    async with engine.begin() as conn:
        new = await identity.split_customer(
            conn, owners["cust-1"][0], [(Source.CANONICAL, "cust-2")], actor="support:1"
        )
    async with engine.connect() as conn:
        accounts = {
            r.external_id: (r.customer_id, r.source_record_id, r.balance)
            for r in await conn.execute(select(loyalty_accounts))
        }
    assert accounts == {
        "acct-1": (owners["cust-1"][0], owners["cust-1"][1], 40),
        "acct-2": (new, owners["cust-2"][1], 15),
    }
