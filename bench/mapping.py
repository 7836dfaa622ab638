"""Import mapping CPU: file row → ``Delivery``, no database.

    python -m bench.mapping [--rows 20000] [--repeat 5]

Writes the backfill benchmark's Square orders (``bench.ingest.square_order``) and Toast
orders (the ``order`` of ``bench.ingest.toast_event``) as NDJSON, then times reading the
file and mapping every row as ``guestgraph import`` does (``importer.read_rows`` and
``importer.delivery_for``; Toast stores' currencies come from the import's cache, so no
connection is used). Prints the median over ``--repeat`` runs in µs per row, and the
same for ``delivery_for`` alone on already-parsed rows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from api import importer
from bench.ingest import square_order, toast_event


def rows_for(kind: str, count: int, run: str) -> list[Any]:
    if kind == "square-orders":
        return [square_order(i, run) for i in range(count)]
    rows = []
    for i in range(count):
        details = orjson.loads(toast_event(i, run))["details"]
        rows.append({**details["order"], "restaurantGuid": details["restaurantGuid"]})
    return rows


def currencies_for(kind: str) -> dict[str, str | None]:
    return {f"rest-{i}": "USD" for i in range(4)} if kind == "toast-orders" else {}


async def map_file(path: Path, kind: str) -> float:
    """Seconds to read and map every row of ``path`` (as ``_map_batches`` does)."""
    currencies = currencies_for(kind)
    started = time.perf_counter()
    for _, _, value in importer.read_rows(path, kind):
        d = await importer.delivery_for(None, kind, value, currencies=currencies)  # type: ignore[arg-type]
        assert d.error is None, d.error
    return time.perf_counter() - started


async def map_values(values: list[Any], kind: str) -> float:
    currencies = currencies_for(kind)
    started = time.perf_counter()
    for value in values:
        d = await importer.delivery_for(None, kind, value, currencies=currencies)  # type: ignore[arg-type]
        assert d.error is None, d.error
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kind", choices=["square-orders", "toast-orders"], action="append")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="gg-bench-map-") as folder:
        for kind in args.kind or ["square-orders", "toast-orders"]:
            values = rows_for(kind, args.rows, run)
            path = Path(folder) / f"{kind}.ndjson"
            path.write_bytes(importer.ndjson(values))
            parsed = list(importer.read_rows(path, kind))
            whole = [asyncio.run(map_file(path, kind)) for _ in range(args.repeat)]
            alone = [
                asyncio.run(map_values([v for _, _, v in parsed], kind)) for _ in range(args.repeat)
            ]
            per_row = statistics.median(whole) / args.rows * 1e6
            per_value = statistics.median(alone) / args.rows * 1e6
            print(
                f"{kind}: read + map {per_row:.1f} µs/row, delivery_for alone "
                f"{per_value:.1f} µs/row (median of {args.repeat}, {args.rows} rows)"
            )


if __name__ == "__main__":
    main()
