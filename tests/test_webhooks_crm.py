"""HubSpot and Salesforce webhooks: batches, stale timestamps, partial updates, fetches."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from readmodel.tables import ingest_inbox, source_records
from tests.ingest_support import (
    VendorApi,
    app_client,
    configured,
    dumps,
    eventually,
    post_hubspot,
    post_salesforce,
    vendor_api,
)


@pytest.fixture
async def vendor() -> AsyncIterator[VendorApi]:
    async with vendor_api() as api:
        yield api


@pytest.fixture
async def client(
    engine: AsyncEngine, settings: Settings, vendor: VendorApi
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(configured(settings, hubspot_api_base_url=vendor.base_url)) as c:
        yield c


def property_change(event_id: int, name: str, value: str, *, at_ms: int) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2291847,
        "portalId": 44120987,
        "appId": 1187203,
        "occurredAt": at_ms,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 75028811903,
        "propertyName": name,
        "propertyValue": value,
        "changeSource": "CRM_UI",
    }


async def record(engine: AsyncEngine, source: str, external_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(source_records)
                .where(source_records.c.source == source)
                .where(source_records.c.external_id == external_id)
            )
        ).first()


async def test_a_hubspot_batch_applies_each_property_change(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    now = int(time.time() * 1000)
    batch = [
        property_change(1, "email", "dana.ortiz@example.com", at_ms=now - 2000),
        property_change(2, "firstname", "Dana", at_ms=now - 1000),
    ]
    response = await post_hubspot(client, dumps(batch))
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied", "applied"]
    contact = await record(engine, "HUBSPOT", "75028811903")
    assert contact.attributes["email"] == "dana.ortiz@example.com"
    assert contact.attributes["given_name"] == "Dana"
    again = await post_hubspot(client, dumps(batch))
    assert again.json()["duplicate"] is True


async def test_a_hubspot_request_older_than_five_minutes_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    batch = [property_change(1, "email", "a@example.com", at_ms=0)]
    response = await post_hubspot(client, dumps(batch), age_ms=301_000)
    assert response.status_code == 401
    assert "older than 5 minutes" in response.json()["error"]["message"]
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(ingest_inbox))).scalar() == 0


async def test_a_hubspot_request_signed_with_another_secret_is_refused(
    client: httpx.AsyncClient,
) -> None:
    batch = [property_change(1, "email", "a@example.com", at_ms=0)]
    response = await post_hubspot(client, dumps(batch), secret="someone-else")
    assert response.status_code == 401


async def test_a_hubspot_creation_fetches_the_contact_from_the_crm_api(
    client: httpx.AsyncClient, engine: AsyncEngine, vendor: VendorApi
) -> None:
    vendor.contacts["901"] = {
        "id": "901",
        "properties": {
            "email": "Sam.Lee@Example.com",
            "firstname": "Sam",
            "lastname": "Lee",
            "phone": "+1 415 555 0199",
            "lifecyclestage": "customer",
        },
        "createdAt": "2025-06-01T10:00:00Z",
        "updatedAt": "2025-06-02T10:00:00Z",
        "archived": False,
    }
    creation = {
        "eventId": 77,
        "subscriptionType": "contact.creation",
        "objectId": 901,
        "occurredAt": int(time.time() * 1000),
    }
    response = await post_hubspot(client, dumps([creation]))
    assert response.json()["status"] == "pending"
    contact = await eventually(lambda: record(engine, "HUBSPOT", "901"))
    assert contact.attributes["email"] == "Sam.Lee@Example.com"
    assert contact.attributes["lifecyclestage"] == "customer"
    assert vendor.authorizations == ["Bearer hs-token"]


async def test_an_older_property_change_arriving_late_does_not_overwrite(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    now = int(time.time() * 1000)
    await post_hubspot(client, dumps([property_change(5, "email", "new@example.com", at_ms=now)]))
    await post_hubspot(
        client, dumps([property_change(4, "email", "old@example.com", at_ms=now - 60_000)])
    )
    contact = await record(engine, "HUBSPOT", "75028811903")
    assert contact.attributes["email"] == "new@example.com"


def contact_change(change: str, fields: dict[str, Any], *, seq: int = 1) -> dict[str, Any]:
    return {
        "ChangeEventHeader": {
            "entityName": "Contact",
            "recordIds": ["0035f00000LkQ2mAAF"],
            "changeType": change,
            "changeOrigin": "com/salesforce/api/rest/60.0;client=crm-sync",
            "transactionKey": "0004b7d1-2c3e",
            "sequenceNumber": seq,
            "commitTimestamp": 1718389361000 + seq,
            "commitUser": "0055f000008XyZqAAK",
            "changedFields": list(fields),
        },
        **fields,
    }


async def test_salesforce_changes_merge_into_the_contact_record(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    create = contact_change("CREATE", {"FirstName": "Dana", "LastName": "Ortiz"}, seq=1)
    update = contact_change("UPDATE", {"Email": "dana.ortiz@example.com"}, seq=2)
    assert (await post_salesforce(client, dumps(create))).status_code == 200
    assert (await post_salesforce(client, dumps(update))).status_code == 200
    contact = await record(engine, "SALESFORCE", "0035f00000LkQ2mAAF")
    assert contact.attributes["given_name"] == "Dana"
    assert contact.attributes["email"] == "dana.ortiz@example.com"
    # the relay redelivers the same change under a new webhook id: still one event
    again = await post_salesforce(client, dumps(update))
    assert again.json()["duplicate"] is True


async def test_salesforce_refuses_a_stale_or_unsigned_delivery(
    client: httpx.AsyncClient,
) -> None:
    body = dumps(contact_change("UPDATE", {"Email": "x@example.com"}))
    assert (await post_salesforce(client, body, age_s=600)).status_code == 401
    unsigned = await client.post("/webhooks/salesforce", content=body)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["message"] == "missing webhook-id header"


async def test_a_salesforce_field_set_to_null_is_cleared(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    create = contact_change("CREATE", {"LastName": "Ortiz", "Email": "d@example.com"}, seq=1)
    cleared = contact_change("UPDATE", {}, seq=2)
    cleared["ChangeEventHeader"]["nulledFields"] = ["Email"]
    await post_salesforce(client, dumps(create))
    await post_salesforce(client, dumps(cleared))
    contact = await record(engine, "SALESFORCE", "0035f00000LkQ2mAAF")
    assert contact.attributes["email"] is None
    assert contact.attributes["family_name"] == "Ortiz"
