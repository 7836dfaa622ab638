"""guestgraph demo: the data set arrives through the real import path and looks real."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.demo import generate, seed
from readmodel.tables import (
    customers,
    ingest_inbox,
    loyalty_ledger,
    menu_items,
    order_status_history,
    orders,
    source_records,
    stores,
)
from tests import services


def test_the_same_seed_generates_the_same_payloads() -> None:
    assert generate(30, seed=3) == generate(30, seed=3)
    assert generate(30, seed=3) != generate(30, seed=4)


async def test_the_demo_data_set_is_imported_through_the_inbox(
    engine: AsyncEngine, database_url: str
) -> None:
    counts = await seed(database_url, 40, 5)
    assert counts["square-orders"] > 0 and counts["toast-orders"] > 0

    async def count(table: object, *where: object) -> int:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(table)  # type: ignore[arg-type]
            for clause in where:
                query = query.where(clause)  # type: ignore[arg-type]
            return int((await conn.execute(query)).scalar_one())

    assert await count(stores) == 4
    assert await count(menu_items, menu_items.c.tags.contains(["vegan"])) > 0
    assert await count(ingest_inbox, ingest_inbox.c.status == "rejected") == 0
    # people present in several sources resolve to fewer golden customers than records
    records = await count(source_records)
    golden = await count(customers, customers.c.merged_into.is_(None))
    assert golden < records
    # orders arrive as several versions: some have more than one status in their history
    async with engine.connect() as conn:
        multi = (
            await conn.execute(
                select(func.count()).select_from(
                    select(order_status_history.c.order_id)
                    .group_by(order_status_history.c.order_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        ).scalar_one()
    assert multi > 0
    assert await count(orders) > 0
    assert await count(loyalty_ledger) > 0


async def test_the_demo_command_serves_a_playground_that_answers_without_a_token(
    engine: AsyncEngine, database_url: str
) -> None:
    """README command 1: ``guestgraph demo`` seeds, then serves in development mode."""
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_") or "TEST" in k}
    env["GUESTGRAPH_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "api", "demo", "--customers", "12", "--port", str(port)],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(1200):
                assert process.returncode is None, "guestgraph demo exited early"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            response = await client.post(
                "/graphql",
                json={"query": "{ customers(first: 3) { totalCount edges { node { email } } } }"},
            )
        assert response.status_code == 200, response.text
        found = response.json()["data"]["customers"]
        assert found["totalCount"] > 0
        assert all("***" not in (edge["node"]["email"] or "") for edge in found["edges"])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
