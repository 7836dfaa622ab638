"""Ingestion throughput: signed webhooks through HTTP, and backfill import.

    python -m bench.ingest [--orders 20000] [--batch-size 500] [--webhooks 2000]
                           [--concurrency 32] [--runs 3]

``--orders 0`` or ``--webhooks 0`` skips that half. Each backfill run checks the rows it
stored (orders, line items, history, change feed, inbox, traits) and that a re-run of the
file changes nothing.

Needs a PostgreSQL server: ``GUESTGRAPH_DATABASE_URL`` (a server URL; a scratch database
is created on it and dropped afterwards) or, unset, the embedded one. Prints medians.
Targets from issue 3: >= 1,000 webhook events/s and >= 10,000 backfill orders/s (3 line
items each) on a 2-core machine, one process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

from api import importer
from domain import signatures
from readmodel import migrations
from readmodel.database import create_engine

TOAST_SECRET = "bench-toast-secret"
TOAST_STAMP = "2026-06-14T18:22:41.512Z"
GUESTS = 500  # distinct guests across a run's orders: most orders come from a repeat guest


def square_order(i: int, run: str) -> dict[str, Any]:
    lines = [
        {
            "uid": f"li-{k}",
            "name": name,
            "quantity": "1",
            "catalog_object_id": f"ITEM-{k}",
            "base_price_money": {"amount": price, "currency": "USD"},
            "total_money": {"amount": price, "currency": "USD"},
        }
        for k, (name, price) in enumerate([("Pizza", 1450), ("Salad", 995), ("Soda", 300)])
    ]
    return {
        "id": f"{run}-O{i:08d}",  # a letter: no digit run a card scrubber could take
        "location_id": f"LOC-{i % 4}",
        "customer_id": f"{run}-C{i % GUESTS}",
        "state": "COMPLETED",
        "version": 3,
        "created_at": "2026-06-14T18:05:10Z",
        "updated_at": "2026-06-14T18:35:10Z",
        "line_items": lines,
        "fulfillments": [{"uid": "f", "type": "PICKUP", "state": "COMPLETED"}],
        "total_money": {"amount": 2745 + 240, "currency": "USD"},
        "total_tax_money": {"amount": 240, "currency": "USD"},
    }


FIRST = ("Dana", "Ari", "Noor", "Mateo", "Kenji", "Zoe", "Priya", "Sam")
LAST = ("Okafor", "Lindqvist", "Haddad", "Moreno", "Tanaka", "Byrne", "Iyer", "Cohen")


def toast_guest(g: int, run: str) -> dict[str, Any]:
    """A Toast check's guest as Toast sends it: name, email and a national phone number."""
    return {
        "guid": f"{run}-guest-{g}",
        "firstName": FIRST[g % len(FIRST)],
        "lastName": LAST[g // len(FIRST) % len(LAST)],
        "email": f"guest{g}@{run}.example.com",
        # a number of this run's own: runs must not match each other's guests by phone
        "phone": f"628{2000000 + int(run, 16) % 16000 * GUESTS + g:07d}",
        "phoneCountryCode": "1",
    }


def toast_event(i: int, run: str) -> bytes:
    minute = f"{8 + i // 3600 % 12:02d}:{i // 60 % 60:02d}"
    return orjson.dumps(
        {
            "timestamp": TOAST_STAMP,
            "eventCategory": "order_updated",
            "eventType": "order_updated",
            "guid": f"{run}-evt-{i}",
            "details": {
                "restaurantGuid": f"rest-{i % 4}",
                "order": {
                    "guid": f"{run}-ord-{i}",
                    # orders spread over the day: a repeat guest's record gets newer versions
                    "openedDate": f"2026-06-14T{minute}:00.000+0000",
                    "modifiedDate": f"2026-06-14T{minute}:{i % 60:02d}.871+0000",
                    "approvalStatus": "APPROVED",
                    "source": "Online",
                    "checks": [
                        {
                            "guid": f"{run}-chk-{i}",
                            "paymentStatus": "PAID",
                            "customer": toast_guest(i % GUESTS, run),
                            "selections": [
                                {
                                    "guid": f"s{k}",
                                    "displayName": n,
                                    "quantity": 1.0,
                                    "price": p,
                                    "preDiscountPrice": p,
                                    "fulfillmentStatus": "SENT",
                                }
                                for k, (n, p) in enumerate([("Pizza", 14.5), ("Salad", 9.95)])
                            ],
                            "amount": 24.45,
                            "taxAmount": 2.14,
                            "payments": [
                                {
                                    "type": "CREDIT",
                                    "amount": 26.59,
                                    "tipAmount": 3.0,
                                    "paymentStatus": "CAPTURED",
                                }
                            ],
                        }
                    ],
                },
            },
        }
    )


CUSTOMERS = 500


async def backfill_once(url: str, orders: int, batch_size: int) -> float:
    """One timed import of ``orders`` Square orders (3 line items each) by known customers;
    then the stored rows are counted and a re-run is checked to change nothing."""
    run = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="gg-bench-"))
    path = folder / "orders.ndjson"
    path.write_bytes(importer.ndjson([square_order(i, run) for i in range(orders)]))
    customers = folder / "customers.ndjson"
    customers.write_bytes(
        importer.ndjson(
            [
                {
                    "id": f"{run}-C{c}",
                    "given_name": "Guest",
                    "family_name": str(c),
                    "email_address": f"guest{c}@{run}.example.com",
                    "version": 1,
                }
                for c in range(CUSTOMERS)
            ]
        )
    )
    engine = create_engine(url, pool_size=2)
    try:
        # customers are backfilled first (not timed): orders then reference known people
        await importer.run_import(engine, customers, "square-customers")
        started = time.perf_counter()
        summary = await importer.run_import(engine, path, "square-orders", batch_size=batch_size)
        elapsed = time.perf_counter() - started
        assert (summary.applied, summary.rejected) == (orders, 0), summary
        stored = await stored_rows(url, run)
        expected = {
            "orders": orders,
            "line items": 3 * orders,
            "status history": orders,
            "change feed": 2 * orders,
            "inbox": orders,
            "customers with traits": CUSTOMERS,
            "orders counted in traits": orders,
        }
        assert stored == expected, (stored, expected)
        again = await importer.run_import(engine, path, "square-orders", restart=True)
        assert (again.duplicate, again.applied) == (orders, 0), again
        assert await stored_rows(url, run) == expected
    finally:
        await engine.dispose()
    return orders / elapsed


async def stored_rows(url: str, run: str) -> dict[str, int]:
    """What one backfill run left in the database (its orders are named ``{run}-...``)."""
    conn = await asyncpg.connect(make_url(url).render_as_string(hide_password=False))
    try:
        like = f"{run}-%"
        row = await conn.fetchrow(
            """
            WITH o AS (SELECT id, customer_id FROM orders WHERE external_id LIKE $1)
            SELECT
              (SELECT count(*) FROM o) AS orders,
              (SELECT count(*) FROM order_line_items li JOIN o ON o.id = li.order_id)
                AS line_items,
              (SELECT count(*) FROM order_status_history h JOIN o ON o.id = h.order_id)
                AS history,
              (SELECT count(*) FROM change_feed f JOIN o ON o.id = f.order_id) AS feed,
              (SELECT count(*) FROM ingest_inbox WHERE event_id LIKE 'import:order:' || $1)
                AS inbox,
              (SELECT count(*) FROM customer_traits t
                WHERE t.customer_id IN (SELECT customer_id FROM o)) AS traits,
              (SELECT coalesce(sum(order_count), 0) FROM customer_traits t
                WHERE t.customer_id IN (SELECT customer_id FROM o)) AS counted
            """,
            like,
        )
    finally:
        await conn.close()
    return {
        "orders": row["orders"],
        "line items": row["line_items"],
        "status history": row["history"],
        "change feed": row["feed"],
        "inbox": row["inbox"],
        "customers with traits": row["traits"],
        "orders counted in traits": row["counted"],
    }


def toast_request(body: bytes, host: str) -> bytes:
    """One complete signed HTTP/1.1 request, built before the clock starts (signing is the
    sender's work, not the server's)."""
    sig = signatures.toast_signature(TOAST_SECRET, body, TOAST_STAMP)
    head = (
        f"POST /webhooks/toast HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"toast-signature: {sig}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send_all(host: str, port: int, requests: deque[bytes], statuses: list[int]) -> None:
    """One keep-alive connection: send a request, read its whole answer, repeat. A raw
    client on purpose: httpx costs more CPU per request than the server's handler, and on
    2 cores the client would be measured instead of the server."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while requests:
            writer.write(requests.popleft())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise RuntimeError("response without content-length")
            await reader.readexactly(length)
            statuses.append(status)
    finally:
        writer.close()
        await writer.wait_closed()


async def webhooks_once(url: str, port: int, count: int, concurrency: int) -> float:
    run = uuid.uuid4().hex[:8]
    host = "127.0.0.1"
    requests = deque(toast_request(toast_event(i, run), host) for i in range(count))
    statuses: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_send_all(host, port, requests, statuses) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    failed = [s for s in statuses if not 200 <= s < 300]
    assert len(statuses) == count and not failed, (len(statuses), failed[:5])
    await _verify_webhooks(url, run, count)
    return count / elapsed


async def _verify_webhooks(url: str, run: str, count: int) -> None:
    """Every acknowledged event is stored: its inbox row applied, its order written."""
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        applied = await conn.fetchval(
            "SELECT count(*) FROM ingest_inbox WHERE source = 'TOAST' AND event_id LIKE $1"
            " AND status = 'applied'",
            f"{run}-evt-%",
        )
        stored = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE source = 'TOAST' AND external_id LIKE $1",
            f"{run}-ord-%",
        )
        guests = await conn.fetchval(
            "SELECT count(*) FROM source_records WHERE source = 'TOAST' AND external_id LIKE $1",
            f"{run}-guest-%",
        )
    finally:
        await conn.close()
    want_guests = min(count, GUESTS)
    assert (applied, stored, guests) == (count, count, want_guests), (applied, stored, guests)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def quiesce(url: str) -> None:
    """Let the webhook runs start from a quiet database: without this, autovacuum and the
    checkpoint that the backfill's writes set off land in the middle of them."""
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GUESTGRAPH_DATABASE_URL": url,
        "GUESTGRAPH_TOAST_WEBHOOK_SECRET": TOAST_SECRET,
        "GUESTGRAPH_LOG_LEVEL": "WARNING",
        "GUESTGRAPH_DB_POOL_SIZE": "20",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--no-migrate", "--port", str(port)], env=env
    )


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(200):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become ready")


def scratch_database(server_url: str) -> tuple[str, str]:
    name = f"gg_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=importer.DEFAULT_BATCH_SIZE)
    parser.add_argument("--webhooks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    server_url = os.environ.get("GUESTGRAPH_DATABASE_URL")
    if not server_url:
        from api.embedded import start_embedded_postgres
        from api.settings import load_settings

        server_url = start_embedded_postgres(load_settings().data_dir)
    name, url = scratch_database(server_url)
    try:
        migrations.upgrade(url)
        backfill = [
            asyncio.run(backfill_once(url, args.orders, args.batch_size))
            for _ in range(args.runs if args.orders else 0)
        ]
        hooks: list[float] = []
        if args.webhooks:
            asyncio.run(quiesce(url))
            server = start_server(url, args.port)
            base = f"http://127.0.0.1:{args.port}"
            try:
                asyncio.run(wait_ready(base))
                hooks = [
                    asyncio.run(webhooks_once(url, args.port, args.webhooks, args.concurrency))
                    for _ in range(args.runs)
                ]
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        drop_database(server_url, name)

    print(f"{'measure':<66} {'median':>10} {'runs':>30} {'target':>8}")
    rows = [
        (f"signed Toast webhooks/s ({args.concurrency} concurrent, HTTP)", hooks, 1000),
        (
            f"backfill orders/s (3 line items, batches of {args.batch_size}, known customers)",
            backfill,
            10000,
        ),
    ]
    for label, values, target in rows:
        if not values:
            continue
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{label:<66} {statistics.median(values):>10,.0f} {runs:>30} {target:>8,}")


if __name__ == "__main__":
    main()
