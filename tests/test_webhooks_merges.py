"""Merges the sources made themselves: every record ends on one golden customer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from readmodel.identity import canonical_customer_id
from readmodel.tables import customers, source_records
from tests.ingest_support import (
    app_client,
    configured,
    dumps,
    post_hubspot,
    post_salesforce,
    post_square,
    square_customer_event,
)


@pytest.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings)) as c:
        yield c


async def golden_of(engine: AsyncEngine, source: str, external_id: str) -> int | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(source_records.c.customer_id)
                .where(source_records.c.source == source)
                .where(source_records.c.external_id == external_id)
            )
        ).one()
        return await canonical_customer_id(conn, row.customer_id)


async def live_customers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        rows = await conn.execute(select(customers.c.id).where(customers.c.merged_into.is_(None)))
        return len(list(rows))


def with_merge(event: dict[str, Any], losers: list[str], winner: str) -> dict[str, Any]:
    event["data"]["object"]["event_context"] = {
        "merge": {"from_customer_ids": losers, "to_customer_id": winner}
    }
    return event


async def test_a_square_merge_joins_the_old_profiles_into_the_new_one(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for cid, email in (("OLD-A", "a@example.com"), ("OLD-B", "b@example.com")):
        event = square_customer_event(cid, email=email)
        event["data"]["object"]["customer"]["phone_number"] = None
        event["data"]["object"]["customer"]["given_name"] = cid
        assert (await post_square(client, dumps(event))).status_code == 200
    assert await live_customers(engine) == 2
    created = square_customer_event("NEW-M", email="merged@example.com")
    created["data"]["object"]["customer"]["creation_source"] = "MERGE"
    created["data"]["object"]["customer"]["phone_number"] = None
    response = await post_square(client, dumps(with_merge(created, ["OLD-A", "OLD-B"], "NEW-M")))
    assert response.status_code == 200, response.text
    for cid in ("OLD-A", "OLD-B"):
        deleted = square_customer_event(cid, kind="customer.deleted", email="x@example.com")
        response = await post_square(
            client, dumps(with_merge(deleted, ["OLD-A", "OLD-B"], "NEW-M"))
        )
        assert response.status_code == 200, response.text
    survivor = await golden_of(engine, "SQUARE", "NEW-M")
    assert await golden_of(engine, "SQUARE", "OLD-A") == survivor
    assert await golden_of(engine, "SQUARE", "OLD-B") == survivor
    assert await live_customers(engine) == 1
    async with engine.connect() as conn:
        deleted_records = list(
            await conn.execute(
                select(source_records.c.external_id).where(source_records.c.deleted_at.is_not(None))
            )
        )
    assert sorted(r.external_id for r in deleted_records) == ["OLD-A", "OLD-B"]


async def test_a_hubspot_contact_merge_joins_the_two_contacts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    now = int(time.time() * 1000)
    batch = [
        {
            "eventId": i,
            "subscriptionType": "contact.propertyChange",
            "objectId": oid,
            "occurredAt": now,
            "propertyName": "email",
            "propertyValue": f"person{oid}@example.com",
        }
        for i, oid in ((1, 7001), (2, 7002))
    ]
    merge = {
        "eventId": 3,
        "subscriptionType": "contact.merge",
        "objectId": 7001,
        "primaryObjectId": 7001,
        "mergedObjectIds": [7002],
        "occurredAt": now,
    }
    assert (await post_hubspot(client, dumps(batch))).status_code == 200
    assert await live_customers(engine) == 2
    assert (await post_hubspot(client, dumps([merge]))).status_code == 200
    assert await golden_of(engine, "HUBSPOT", "7002") == await golden_of(engine, "HUBSPOT", "7001")
    assert await live_customers(engine) == 1


async def test_a_salesforce_delete_with_a_master_record_merges_into_the_master(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    def change(kind: str, ids: list[str], seq: int, **fields: Any) -> bytes:
        header = {
            "entityName": "Contact",
            "recordIds": ids,
            "changeType": kind,
            "transactionKey": f"tx-{seq}",
            "sequenceNumber": 1,
            "commitTimestamp": 1718389361000 + seq,
            "changedFields": list(fields),
        }
        return dumps({"ChangeEventHeader": header, **fields})

    await post_salesforce(
        client, change("CREATE", ["003WIN"], 1, LastName="Ortiz", Email="win@example.com")
    )
    await post_salesforce(
        client, change("CREATE", ["003LOSE"], 2, LastName="Ortiz", Email="lose@example.com")
    )
    assert await live_customers(engine) == 2
    response = await post_salesforce(
        client, change("DELETE", ["003LOSE"], 3, MasterRecordId="003WIN")
    )
    assert response.status_code == 200, response.text
    assert await golden_of(engine, "SALESFORCE", "003LOSE") == await golden_of(
        engine, "SALESFORCE", "003WIN"
    )
    assert await live_customers(engine) == 1
