"""Helpers for the ingestion tests: signed requests, recorded-shape payloads, a real
local HTTP server standing in for the vendors' APIs, and an app with sources configured."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson
import uvicorn
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.app import create_app
from api.settings import Settings
from domain import signatures
from tests.services import free_port

SQUARE_KEY = "sq-signature-key"
SQUARE_URL = "https://guestgraph.example.com/webhooks/square"
TOAST_SECRET = "toast-secret"
HUBSPOT_SECRET = "hubspot-client-secret"
HUBSPOT_URL = "https://guestgraph.example.com/webhooks/hubspot"
SALESFORCE_SECRET = "whsec_" + base64.b64encode(b"salesforce-relay-secret-32-bytes").decode()
JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"


def configured(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "square_signature_key": SQUARE_KEY,
        "square_notification_url": SQUARE_URL,
        "square_access_token": "sq-token",
        "toast_webhook_secret": TOAST_SECRET,
        "hubspot_client_secret": HUBSPOT_SECRET,
        "hubspot_webhook_url": HUBSPOT_URL,
        "hubspot_access_token": "hs-token",
        "salesforce_webhook_secret": SALESFORCE_SECRET,
        "jwt_secret": JWT_SECRET,
        "fetch_poll_interval_s": 0.05,
        "fetch_retry_base_s": 0.05,
        "webhook_max_body_bytes": 65_536,
        **overrides,
    }
    return settings.model_copy(update=values)


@contextlib.asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


async def post_square(client: httpx.AsyncClient, body: bytes, *, key: str = SQUARE_KEY) -> Any:
    sig = signatures.square_signature(key, SQUARE_URL, body)
    return await client.post(
        "/webhooks/square",
        content=body,
        headers={"x-square-hmacsha256-signature": sig, "content-type": "application/json"},
    )


async def post_toast(client: httpx.AsyncClient, body: bytes, *, secret: str = TOAST_SECRET) -> Any:
    stamp = orjson.loads(body)["timestamp"]
    sig = signatures.toast_signature(secret, body, stamp)
    return await client.post("/webhooks/toast", content=body, headers={"toast-signature": sig})


async def post_hubspot(
    client: httpx.AsyncClient, body: bytes, *, age_ms: int = 0, secret: str = HUBSPOT_SECRET
) -> Any:
    stamp = str(int(time.time() * 1000) - age_ms)
    sig = signatures.hubspot_v3_signature(secret, "POST", HUBSPOT_URL, body, stamp)
    return await client.post(
        "/webhooks/hubspot",
        content=body,
        headers={"x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": stamp},
    )


async def post_salesforce(
    client: httpx.AsyncClient, body: bytes, *, age_s: int = 0, msg_id: str | None = None
) -> Any:
    ident = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()) - age_s)
    sig = signatures.standard_webhooks_signature(SALESFORCE_SECRET, ident, stamp, body)
    return await client.post(
        "/webhooks/salesforce",
        content=body,
        headers={"webhook-id": ident, "webhook-timestamp": stamp, "webhook-signature": sig},
    )


def token(
    *, role: str = "partner", scope: str = "ingest:write", stores: list[int] | None = None
) -> str:
    claims: dict[str, Any] = {
        "sub": "partner-1",
        "role": role,
        "scope": scope,
        "iss": "guestgraph",
        "aud": "guestgraph",
        "exp": int(time.time()) + 600,
    }
    if stores is not None:
        claims["stores"] = stores
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


# --- recorded-shape payloads (composed from the documented fields) ---------------------------


def square_customer_event(
    customer_id: str = "7Y4E2KQ9N1H3B5TXR0WMVZC8AG",
    *,
    event_id: str | None = None,
    version: int = 1,
    email: str = "Dana.Ortiz@Example.com",
    kind: str = "customer.created",
) -> dict[str, Any]:
    return {
        "merchant_id": "ML8Q2X7RZK4TA",
        "type": kind,
        "event_id": event_id or str(uuid.uuid4()),
        "created_at": "2025-06-14T18:22:41.512Z",
        "data": {
            "type": "customer",
            "id": customer_id,
            "object": {
                "customer": {
                    "id": customer_id,
                    "given_name": "Dana",
                    "family_name": "Ortiz",
                    "email_address": email,
                    "phone_number": "(415) 555-0123",
                    "creation_source": "DIRECTORY",
                    "version": version,
                    "updated_at": "2025-06-14T18:22:40Z",
                }
            },
        },
    }


def square_thin_order_event(
    order_id: str,
    *,
    version: int,
    kind: str = "order.updated",
    state: str = "OPEN",
    fulfillment: tuple[str | None, str] | None = None,
    location_id: str = "L2W9TQ4HZ8K1P",
) -> dict[str, Any]:
    key = {
        "order.created": "order_created",
        "order.updated": "order_updated",
        "order.fulfillment.updated": "order_fulfillment_updated",
    }[kind]
    body: dict[str, Any] = {
        "order_id": order_id,
        "version": version,
        "location_id": location_id,
        "state": state,
        "created_at": "2025-06-14T18:05:10Z",
        "updated_at": f"2025-06-14T18:{10 + version:02d}:00Z",
    }
    if fulfillment is not None:
        old, new = fulfillment
        update = {"fulfillment_uid": "fUq1ZbT0a6xWm3", "new_state": new}
        if old is not None:
            update["old_state"] = old
        body["fulfillment_update"] = [update]
    return {
        "merchant_id": "ML8Q2X7RZK4TA",
        "type": kind,
        "event_id": str(uuid.uuid4()),
        "created_at": "2025-06-14T18:22:41.512Z",
        "data": {"type": key, "id": order_id, "object": {key: body}},
    }


def square_order(
    order_id: str,
    *,
    version: int = 5,
    state: str = "OPEN",
    fulfillment_state: str = "PREPARED",
    customer_id: str | None = "7Y4E2KQ9N1H3B5TXR0WMVZC8AG",
    location_id: str = "L2W9TQ4HZ8K1P",
    quantity: str = "2",
) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": order_id,
        "location_id": location_id,
        "state": state,
        "version": version,
        "created_at": "2025-06-14T18:05:10Z",
        "updated_at": f"2025-06-14T18:{10 + version:02d}:00Z",
        "line_items": [
            {
                "uid": "li-1",
                "name": "Margherita Pizza",
                "variation_name": "12 inch",
                "quantity": quantity,
                "item_type": "ITEM",
                "catalog_object_id": "3XKZ7Q2WPLM5RTV8B4N6HJYD",
                "base_price_money": {"amount": 1450, "currency": "USD"},
                "total_money": {"amount": 3154, "currency": "USD"},
            }
        ],
        "fulfillments": [
            {
                "uid": "fUq1ZbT0a6xWm3",
                "type": "PICKUP",
                "state": fulfillment_state,
                "pickup_details": {
                    "recipient": {"display_name": "Dana Ortiz", "phone_number": "+14155550123"},
                    "schedule_type": "ASAP",
                },
            }
        ],
        "total_money": {"amount": 3154, "currency": "USD"},
        "total_tax_money": {"amount": 254, "currency": "USD"},
    }
    if customer_id:
        order["customer_id"] = customer_id
    return order


def toast_order_event(
    order_guid: str,
    *,
    modified: str = "2025-06-14T18:22:40.871+0000",
    restaurant: str = "1f9e7d3c-2b4a-4c5d-8e9f-000000000001",
    price: float = 29.0,
    tax: float = 2.54,
    tip: float = 4.0,
    payment_status: str = "PAID",
    fulfillment_status: str = "SENT",
    event_guid: str | None = None,
    event_type: str = "order_updated",
    card_note: str | None = None,
) -> dict[str, Any]:
    customer: dict[str, Any] = {
        "guid": "9a8b7c6d-5e4f-0000-0000-000000000001",
        "firstName": "Dana",
        "lastName": "Ortiz",
        "email": "dana.ortiz@example.com",
        "phone": "4155550123",
        "phoneCountryCode": "1",
    }
    selection: dict[str, Any] = {
        "guid": "5e1d0000-0000-0000-0000-000000000001",
        "item": {"guid": "b2f00000-0000-0000-0000-000000000001"},
        "displayName": "Margherita Pizza",
        "quantity": 2.0,
        "preDiscountPrice": price,
        "price": price,
        "tax": tax,
        "fulfillmentStatus": fulfillment_status,
        "modifiers": [],
    }
    if card_note:
        selection["specialRequest"] = card_note
    return {
        "timestamp": "2025-06-14T18:22:41.512Z",
        "eventCategory": event_type,
        "eventType": event_type,
        "guid": event_guid or str(uuid.uuid4()),
        "details": {
            "restaurantGuid": restaurant,
            "order": {
                "guid": order_guid,
                "externalId": f"ext-{order_guid}",
                "source": "Online",
                "businessDate": 20250614,
                "openedDate": "2025-06-14T18:05:00.000+0000",
                "modifiedDate": modified,
                "approvalStatus": "APPROVED",
                "voided": False,
                "deleted": False,
                "checks": [
                    {
                        "guid": "c0ffee00-1111-0000-0000-000000000001",
                        "displayNumber": "42",
                        "paymentStatus": payment_status,
                        "customer": customer,
                        "selections": [selection],
                        "amount": price,
                        "taxAmount": tax,
                        "totalAmount": price + tax,
                        "payments": [
                            {
                                "guid": "77aa0000-0000-0000-0000-000000000001",
                                "type": "CREDIT",
                                "amount": price + tax,
                                "tipAmount": tip,
                                "paymentStatus": "CAPTURED",
                            }
                        ],
                    }
                ],
            },
        },
    }


# --- a real HTTP server standing in for Square's and HubSpot's APIs --------------------------


@dataclass
class VendorApi:
    """Serves ``GET /v2/orders/{id}`` and ``GET /crm/v3/objects/contacts/{id}`` over a socket."""

    orders: dict[str, Any] = field(default_factory=dict)
    contacts: dict[str, Any] = field(default_factory=dict)
    down: bool = False
    requests: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    base_url: str = ""

    def app(self) -> Starlette:
        async def order(request: Request) -> JSONResponse:
            return self._answer(request, self.orders, "order")

        async def contact(request: Request) -> JSONResponse:
            return self._answer(request, self.contacts, None)

        return Starlette(
            routes=[
                Route("/v2/orders/{id}", order, methods=["GET"]),
                Route("/crm/v3/objects/contacts/{id}", contact, methods=["GET"]),
            ]
        )

    def _answer(self, request: Request, store: dict[str, Any], wrap: str | None) -> JSONResponse:
        self.requests.append(request.url.path)
        self.authorizations.append(request.headers.get("authorization"))
        if self.down:
            return JSONResponse({"errors": [{"code": "SERVICE_UNAVAILABLE"}]}, status_code=503)
        found = store.get(request.path_params["id"])
        if found is None:
            return JSONResponse({"errors": [{"code": "NOT_FOUND"}]}, status_code=404)
        return JSONResponse({wrap: found} if wrap else found)


@contextlib.asynccontextmanager
async def vendor_api() -> AsyncIterator[VendorApi]:
    api = VendorApi()
    port = free_port()
    config = uvicorn.Config(
        api.app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        http="h11",
        ws="none",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    api.base_url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        server.should_exit = True
        await task


async def eventually(check: Callable[[], Any], *, within_s: float = 10.0) -> Any:
    """Poll an async ``check`` until it returns a truthy value."""
    deadline = time.monotonic() + within_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
