"""Source merges arrive through the real, signed webhook endpoints and merge golden customers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from readmodel import identity
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


async def golden_of(engine: AsyncEngine, source: str, external_ids: list[str]) -> set[int]:
    async with engine.connect() as conn:
        owners = (
            await conn.execute(
                select(source_records.c.customer_id)
                .where(source_records.c.source == source)
                .where(source_records.c.external_id.in_(external_ids))
            )
        ).scalars()
        return set((await identity.canonical_customer_ids(conn, owners)).values())


async def merges_in_ledger(engine: AsyncEngine, customer_id: int) -> list[str]:
    async with engine.connect() as conn:
        history = await identity.identity_history(conn, customer_id)
    return [e.rule for e in history if e.action == "merge"]


def square_person(customer_id: str, given: str, email: str, phone: str) -> dict[str, Any]:
    event = square_customer_event(customer_id, email=email)
    person = event["data"]["object"]["customer"]
    person.update(given_name=given, family_name="Lopez", phone_number=phone)
    return event


async def test_square_event_context_merge(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    a = square_person("SQ-A", "Rosa", "rosa@example.com", "(415) 555-0131")
    b = square_person("SQ-B", "Rosalind", "rl@example.com", "(415) 555-0132")
    for event in (a, b):
        assert (await post_square(client, dumps(event))).status_code == 200
    assert len(await golden_of(engine, "SQUARE", ["SQ-A", "SQ-B"])) == 2
    merged = square_person("SQ-N", "Rosa", "rosa@example.com", "(415) 555-0131")
    obj = merged["data"]["object"]
    obj["customer"]["creation_source"] = "MERGE"
    obj["event_context"] = {
        "merge": {"from_customer_ids": ["SQ-A", "SQ-B"], "to_customer_id": "SQ-N"}
    }
    response = await post_square(client, dumps(merged))
    assert response.status_code == 200, response.text
    [survivor] = await golden_of(engine, "SQUARE", ["SQ-A", "SQ-B", "SQ-N"])
    assert await merges_in_ledger(engine, survivor) == ["source_merge"]


def hubspot_change(event_id: int, object_id: int, name: str, value: str) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2291847,
        "portalId": 44120987,
        "appId": 1187203,
        "occurredAt": int(time.time() * 1000) - 5000 + event_id,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": name,
        "propertyValue": value,
        "changeSource": "CRM_UI",
    }


async def test_hubspot_contact_merge(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    batch = [
        hubspot_change(1, 751, "email", "kim@example.com"),
        hubspot_change(2, 752, "email", "kim.work@example.org"),
    ]
    assert (await post_hubspot(client, dumps(batch))).status_code == 200
    assert len(await golden_of(engine, "HUBSPOT", ["751", "752"])) == 2
    merge = {
        "eventId": 3,
        "subscriptionType": "contact.merge",
        "attemptNumber": 0,
        "objectId": 751,
        "primaryObjectId": 751,
        "mergedObjectIds": [752],
        "occurredAt": int(time.time() * 1000),
        "portalId": 44120987,
        "appId": 1187203,
        "subscriptionId": 2291848,
        "changeSource": "CRM_UI",
    }
    response = await post_hubspot(client, dumps([merge]))
    assert response.status_code == 200, response.text
    [survivor] = await golden_of(engine, "HUBSPOT", ["751", "752"])
    assert await merges_in_ledger(engine, survivor) == ["source_merge"]
    async with engine.connect() as conn:
        merged = (
            await conn.execute(select(customers).where(customers.c.merged_into == survivor))
        ).all()
    assert len(merged) == 1


def salesforce(change: str, record_id: str, fields: dict[str, Any], seq: int) -> dict[str, Any]:
    return {
        "ChangeEventHeader": {
            "entityName": "Contact",
            "recordIds": [record_id],
            "changeType": change,
            "changeOrigin": "com/salesforce/api/rest/60.0;client=crm-sync",
            "transactionKey": f"tx-{seq}",
            "sequenceNumber": seq,
            "commitTimestamp": 1718389361000 + seq,
            "commitUser": "0055f000008XyZqAAK",
            "changedFields": list(fields),
        },
        **fields,
    }


async def test_salesforce_master_record_id(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    winner, loser = "0035f00000LkQ2mAAF", "0035f00000LkQ2nAAF"
    for seq, (rid, first, email) in enumerate(
        [(winner, "Lee", "lee@example.com"), (loser, "Leigh", "leigh@example.net")], start=1
    ):
        event = salesforce(
            "CREATE", rid, {"FirstName": first, "LastName": "Park", "Email": email}, seq
        )
        assert (await post_salesforce(client, dumps(event))).status_code == 200
    assert len(await golden_of(engine, "SALESFORCE", [winner, loser])) == 2
    delete = salesforce("DELETE", loser, {"MasterRecordId": winner}, 3)
    response = await post_salesforce(client, dumps(delete))
    assert response.status_code == 200, response.text
    [survivor] = await golden_of(engine, "SALESFORCE", [winner, loser])
    assert await merges_in_ledger(engine, survivor) == ["source_merge"]
