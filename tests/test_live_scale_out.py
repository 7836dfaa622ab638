"""Scale-out proof: two API processes, one PostgreSQL, one Redis; subscribe on B, change on A.

Status changes are ingested through process A's signed Toast webhook endpoint. Every event
must reach the subscriber on B in order; a reconnect with ``after`` must deliver exactly
the missed ones; with Redis stopped, events must still flow (the hub polls PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import OrderStatus, Source
from tests import services
from tests.factories import make_order, make_store
from tests.ingest_support import TOAST_SECRET, dumps, post_toast, toast_order_event
from tests.live_support import Watcher, change_status, order_gid, store_gid

pytestmark = pytest.mark.e2e

WATCH_STORE = """
subscription Watch($storeId: ID, $after: String) {
  orderStatusChanged(storeId: $storeId, after: $after) { cursor orderId status }
}
"""

FLOW = [OrderStatus.ACCEPTED, OrderStatus.PREPARING, OrderStatus.READY, OrderStatus.COMPLETED]

NODE_CLIENT_PACKAGES = ["graphql-ws@6.4.2", "ws@8.23.0", "graphql@16.15.0"]
NODE_CACHE = Path(tempfile.gettempdir()) / "guestgraph-test-node-client"


class RedisServer:
    """A redis-server this test owns, so it can stop it."""

    def __init__(self) -> None:
        self.port = services.free_port()
        self.folder = tempfile.mkdtemp(prefix="gg-live-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = services.start_redis(services.redis_binary(), self.port, self.folder)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


class ApiProcess:
    def __init__(self, database_url: str, redis_url: str, prefix: str, log: Path) -> None:
        self.port = services.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
        env |= {
            "GUESTGRAPH_DATABASE_URL": database_url,
            "GUESTGRAPH_REDIS_URL": redis_url,
            "GUESTGRAPH_REDIS_PREFIX": prefix,
            "GUESTGRAPH_MODE": "development",
            "GUESTGRAPH_LIVE_POLL_INTERVAL_MS": "250",
            "GUESTGRAPH_TOAST_WEBHOOK_SECRET": TOAST_SECRET,
        }
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._log_file.close()


@pytest.fixture
def two_processes(
    engine: AsyncEngine,
    database_url: str,
    redis_server: RedisServer,
    redis_prefix: str,
    tmp_path: Path,
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    a = ApiProcess(database_url, redis_server.url, redis_prefix, tmp_path / "a.log")
    b = ApiProcess(database_url, redis_server.url, redis_prefix, tmp_path / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


RESTAURANT = "rest-scale-out"

# Toast fulfillment states → the status guestgraph normalizes them to
TOAST_FLOW = [
    ("NEW", "OPEN", "ACCEPTED"),
    ("SENT", "OPEN", "PREPARING"),
    ("READY", "OPEN", "READY"),
    ("READY", "CLOSED", "COMPLETED"),
]


class ToastKitchen:
    """Moves Toast orders through their states by POSTing signed webhooks to one process."""

    def __init__(self, process: ApiProcess) -> None:
        self.http = httpx.AsyncClient(base_url=process.http_url, timeout=15)
        self.minute = 0

    async def move(self, guid: str, step: int) -> None:
        selection, payment, _ = TOAST_FLOW[step]
        self.minute += 1
        event = toast_order_event(
            guid,
            restaurant=RESTAURANT,
            modified=f"2025-06-14T18:{self.minute:02d}:00.000+0000",
            fulfillment_status=selection,
            payment_status=payment,
        )
        response = await post_toast(self.http, dumps(event))
        assert response.status_code == 200, response.text


async def _order_ids(engine: AsyncEngine, guids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from readmodel.tables import orders

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(orders.c.external_id, orders.c.id).where(orders.c.external_id.in_(guids))
        )
        return {r.external_id: order_gid(r.id) for r in rows}


async def test_events_reach_the_other_process_in_order_resume_exactly_and_survive_redis(
    engine: AsyncEngine,
    two_processes: tuple[ApiProcess, ApiProcess],
    redis_server: RedisServer,
) -> None:
    a, b = two_processes
    store = await make_store(engine, source=Source.TOAST, external_id=RESTAURANT)
    kitchen = ToastKitchen(a)
    guids = [str(uuid.uuid4()) for _ in range(3)]

    def shape(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(e["orderId"], e["status"]) for e in events]

    # 1. subscribe on B; webhooks ingested by A reach B through Redis, in order
    watcher = Watcher(b.ws_url, WATCH_STORE, {"storeId": store_gid(store)})
    await watcher.subscribed.wait()
    for step in (0, 1):
        for guid in guids:
            await kitchen.move(guid, step)
    ids = await _order_ids(engine, guids)
    expected = [(ids[g], TOAST_FLOW[step][2]) for step in (0, 1) for g in guids]
    events = await watcher.wait_for(len(expected))
    assert shape(events) == expected
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(cursors)
    await watcher.stop()

    # 2. disconnected: more webhooks; reconnecting with `after` gets exactly the missed ones
    for guid in guids:
        await kitchen.move(guid, 2)
    missed = [(ids[g], "READY") for g in guids]
    resumed = Watcher(
        b.ws_url, WATCH_STORE, {"storeId": store_gid(store), "after": events[-1]["cursor"]}
    )
    got = await resumed.wait_for(len(missed))
    assert shape(got) == missed

    # 3. Redis goes away: the same subscription keeps receiving (B polls PostgreSQL)
    redis_server.stop()
    for guid in guids:
        await kitchen.move(guid, 3)
    after_outage = [(ids[g], "COMPLETED") for g in guids]
    got = await resumed.wait_for(len(missed) + len(after_outage), seconds=15)
    assert shape(got) == missed + after_outage

    # 4. Redis returns: still every event, once, in order
    redis_server.start()
    more = str(uuid.uuid4())
    for step in range(len(TOAST_FLOW)):
        await kitchen.move(more, step)
    more_id = (await _order_ids(engine, [more]))[more]
    back = [(more_id, status) for *_, status in TOAST_FLOW]
    got = await resumed.wait_for(len(missed) + len(after_outage) + len(back), seconds=15)
    await resumed.stop()
    await kitchen.http.aclose()
    assert shape(got) == missed + after_outage + back
    cursors = [int(e["cursor"]) for e in got]
    assert cursors == sorted(set(cursors))
    assert "Redis unreachable" in b.log.read_text()


def _node_client() -> Path:
    """graphql-ws (npm) installed once into a cache folder; returns its folder."""
    marker = NODE_CACHE / "node_modules" / "graphql-ws" / "package.json"
    if not marker.exists():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_CACHE),
                *NODE_CLIENT_PACKAGES,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return NODE_CACHE


NODE_SCRIPT = r"""
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');
const [url, storeId, count] = process.argv.slice(2);
const client = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0,
  on: { connected: () => console.log(JSON.stringify({ connected: true })) } });
let seen = 0;
client.subscribe(
  { query: `subscription($s: ID) { orderStatusChanged(storeId: $s) { cursor status } }`,
    variables: { s: storeId } },
  { next: (r) => { console.log(JSON.stringify(r.data.orderStatusChanged));
                   if (++seen >= Number(count)) { client.dispose(); process.exit(0); } },
    error: (e) => { console.error(JSON.stringify(e)); process.exit(2); },
    complete: () => process.exit(3) });
"""


async def test_the_graphql_ws_javascript_client_receives_events_from_the_other_process(
    engine: AsyncEngine, two_processes: tuple[ApiProcess, ApiProcess], tmp_path: Path
) -> None:
    _, b = two_processes
    folder = _node_client()
    script = folder / "watch.js"
    script.write_text(NODE_SCRIPT)
    store = await make_store(engine)
    order = await make_order(engine, store_id=store, status=OrderStatus.PLACED)
    node = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        b.ws_url,
        store_gid(store),
        str(len(FLOW)),
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert node.stdout is not None
        first = await asyncio.wait_for(node.stdout.readline(), 20)
        assert json.loads(first) == {"connected": True}
        await asyncio.sleep(0.3)  # the subscribe frame follows the ack
        seqs = [await change_status(engine, order, status) for status in FLOW]
        out, err = await asyncio.wait_for(node.communicate(), 20)
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
    assert node.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events == [
        {"cursor": str(seq), "status": status.value} for seq, status in zip(seqs, FLOW, strict=True)
    ]
