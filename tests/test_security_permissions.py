"""Who sees what: every role against every PII field of the real schema, over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from domain.model import Source
from readmodel import traits
from readmodel.tables import audit_log, customers, interactions, preferences
from tests.factories import make_customer, make_order, make_store
from tests.graphql_support import global_id
from tests.security_support import (
    ADMIN_SCOPES,
    PARTNER_SCOPES,
    SUPPORT_SCOPES,
    app_client,
    bearer,
    make_token,
    security_settings,
)

DANA_EMAIL = "dana@example.com"
NOTE = "Called from 555-555-0123 about a cold latte"
DANA_PHONE = "+14155552671"


@dataclass
class World:
    north: int
    south: int
    dana: int
    eve: int
    dana_order: int
    eve_order: int


async def build_world(engine: AsyncEngine) -> World:
    north = await make_store(engine, name="North", external_id="L-NORTH")
    south = await make_store(engine, name="South", external_id="L-SOUTH")
    dana = await make_customer(
        engine, email=DANA_EMAIL, phone=DANA_PHONE, source=Source.SQUARE, external_id="SQ-DANA"
    )
    eve = await make_customer(
        engine,
        given_name="Eve",
        email="eve@example.org",
        phone="+14155552999",
        external_id="SQ-EVE",
    )
    dana_order = await make_order(
        engine, store_id=north, customer_id=dana, items=[{"name": "Latte", "unit_price": 500}]
    )
    eve_order = await make_order(engine, store_id=south, customer_id=eve)
    async with engine.begin() as conn:
        await conn.execute(
            insert(preferences).values(
                customer_id=dana, dietary=["vegetarian"], allergens=["peanuts"], cuisines=["thai"]
            )
        )
        await conn.execute(
            insert(interactions).values(
                customer_id=dana,
                source="CANONICAL",
                channel="PHONE",
                kind="complaint",
                subject="Cold latte",
                body=NOTE,
                actor="support:sam",
                occurred_at=datetime.now(UTC),
            )
        )
        await traits.recompute_traits(conn, [dana, eve])
    return World(north, south, dana, eve, dana_order, eve_order)


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await build_world(engine)


@pytest.fixture
def auth_settings(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return security_settings(database_url, redis_url, redis_prefix)


@pytest.fixture
async def http(engine: AsyncEngine, auth_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from resolvers.schema import schema

    async with app_client(auth_settings, schema) as client:
        yield client


CUSTOMER_FIELDS = """
  email phone
  preferences { dietary allergens cuisines marketingConsent { channel } }
  interactions(first: 5) { edges { node { kind subject body } } }
"""
BY_ID = "query($id: ID!) { customer(id: $id) { " + CUSTOMER_FIELDS + " } }"
ME = "{ me { " + CUSTOMER_FIELDS + " } }"


def token_for(role: str, world: World) -> str | None:
    return {
        "admin": make_token(role="admin", scope=ADMIN_SCOPES, sub="root"),
        "support": make_token(role="support", scope=SUPPORT_SCOPES, sub="sam"),
        "support-without-pii": make_token(role="support", scope="customers:read", sub="sue"),
        "partner": make_token(role="partner", scope=PARTNER_SCOPES, stores=["L-NORTH"]),
        "partner-claiming-pii": make_token(
            role="partner", scope=PARTNER_SCOPES + " pii:read", stores=[str(world.north)]
        ),
        "customer": make_token(role="customer", sub="SQUARE:SQ-DANA"),
        "anonymous": None,
    }[role]


# role -> (email, phone, allergens, interaction body) as the caller sees Dana
UNMASKED = (DANA_EMAIL, DANA_PHONE, ["peanuts"], "Called from 555-555-0123 about a cold latte")
MASKED = (
    "d***@example.com",
    "+1******2671",
    ["peanuts"],
    "Called from 555-555-0123 about a cold latte",
)
PARTNER_VIEW = ("d***@example.com", "+1******2671", [], None)
MATRIX: dict[str, tuple[Any, ...]] = {
    "admin": UNMASKED,
    "support": UNMASKED,
    "support-without-pii": MASKED,
    "partner": PARTNER_VIEW,
    "partner-claiming-pii": PARTNER_VIEW,
    "customer": UNMASKED,
}


async def ask(
    http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers = bearer(token) if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("role", sorted(MATRIX))
async def test_every_role_sees_each_pii_field_as_the_policy_says(
    http: httpx.AsyncClient, world: World, role: str
) -> None:
    token = token_for(role, world)
    if role == "customer":
        body = await ask(http, token, ME)
        person = body["data"]["me"]
    else:
        body = await ask(http, token, BY_ID, {"id": global_id("Customer", world.dana)})
        person = body["data"]["customer"]
    assert "errors" not in body, body
    email, phone, allergens, interaction_body = MATRIX[role]
    assert person["email"] == email
    assert person["phone"] == phone
    assert person["preferences"]["dietary"] == ["vegetarian"]  # dietary flags: everyone
    assert person["preferences"]["allergens"] == allergens
    [edge] = person["interactions"]["edges"]
    assert edge["node"]["body"] == interaction_body
    assert edge["node"]["kind"] == "complaint"
    if role.startswith("partner"):
        assert person["preferences"]["cuisines"] == []
        assert edge["node"]["subject"] is None


async def test_anonymous_callers_get_a_typed_forbidden_error_and_no_data(
    http: httpx.AsyncClient, world: World
) -> None:
    body = await ask(http, None, BY_ID, {"id": global_id("Customer", world.dana)})
    assert body["data"] == {"customer": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["customer"]
    assert error["extensions"]["requestId"]


async def test_a_customer_sees_only_itself(http: httpx.AsyncClient, world: World) -> None:
    token = token_for("customer", world)
    body = await ask(http, token, BY_ID, {"id": global_id("Customer", world.eve)})
    assert body["data"] == {"customer": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mine = await ask(http, token, "{ me { orders(first: 5) { edges { node { id } } } } }")
    ids = [e["node"]["id"] for e in mine["data"]["me"]["orders"]["edges"]]
    assert ids == [global_id("Order", world.dana_order)]
    orders = await ask(http, token, "{ orders(first: 5) { edges { node { id } } } }")
    assert orders["data"] is None
    assert orders["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_partner_never_loads_a_foreign_store_s_rows(
    http: httpx.AsyncClient, world: World
) -> None:
    token = token_for("partner", world)
    eve = await ask(http, token, BY_ID, {"id": global_id("Customer", world.eve)})
    assert eve == {"data": {"customer": None}}
    node = await ask(
        http,
        token,
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": global_id("Order", world.eve_order)},
    )
    assert node == {"data": {"node": None}}
    orders = await ask(http, token, "{ orders(first: 10) { edges { node { id } } } }")
    ids = [e["node"]["id"] for e in orders["data"]["orders"]["edges"]]
    assert ids == [global_id("Order", world.dana_order)]
    stores = await ask(http, token, "{ stores { name } }")
    assert stores["data"]["stores"] == [{"name": "North"}]
    found = await ask(http, token, '{ findCustomers(email: "eve@example.org") { id } }')
    assert found == {"data": {"findCustomers": []}}


async def test_unmasked_reads_are_audited_in_batches_with_who_what_and_request_id(
    http: httpx.AsyncClient, world: World, engine: AsyncEngine
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": BY_ID, "variables": {"id": global_id("Customer", world.dana)}},
        headers=bearer(token_for("support", world) or ""),
    )
    request_id = response.headers["x-request-id"]
    await ask(
        http,
        token_for("support-without-pii", world),
        BY_ID,
        {"id": global_id("Customer", world.dana)},
    )
    await ask(http, token_for("customer", world), ME)
    rows: list[Any] = []
    for _ in range(50):  # the writer flushes every second, off the request path
        async with engine.connect() as conn:
            rows = list((await conn.execute(select(audit_log))).mappings())
        if rows:
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 1  # masked reads and the customer's own reads are not audited
    [row] = rows
    assert row["actor"] == "sam"
    assert row["role"] == "support"
    assert row["action"] == "pii.read"
    assert row["customer_id"] == world.dana
    assert row["fields"] == ["email", "phone"]
    assert row["request_id"] == request_id


async def test_missing_scopes_null_the_field_with_a_typed_error(
    http: httpx.AsyncClient, world: World
) -> None:
    token = make_token(role="support", scope="customers:read")
    body = await ask(http, token, "{ orders(first: 1) { edges { node { id } } } }")
    assert body["data"] is None
    assert body["errors"][0]["extensions"] | {"requestId": "x"} == {
        "code": "FORBIDDEN",
        "reason": "scope",
        "requestId": "x",
    }


MERGE = """
mutation($a: ID!, $b: ID!) {
  mergeCustomers(input: {customerId: $a, otherCustomerId: $b}) { __typename }
}
"""


@pytest.mark.parametrize(
    "role", ["anonymous", "partner", "customer", "support-without-pii", "support"]
)
async def test_mutations_need_their_write_scope(
    http: httpx.AsyncClient, world: World, engine: AsyncEngine, role: str
) -> None:
    ids = {"a": global_id("Customer", world.dana), "b": global_id("Customer", world.eve)}
    body = await ask(http, token_for(role, world), MERGE, ids)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with engine.connect() as conn:
        merged = await conn.scalar(
            select(customers.c.merged_into).where(customers.c.id == world.eve)
        )
    assert merged is None


async def test_a_caller_with_identity_write_may_merge(
    http: httpx.AsyncClient, world: World
) -> None:
    ids = {"a": global_id("Customer", world.dana), "b": global_id("Customer", world.eve)}
    token = make_token(role="support", scope="customers:read identity:write")
    body = await ask(http, token, MERGE, ids)
    assert "errors" not in body, body
