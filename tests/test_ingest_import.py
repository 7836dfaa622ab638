"""Backfill: idempotent, resumable, rejected rows kept with reasons and replayable."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api import importer
from api.fetcher import Fetcher
from api.ingestion import replay
from api.settings import Settings
from readmodel import checkpoints
from readmodel.database import async_url
from readmodel.tables import (
    change_feed,
    customer_traits,
    ingest_inbox,
    order_line_items,
    order_status_history,
    orders,
    traits_owed,
)
from tests.ingest_support import square_order


def order_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        order = square_order(f"IMP{i:05d}", version=2, customer_id=f"CUST{i % 7}")
        line = order["line_items"][0]
        order["line_items"] = [dict(line, uid=f"li-{k}") for k in range(3)]
        rows.append(order)
    return rows


async def counts(engine: AsyncEngine) -> list[int]:
    """(orders, line items, change-feed rows, inbox rows)"""
    found = []
    async with engine.connect() as conn:
        for table in (orders, order_line_items, change_feed, ingest_inbox):
            found.append(
                int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            )
    return found


async def interrupted_import(
    engine: AsyncEngine, path: Path, batch_size: int, writers: int | None = None
) -> None:
    """Import ``path`` and stop it (as Ctrl-C would) when its first batch is reported."""

    def crash_after_first_batch(rows: int, offset: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await importer.run_import(
            engine,
            path,
            "square-orders",
            batch_size=batch_size,
            on_progress=crash_after_first_batch,
            writers=writers,
        )


async def test_importing_a_file_twice_changes_nothing_the_second_time(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(25)))
    first = await importer.run_import(engine, path, "square-orders", batch_size=10)
    assert (first.applied, first.rejected) == (25, 0)
    after_first = await counts(engine)
    assert after_first[:2] == [25, 75]
    again = await importer.run_import(engine, path, "square-orders")
    assert (again.skipped, again.rows) == (25, 0)  # the checkpoint says it is done
    forced = await importer.run_import(engine, path, "square-orders", restart=True)
    assert (forced.duplicate, forced.applied) == (25, 0)
    assert await counts(engine) == after_first


async def test_an_interrupted_import_resumes_after_the_last_committed_batch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(30)))

    # one writer: nothing else in flight, so exactly the first batch is committed
    await interrupted_import(engine, path, batch_size=10, writers=1)
    assert (await counts(engine))[0] == 10
    resumed = await importer.run_import(engine, path, "square-orders", batch_size=10)
    assert (resumed.skipped, resumed.applied, resumed.duplicate) == (10, 20, 0)
    assert (await counts(engine))[0] == 30


async def checkpoint_of(engine: AsyncEngine, path: Path) -> int:
    async with engine.connect() as conn:
        return await checkpoints.position(conn, importer.file_key(path, "square-orders"))


async def test_with_two_writers_an_interrupted_import_loses_and_doubles_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(40)))

    await interrupted_import(engine, path, batch_size=10)  # two writers, the default
    # the batch beside the first one was already writing: it finished, it was not cut off
    stored = (await counts(engine))[0]
    assert stored == 20
    # the checkpoint never passes a batch that did not commit
    assert (await checkpoint_of(engine, path)) in (10, 20)
    resumed = await importer.run_import(engine, path, "square-orders", batch_size=10)
    assert resumed.skipped == await checkpoint_of(engine, path) - resumed.rows
    assert resumed.applied == 20  # the two batches never written
    assert resumed.duplicate == 20 - resumed.skipped  # a committed batch read again
    assert (await counts(engine))[:2] == [40, 120]
    assert await checkpoint_of(engine, path) == 40


async def test_two_writers_apply_the_versions_of_one_order_spread_over_batches(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Batches written side by side meet the same orders and customers; the newest version
    wins whatever commits first, and every status reported is in the history."""
    steps = [(1, "OPEN", "PROPOSED"), (2, "OPEN", "PREPARED"), (3, "COMPLETED", "COMPLETED")]
    rows = [
        square_order(f"SPREAD{i}", version=v, state=st, fulfillment_state=fs, customer_id="C1")
        for v, st, fs in steps
        for i in range(12)
    ]
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(rows))
    summary = await importer.run_import(engine, path, "square-orders", batch_size=5, writers=2)
    assert (summary.applied, summary.rejected) == (36, 0)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(orders.c.source_version, orders.c.status))).all()
        history = (
            await conn.execute(
                select(order_status_history.c.status, func.count()).group_by(
                    order_status_history.c.status
                )
            )
        ).all()
    assert sorted(stored) == [(3, "COMPLETED")] * 12
    assert dict(history) == {"PLACED": 12, "READY": 12, "COMPLETED": 12}
    known, owed = await traits_and_debt(engine)
    assert owed == set() and list(known.values()) == [(12, 12 * 3154)]
    assert await checkpoint_of(engine, path) == 36


async def traits_and_debt(engine: AsyncEngine) -> tuple[dict[int, tuple[int, int]], set[int]]:
    """({customer: (order count, spend)} from customer_traits, customers owing traits)"""
    async with engine.connect() as conn:
        known = {
            r.customer_id: (r.order_count, r.total_spend_amount)
            for r in await conn.execute(select(customer_traits))
        }
        owed = set((await conn.execute(select(traits_owed.c.customer_id))).scalars())
    return known, owed


async def test_an_import_recomputes_traits_once_at_its_end_from_every_batch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(28)))  # 7 customers, 4 orders each
    seen: list[tuple[dict[int, tuple[int, int]], set[int]]] = []

    async def look() -> None:
        seen.append(await traits_and_debt(engine))

    pending: list[asyncio.Task[None]] = []
    summary = await importer.run_import(
        engine,
        path,
        "square-orders",
        batch_size=7,
        on_progress=lambda rows, offset: pending.append(asyncio.create_task(look())),
    )
    await asyncio.gather(*pending)
    assert summary.applied == 28
    # while the batches commit, their customers owe traits; none are computed yet
    assert seen and all(not known and len(owed) == 7 for known, owed in seen)
    known, owed = await traits_and_debt(engine)
    assert owed == set() and summary.traits_settled == 7
    assert sorted(known.values()) == [(4, 4 * 3154)] * 7


async def test_traits_an_interrupted_import_owes_are_settled_by_the_background_worker(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(14)))

    await interrupted_import(engine, path, batch_size=7, writers=1)
    known, owed = await traits_and_debt(engine)
    assert (known, len(owed)) == ({}, 7)  # the debt is as durable as the committed batch
    worker = Fetcher(engine, settings)
    try:
        assert await worker.settle_traits_once() == 7
        assert await worker.settle_traits_once() == 0
    finally:
        await worker.client.aclose()
    known, owed = await traits_and_debt(engine)
    assert owed == set()
    assert sorted(known.values()) == [(1, 3154)] * 7


async def test_a_batch_that_meets_a_transient_error_is_written_again_whole(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A transient failure (here: a lock wait longer than the session's lock_timeout, on the
    checkpoint row another transaction holds) rolls the whole batch back; it is tried again,
    and every row is applied exactly once."""
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(30)))
    key = importer.file_key(path, "square-orders")
    impatient = create_async_engine(
        async_url(database_url), connect_args={"server_settings": {"lock_timeout": "100"}}
    )
    holder = await asyncpg.connect(make_url(database_url).render_as_string(hide_password=False))
    try:
        await holder.execute(
            "INSERT INTO import_checkpoints (file_key, kind) VALUES ($1, 'square-orders')", key
        )
        await holder.execute("BEGIN")
        await holder.execute("SELECT 1 FROM import_checkpoints WHERE file_key = $1 FOR UPDATE", key)
        running = asyncio.create_task(
            importer.run_import(impatient, path, "square-orders", batch_size=10, writers=1)
        )
        await asyncio.sleep(0.4)  # the first batch times out on the checkpoint row, retries
        assert not running.done()
        await holder.execute("ROLLBACK")
        summary = await asyncio.wait_for(running, 60)
    finally:
        await holder.close()
        await impatient.dispose()
    assert (summary.applied, summary.duplicate, summary.rejected) == (30, 0, 0)
    assert (await counts(engine))[:2] == [30, 90]
    assert await checkpoint_of(engine, path) == 30


class _Cycle:
    """Garbage only the cyclic collector can free: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


async def test_an_import_collects_cyclic_garbage_every_few_batches_and_restores_the_collector(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The automatic collector is paused while an import runs; cyclic garbage is still
    freed every ``COLLECT_EVERY`` batches, so a long import's memory stays bounded, and the
    collector is as it was afterwards, also after an interrupted import."""
    monkeypatch.setattr(importer, "COLLECT_EVERY", 3)
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(24)))  # 12 batches of 2
    dropped: list[weakref.ref[_Cycle]] = []
    alive_when_reported: list[int] = []
    enabled_during: set[bool] = set()

    def on_progress(rows: int, offset: int) -> None:
        enabled_during.add(gc.isenabled())
        alive_when_reported.append(sum(ref() is not None for ref in dropped))
        dropped.append(weakref.ref(_Cycle()))  # unreachable at once, but for its cycle

    assert gc.isenabled()
    summary = await importer.run_import(
        engine, path, "square-orders", batch_size=2, writers=1, on_progress=on_progress
    )
    assert summary.applied == 24
    assert enabled_during == {False}
    # never more than a collection's worth of cycles waiting: they were collected on the way
    assert max(alive_when_reported) <= 3
    assert gc.isenabled() and gc.get_freeze_count() == 0

    other = tmp_path / "more.ndjson"
    other.write_bytes(importer.ndjson(order_rows(30)[24:]))
    await interrupted_import(engine, other, batch_size=2, writers=1)
    assert gc.isenabled() and gc.get_freeze_count() == 0


async def test_bad_rows_are_rejected_with_reasons_and_the_rest_applies(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    good, missing = order_rows(2)
    del missing["location_id"]
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson([good]) + b"{not json\n" + importer.ndjson([missing]))
    summary = await importer.run_import(engine, path, "square-orders")
    assert (summary.applied, summary.rejected) == (1, 2)
    assert "order.location_id: is required" in summary.reasons
    assert any(r.startswith("line 2: malformed JSON") for r in summary.reasons)


async def test_a_csv_customer_export_is_imported(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "Square Customer ID,First Name,Last Name,Email Address,Phone Number\n"
        "C1,Dana,Ortiz,Dana.Ortiz@Example.com,(415) 555-0123\n"
        "C2,Sam,Lee,,\n",
        encoding="utf-8",
    )
    summary = await importer.run_import(engine, path, "square-customers")
    assert (summary.applied, summary.rejected) == (2, 0)


async def test_a_rejected_event_can_be_replayed_after_the_cause_is_fixed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    status = {
        "id": "s1",
        "type": "order.status_changed",
        "data": {"order_id": "late-order", "status": "READY", "at": "2025-06-14T18:20:00Z"},
    }
    path = tmp_path / "events.ndjson"
    path.write_bytes(importer.ndjson([status]))
    first = await importer.run_import(engine, path, "canonical")
    assert first.reasons == {"order 'late-order' is not known": 1}
    order = {
        "id": "o1",
        "type": "order.upserted",
        "data": {
            "id": "late-order",
            "store_id": "s",
            "status": "ACCEPTED",
            "fulfillment": "PICKUP",
            "currency": "USD",
            "placed_at": "2025-06-14T18:00:00Z",
            "line_items": [],
        },
    }
    fix = tmp_path / "fix.ndjson"
    fix.write_bytes(importer.ndjson([order]))
    await importer.run_import(engine, fix, "canonical")
    async with engine.connect() as conn:
        row_id = (
            await conn.execute(select(ingest_inbox.c.id).where(ingest_inbox.c.status == "rejected"))
        ).scalar_one()
    outcome = await replay(engine, row_id, actor="test")
    assert outcome.status == "applied"
    async with engine.connect() as conn:
        assert (await conn.execute(select(orders.c.status))).scalar_one() == "READY"
        status_now = (
            await conn.execute(select(ingest_inbox.c.status).where(ingest_inbox.c.id == row_id))
        ).scalar_one()
    assert status_now == "applied"


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GUESTGRAPH_DATABASE_URL": database_url,
        "GUESTGRAPH_LOG_LEVEL": "ERROR",
        "COLUMNS": "300",
    }
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_cli_imports_lists_rejected_rows_and_replays_them(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    good, bad = order_rows(2)
    bad["total_money"]["currency"] = "U$"
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson([good, bad]))
    done = await asyncio.to_thread(_cli, database_url, "import", "square-orders", str(path))
    assert done.returncode == 0, done.stderr
    assert "applied 1, duplicate 0, rejected 1" in done.stderr
    assert "traits recomputed for 1 customers" in done.stderr
    listed = await asyncio.to_thread(_cli, database_url, "inbox", "list", "--status", "rejected")
    assert listed.returncode == 0, listed.stderr
    assert "not an ISO 4217" in listed.stdout
    replayed = await asyncio.to_thread(_cli, database_url, "inbox", "replay", "--all-rejected")
    assert replayed.returncode == 1  # still rejected: the stored row is still bad
    assert "rejected" in replayed.stdout
    assert orjson.loads(orjson.dumps(good))["id"] == "IMP00000"


async def test_the_cli_imports_with_the_number_of_writers_asked_for(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(importer.ndjson(order_rows(12)))
    args = ("import", "square-orders", str(path), "--batch-size", "2")
    refused = await asyncio.to_thread(_cli, database_url, *args, "--writers", "0")
    assert refused.returncode == 2 and "--writers" in refused.stderr
    assert (await counts(engine))[0] == 0
    done = await asyncio.to_thread(_cli, database_url, *args, "--writers", "4")
    assert done.returncode == 0, done.stderr
    assert "applied 12, duplicate 0, rejected 0" in done.stderr
    assert (await counts(engine))[:2] == [12, 36]
    assert await checkpoint_of(engine, path) == 12
