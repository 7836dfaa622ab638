"""Benchmark: the customer-360 query over HTTP against a real uvicorn process.

    python -m bench.customer360 [--customers 100000] [--seconds 10] [--concurrency 1,16,64]

Seeds (once) a database ``guestgraph_bench`` on the server of ``GUESTGRAPH_BENCH_DATABASE_URL``
(else ``GUESTGRAPH_TEST_DATABASE_URL``, else ``GUESTGRAPH_DATABASE_URL``) with N customers
and ~10 N orders of 3 line items each (customers 1..N/5 have 40 orders; the rest 2-3), using
set-based SQL (``generate_series``): ~1-2 minutes for 100k / 1M. Then it starts
``uvicorn api.app:app_from_env --factory`` (uvloop, httptools) and drives the customer-360
document (profile, identities, loyalty, insights, 20 orders with line items and menu items)
for random active customers at each concurrency for a fixed time, with a small keep-alive
HTTP/1.1 client (one process; the server is another process). It prints req/s, p50 and p99,
the SQL statements per operation (counted in-process), and the floor: the same rows fetched
with plain asyncpg (3 prepared statements), and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

BENCH_DATABASE = "guestgraph_bench"
ACTIVE_SHARE = 5  # customers 1..N/5 are "active" (40 orders); the bench reads them

CUSTOMER_360 = """
query Customer360($id: ID!) {
  customer(id: $id) {
    id displayName givenName familyName email phone createdAt
    identities { source externalId matchedBy }
    loyalty { program balance lifetimePoints tier }
    insights { orderCount totalSpend { amount formatted } lastOrderAt usualOrderHour }
    orders(first: 20) {
      edges { node {
        id status placedAt isDelayed total { amount formatted }
        lineItems { name quantity menuItem { name } }
      } }
    }
  }
}
"""

SEED = [
    """INSERT INTO stores (source, external_id, name, timezone, currency)
       SELECT 'SQUARE', 'bench-store-' || g, 'Store ' || g, 'America/New_York', 'USD'
       FROM generate_series(1, 20) g""",
    """INSERT INTO menu_items (source, external_id, store_id, name, price_amount, currency)
       SELECT 'SQUARE', 'bench-item-' || g, (SELECT min(id) FROM stores) + (g % 20),
              'Item ' || g, 300 + (g * 37) % 1500, 'USD'
       FROM generate_series(1, 200) g""",
    """INSERT INTO customers (id, given_name, family_name, display_name, email,
                              email_normalized, phone)
       OVERRIDING SYSTEM VALUE
       SELECT g, 'Guest' || g, 'Family' || (g % 997), 'Guest' || g || ' Family' || (g % 997),
              'guest' || g || '@example.com', 'guest' || g || '@example.com',
              '+1415' || lpad((5550000 + g % 1000000)::text, 7, '0')
       FROM generate_series(1::bigint, :customers::bigint) g""",
    "SELECT setval(pg_get_serial_sequence('customers', 'id'), :customers::bigint)",
    """INSERT INTO source_records (source, external_id, customer_id, matched_by)
       SELECT 'SQUARE', 'bench-cust-' || g, g, 'new'
       FROM generate_series(1::bigint, :customers::bigint) g""",
    """INSERT INTO orders (source, external_id, store_id, customer_id, status, fulfillment,
                           channel, currency, subtotal_amount, tax_amount, total_amount,
                           placed_at, promised_at)
       SELECT 'SQUARE', 'bench-order-' || c || '-' || n, (SELECT min(id) FROM stores) + (c % 20),
              c, 'COMPLETED', 'PICKUP', CASE WHEN n % 3 = 0 THEN 'IN_STORE' ELSE 'ONLINE' END,
              'USD', 1500, 120, 1620,
              now() - make_interval(hours => (n * 31 + c % 17)::int),
              now() - make_interval(hours => (n * 31 + c % 17)::int) + interval '20 minutes'
       FROM generate_series(1::bigint, :customers::bigint) c,
            generate_series(1, 40) n
       WHERE n <= CASE WHEN c <= :customers::bigint / 5 THEN 40 ELSE 2 + (c % 2)::int END""",
    """INSERT INTO order_line_items (order_id, position, name, quantity, unit_price_amount,
                                     total_amount, currency, menu_item_id)
       SELECT o.id, p, 'Item ' || ((o.id + p) % 200 + 1), 1, 500, 500, 'USD',
              (SELECT min(id) FROM menu_items) + (o.id + p) % 200
       FROM orders o, generate_series(0, 2) p""",
    """INSERT INTO customer_traits (customer_id, order_count, total_spend_amount, currency,
                                    first_order_at, last_order_at, usual_order_hour,
                                    store_ids)
       SELECT customer_id, count(*), sum(total_amount), 'USD', min(placed_at), max(placed_at),
              12, array_agg(DISTINCT store_id)
       FROM orders GROUP BY customer_id""",
    """INSERT INTO loyalty_accounts (customer_id, program, source, external_id, balance,
                                     lifetime_points)
       SELECT g, 'Stamps', 'SQUARE', 'bench-loyalty-' || g, g % 500, g % 500 + 100
       FROM generate_series(1::bigint, :customers::bigint / 5) g""",
    "ANALYZE",
]


def server_url() -> str:
    for name in (
        "GUESTGRAPH_BENCH_DATABASE_URL",
        "GUESTGRAPH_TEST_DATABASE_URL",
        "GUESTGRAPH_DATABASE_URL",
    ):
        if os.environ.get(name):
            return os.environ[name]
    sys.exit("set GUESTGRAPH_BENCH_DATABASE_URL (a postgresql:// server URL)")


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def prepare_database(url: str, customers: int) -> str:
    """The bench database URL, created, migrated and seeded when it is not already."""
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DATABASE
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    finally:
        await admin.close()
    bench_url = with_database(url, BENCH_DATABASE)
    from readmodel import migrations

    await asyncio.to_thread(migrations.upgrade, bench_url)
    conn = await asyncpg.connect(bench_url)
    try:
        seeded = await conn.fetchval("SELECT count(*) FROM customers")
        if seeded != customers:
            print(f"seeding {customers} customers, ~{customers * 10} orders ...", flush=True)
            started = time.perf_counter()
            tables = "stores, menu_items, customers, source_records, orders, order_line_items, "
            tables += "customer_traits, loyalty_accounts, loyalty_ledger, change_feed"
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            for statement in SEED:
                sql = statement.replace(":customers", str(int(customers)))
                await conn.execute(sql)
            print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await conn.close()
    return bench_url


# --- load -------------------------------------------------------------------------------------


@dataclass
class Result:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


JWT_SECRET = "bench-secret-" + "x" * 40


def bearer_token() -> str:
    """A support user's token, as ``POST /oauth/token`` would issue it."""
    import jwt

    now = int(time.time())
    claims = {
        "sub": "bench",
        "role": "support",
        "scope": "customers:read pii:read orders:read",
        "iss": "guestgraph",
        "aud": "guestgraph",
        "iat": now,
        "exp": now + 3600,
    }
    return str(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))


TOKEN = bearer_token()


def request_bytes(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_client(
    host: str, port: int, bodies: list[bytes], until: float, result: Result
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            payload = request_bytes(host, port, random.choice(bodies))
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in body:
                result.errors += 1
    finally:
        writer.close()


async def drive(
    host: str, port: int, bodies: list[bytes], concurrency: int, seconds: float
) -> Result:
    warm = Result(concurrency, 0, 0, 1.0, [])
    await asyncio.gather(
        *(one_client(host, port, bodies, time.perf_counter() + 2, warm) for _ in range(concurrency))
    )
    result = Result(concurrency, 0, 0, seconds, [])
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *(one_client(host, port, bodies, until, result) for _ in range(concurrency))
    )
    return result


# --- statements per operation, and the asyncpg floor ------------------------------------------


def count_fields(value: Any) -> int:
    """Fields in a response: every key of every object (what graphql-core resolves)."""
    if isinstance(value, dict):
        return len(value) + sum(count_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_fields(v) for v in value)
    return 0


async def statements_per_operation(url: str, customer_id: int) -> tuple[int, int]:
    from sqlalchemy import event

    from domain.viewer import DEVELOPMENT_ADMIN
    from readmodel.database import create_engine
    from readmodel.hub import InProcessHub
    from resolvers.context import Context
    from resolvers.node import to_global_id
    from resolvers.schema import schema

    engine = create_engine(url, pool_size=4)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        context = Context(engine=engine, hub=InProcessHub(), viewer=DEVELOPMENT_ADMIN)
        result = await schema.execute(
            CUSTOMER_360,
            variable_values={"id": to_global_id("Customer", customer_id)},
            context_value=context,
        )
        assert not result.errors, result.errors
    finally:
        await engine.dispose()
    return len(statements), count_fields(result.data)


FLOOR_CUSTOMER = """
SELECT c.id, c.display_name, c.given_name, c.family_name, c.email, c.phone, c.created_at,
       t.order_count, t.total_spend_amount, t.first_order_at, t.last_order_at,
       la.program, la.balance, la.lifetime_points, la.tier,
       (SELECT jsonb_agg(jsonb_build_object('source', s.source, 'external_id', s.external_id))
        FROM source_records s WHERE s.customer_id = c.id) AS identities
FROM customers c LEFT JOIN customer_traits t ON t.customer_id = c.id
LEFT JOIN LATERAL (SELECT * FROM loyalty_accounts a WHERE a.customer_id = c.id
                   ORDER BY lifetime_points DESC LIMIT 1) la ON true
WHERE c.id = $1
"""
FLOOR_ORDERS = """
SELECT o.id, o.status, o.fulfillment, o.placed_at, o.promised_at, o.total_amount, o.currency
FROM orders o WHERE o.customer_id = $1 ORDER BY o.placed_at DESC, o.id DESC LIMIT 21
"""
FLOOR_ITEMS = """
SELECT li.order_id, li.name, li.quantity, li.unit_price_amount, li.currency, m.id, m.name
FROM order_line_items li LEFT JOIN menu_items m ON m.id = li.menu_item_id
WHERE li.order_id = ANY($1::bigint[]) ORDER BY li.order_id, li.position
"""


async def asyncpg_floor(url: str, ids: list[int], iterations: int = 1000) -> float:
    """Median ms to fetch the customer-360 rows with plain asyncpg (3 prepared statements)."""
    conn = await asyncpg.connect(url)
    try:
        customer = await conn.prepare(FLOOR_CUSTOMER)
        orders = await conn.prepare(FLOOR_ORDERS)
        items = await conn.prepare(FLOOR_ITEMS)
        timings = []
        for _ in range(iterations):
            customer_id = random.choice(ids)
            started = time.perf_counter()
            await customer.fetchrow(customer_id)
            rows = await orders.fetch(customer_id)
            await items.fetch([r["id"] for r in rows])
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)
    finally:
        await conn.close()


# --- main -----------------------------------------------------------------------------------------


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
    env.update(
        {
            "GUESTGRAPH_DATABASE_URL": url,
            "GUESTGRAPH_LOG_LEVEL": "WARNING",
            "GUESTGRAPH_JWT_SECRET": JWT_SECRET,
            # the bench is one client asking as fast as it can: lift its rate limit
            "GUESTGRAPH_RATE_LIMIT_CLIENT": "100000000/minute",
        }
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
    )


async def wait_ready(host: str, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("server did not become ready")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    url = await prepare_database(server_url(), args.customers)
    from resolvers.node import to_global_id

    active = list(range(1, args.customers // ACTIVE_SHARE + 1))
    bodies = [
        orjson.dumps({"query": CUSTOMER_360, "variables": {"id": to_global_id("Customer", i)}})
        for i in random.sample(active, min(2000, len(active)))
    ]
    statements, fields = await statements_per_operation(url, active[0])
    floor_ms = await asyncpg_floor(url, active)

    host = "127.0.0.1"
    server = start_server(url, args.port)
    try:
        await wait_ready(host, args.port)
        results = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            results.append(await drive(host, args.port, bodies, concurrency, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)

    print()
    print(
        f"customer 360 (profile, identities, loyalty, insights, 20 orders x 3 line items "
        f"with menu items); {args.customers} customers; {args.seconds:.0f} s per level; "
        f"server: 1 uvicorn process"
    )
    print(f"resolved fields per response: {fields}; SQL statements per operation: {statements}")
    print(f"asyncpg floor (same rows, 3 prepared statements, 1 connection): {floor_ms:.2f} ms")
    print()
    print("| clients | req/s | p50 ms | p99 ms | errors | p50 / asyncpg floor |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        p50 = r.percentile(0.5)
        print(
            f"| {r.concurrency} | {r.rps:.0f} | {p50:.1f} | {r.percentile(0.99):.1f} | "
            f"{r.errors} | {p50 / floor_ms:.1f}x |"
        )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
