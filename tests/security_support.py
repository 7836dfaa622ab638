"""Shared pieces of the auth and security tests: settings, tokens, a small test schema.

The test schema exercises the permission mechanism (``resolvers.permissions``) and the
row scoping (``readmodel.scoping``) over the real read model, independent of the
product schema: customers with email/phone (PII), notes (hidden from partners), dietary
flags and allergens, orders by store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import strawberry
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text

from api.app import create_app
from api.settings import Mode, Settings
from readmodel import scoping
from readmodel.tables import customers, orders
from resolvers.context import Info
from resolvers.permissions import guarded, hidden_from_partners, pii, requires, roles

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ISSUER = "guestgraph"
AUDIENCE = "guestgraph"


def security_settings(
    database_url: str, redis_url: str, redis_prefix: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "mode": Mode.PRODUCTION,
        "jwt_secret": SECRET,
        **overrides,
    }
    return Settings(**values)


def make_token(
    *,
    role: str,
    scope: str = "",
    sub: str = "tester",
    stores: list[Any] | None = None,
    secret: str = SECRET,
    lifetime_s: int = 300,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "role": role,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
    }
    if stores is not None:
        payload["stores"] = stores
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN_SCOPES = "customers:read orders:read pii:read"
SUPPORT_SCOPES = "customers:read pii:read orders:read interactions:write loyalty:write"
PARTNER_SCOPES = "orders:read customers:read ingest:write"


# --- the test schema --------------------------------------------------------------------


@guarded(lambda: requires("customers:read"))
@strawberry.type
class Dietary:
    flags: list[str]


@strawberry.type
class TestCustomer:
    pk: strawberry.Private[int]
    id: int
    name: str | None
    email: str | None = strawberry.field(extensions=[pii("email")])
    phone: str | None = strawberry.field(extensions=[pii("phone")])
    notes: str | None = strawberry.field(extensions=[hidden_from_partners()])
    dietary: list[str]
    allergens: list[str] = strawberry.field(extensions=[hidden_from_partners(list)])


@strawberry.type
class TestOrder:
    id: int
    store_id: int
    customer_id: int | None


def _customer(row: Any) -> TestCustomer:
    return TestCustomer(
        pk=row.id,
        id=row.id,
        name=row.display_name,
        email=row.email,
        phone=row.phone,
        notes="asked for extra napkins",
        dietary=["vegetarian"],
        allergens=["peanuts"],
    )


async def _customers(info: Info, condition: Any) -> list[TestCustomer]:
    scope = scoping.row_scope(info.context.viewer)
    query = (
        select(customers.c.id, customers.c.display_name, customers.c.email, customers.c.phone)
        .where(condition, scoping.customers_condition(scope))
        .order_by(customers.c.id)
    )
    async with info.context.engine.connect() as conn:
        return [_customer(row) for row in await conn.execute(query)]


@strawberry.type
class Tree:
    depth: int

    @strawberry.field
    def child(self) -> Tree:
        return Tree(depth=self.depth + 1)


def nested(levels: int) -> str:
    """``{ tree { child { ... { depth } } } }`` with ``levels`` levels of fields."""
    return "{ tree " + "{ child " * (levels - 2) + "{ depth }" + " }" * (levels - 2) + " }"


@strawberry.type
class TestQuery:
    @strawberry.field
    def tree(self) -> Tree:
        return Tree(depth=1)

    @strawberry.field(extensions=[requires("customers:read")])
    async def customer(self, info: Info, id: int) -> TestCustomer | None:
        found = await _customers(info, customers.c.id == id)
        return found[0] if found else None

    @strawberry.field(extensions=[requires("customers:read")])
    async def customers(self, info: Info, first: int = 10) -> list[TestCustomer]:
        return (await _customers(info, customers.c.merged_into.is_(None)))[:first]

    @strawberry.field(extensions=[requires("orders:read")])
    async def orders(self, info: Info, first: int = 10) -> list[TestOrder]:
        scope = scoping.row_scope(info.context.viewer)
        query = (
            select(orders.c.id, orders.c.store_id, orders.c.customer_id)
            .where(scoping.orders_condition(scope))
            .order_by(orders.c.id)
            .limit(first)
        )
        async with info.context.engine.connect() as conn:
            return [
                TestOrder(id=r.id, store_id=r.store_id, customer_id=r.customer_id)
                for r in await conn.execute(query)
            ]

    @strawberry.field(extensions=[roles()])
    def nobody(self) -> str | None:
        return "never"

    @strawberry.field
    async def me(self, info: Info) -> TestCustomer | None:
        viewer = info.context.viewer
        if viewer.customer_id is None:
            return None
        found = await _customers(info, customers.c.id == viewer.customer_id)
        return found[0] if found else None

    @strawberry.field
    def dietary(self) -> Dietary:
        return Dietary(flags=["vegan"])

    @strawberry.field
    def ping(self) -> str:
        return "pong"

    @strawberry.field
    def echo(self, value: str) -> str:
        return value

    @strawberry.field
    def numbers(self, values: list[int]) -> int:
        return len(values)

    @strawberry.field
    async def sleep(self, seconds: float) -> bool:
        await asyncio.sleep(min(seconds, 5.0))
        return True

    @strawberry.field
    async def pg_sleep(self, info: Info, seconds: float) -> bool:
        async with info.context.engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(:s)"), {"s": min(seconds, 5.0)})
        return True

    @strawberry.field
    def boom(self) -> str:
        raise RuntimeError("SELECT secret FROM internals -- Traceback")


@strawberry.type
class TestMutation:
    @strawberry.mutation
    def touch(self, value: int) -> int:
        return value


@strawberry.type
class TestSubscription:
    @strawberry.subscription
    async def ticks(self, count: int = 1) -> AsyncIterator[int]:
        for i in range(min(count, 3)):
            yield i


test_schema = strawberry.Schema(
    query=TestQuery, mutation=TestMutation, subscription=TestSubscription
)


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, schema: strawberry.Schema = test_schema
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a running app (lifespan included) built with ``schema``."""
    app = create_app(settings, schema=schema)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
