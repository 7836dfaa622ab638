"""``guestgraph import KIND FILE``: backfill from exported files through the same mappers,
inbox and projector as the webhooks.

Files are NDJSON (one object per line), a JSON array, or CSV for the kinds vendors export
as CSV (``square-customers``, ``hubspot-contacts``). Rows go in batches, each batch in one
transaction: a batch of full orders in bulk (``readmodel.bulk``: a fixed number of
statements whatever its size), anything else with a savepoint per row, and so does a batch
of orders that cannot be applied as a whole. Rows that cannot be mapped are kept in the inbox
as rejected with the reason. Every row gets an inbox row keyed by what it describes
and its version (``import:<id>:<version>``), so re-running a file changes nothing; the
position reached is checkpointed in the same transaction, so an interrupted import resumes
where the committed batches end. Rows are read and mapped one batch ahead of the writers,
on the same event loop; order files have two writers (two batches in flight, each in its own
transaction), other kinds one. Traits are recomputed once, at the end (``traits_owed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import hashlib
import io
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.ingestion import (
    Delivery,
    Outcome,
    body_digest,
    bulkable,
    ingest_in,
    ingest_orders_in_bulk,
    transient,
)
from domain.cards import may_hold_card_number, scrub_json
from domain.events import CustomerUpserted, DomainEvent
from domain.matching import MatchPolicy
from domain.model import InboxStatus, Source
from domain.sources import canonical, hubspot, square, toast
from domain.sources.common import Node, ParseError, epoch_ms
from readmodel import checkpoints, inbox, traits
from readmodel.projector import Projector, store_currency

log = logging.getLogger("guestgraph.import")

EVENT_TYPE_PREFIX = "import:"
KINDS = ("square-orders", "square-customers", "toast-orders", "hubspot-contacts", "canonical")
SOURCES = {
    "square-orders": Source.SQUARE,
    "square-customers": Source.SQUARE,
    "toast-orders": Source.TOAST,
    "hubspot-contacts": Source.HUBSPOT,
    "canonical": Source.CANONICAL,
}

# CSV exports: column → field of the vendor's JSON shape
SQUARE_CUSTOMER_COLUMNS = {
    "Square Customer ID": "id",
    "Reference ID": "reference_id",
    "First Name": "given_name",
    "Last Name": "family_name",
    "Email Address": "email_address",
    "Phone Number": "phone_number",
    "Creation Date": "created_at",
    "Birthday": "birthday",
}
HUBSPOT_CONTACT_COLUMNS = {
    "Record ID": "id",
    "First Name": "firstname",
    "Last Name": "lastname",
    "Email": "email",
    "Phone Number": "phone",
    "Mobile Phone Number": "mobilephone",
    "Lifecycle Stage": "lifecyclestage",
    "Last Modified Date": "lastmodifieddate",
}


@dataclass
class Summary:
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    pending: int = 0
    skipped: int = 0  # rows before the checkpoint of an earlier run
    traits_settled: int = 0  # customers whose traits were recomputed at the end
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.applied + self.duplicate + self.rejected + self.pending


def _csv_row(kind: str, row: dict[str, str]) -> Any:
    if kind == "square-customers":
        value: dict[str, Any] = {
            field_name: row[column].strip()
            for column, field_name in SQUARE_CUSTOMER_COLUMNS.items()
            if row.get(column, "").strip()
        }
        return value
    if kind == "hubspot-contacts":
        props = {
            field_name: row[column].strip()
            for column, field_name in HUBSPOT_CONTACT_COLUMNS.items()
            if row.get(column, "").strip()
        }
        return {"id": props.pop("id", None), "properties": props}
    raise ParseError("", f"{kind} files are NDJSON or JSON, not CSV")


def read_rows(path: Path, kind: str) -> Iterator[tuple[int, int, Any]]:
    """(row number from 1, byte offset after the row, parsed value or a ParseError)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("rb") as handle:
            consumed = [0]

            def lines() -> Iterator[str]:
                for line in handle:
                    consumed[0] += len(line)
                    yield line.decode("utf-8-sig")

            for number, row in enumerate(csv.DictReader(lines()), start=1):
                try:
                    yield number, consumed[0], _csv_row(kind, row)
                except ParseError as exc:
                    yield number, consumed[0], exc
        return
    if suffix == ".json":
        data = orjson.loads(path.read_bytes())
        items = data if isinstance(data, list) else data.get("events", [data])
        size = path.stat().st_size
        for number, item in enumerate(items, start=1):
            yield number, size * number // max(len(items), 1), item
        return
    with path.open("rb") as handle:
        number = 0
        for line in handle:
            if not line.strip():
                continue
            number += 1
            try:
                yield number, handle.tell(), orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, handle.tell(), ParseError(f"line {number}", f"malformed JSON: {exc}")


def _version_key(version: int | None, fallback: bytes) -> str:
    return str(version) if version is not None else hashlib.sha256(fallback).hexdigest()[:16]


def canonical_delivery(namespace: str, value: Any) -> Delivery:
    raw = orjson.dumps(value)
    try:
        parsed = canonical.parse_event(Node(value))
    except ParseError as exc:
        return Delivery(
            Source.CANONICAL, f"{namespace}:{body_digest(raw)}", None, raw, error=str(exc)
        )
    return Delivery(
        Source.CANONICAL, f"{namespace}:{parsed.event_id}", parsed.event_type, raw, parsed.events
    )


async def delivery_for(
    conn: AsyncConnection,
    kind: str,
    value: Any,
    *,
    currencies: dict[str, str | None] | None = None,
) -> Delivery:
    """One file row as a delivery (the inbox key names the object and its version).

    Card numbers are scrubbed before anything is stored, as for webhooks. ``currencies``
    caches the stores' currencies (Toast rows carry none) across the rows of one import."""
    raw = orjson.dumps(value)
    if may_hold_card_number(raw):
        value = scrub_json(value)
        raw = orjson.dumps(value)
    source = SOURCES[kind]
    event_type = EVENT_TYPE_PREFIX + kind
    if kind == "canonical":
        d = canonical_delivery("import", value)
        return Delivery(d.source, d.event_id, event_type, d.raw_body, d.events, d.error)
    try:
        events: list[DomainEvent]
        if kind == "square-orders":
            order = square.parse_order(value)
            key = f"order:{order.external_id}:{_version_key(order.version, raw)}"
            events = [order]
        elif kind == "toast-orders":
            node = Node(value, "order")
            restaurant = node.get("restaurantGuid").text()
            if currencies is None or restaurant not in currencies:
                known = await store_currency(conn, Source.TOAST, restaurant)
                if currencies is not None:
                    currencies[restaurant] = known
            else:
                known = currencies[restaurant]
            currency = known or "USD"
            order = toast.parse_order(value, restaurant_guid=restaurant, currency=currency)
            key = f"order:{order.external_id}:{_version_key(order.version, raw)}"
            events = [order]
        elif kind == "square-customers":
            record = square.parse_customer(value)
            key = f"customer:{record.external_id}:{_version_key(record.version, raw)}"
            events = [CustomerUpserted(record)]
        elif kind == "hubspot-contacts":
            record = hubspot.parse_contact(value)
            version = record.version or (
                epoch_ms(record.observed_at) if record.observed_at else None
            )
            key = f"contact:{record.external_id}:{_version_key(version, raw)}"
            events = [CustomerUpserted(record)]
        else:
            raise ValueError(f"unknown import kind {kind!r}")
    except ParseError as exc:
        return Delivery(source, f"import:{body_digest(raw)}", event_type, raw, error=str(exc))
    return Delivery(source, f"import:{key}", event_type, raw, events)


def file_key(path: Path, kind: str) -> str:
    """Identifies a file's content (size + first MiB), not its name."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return f"{kind}:{path.stat().st_size}:{digest.hexdigest()}"


# rows per transaction: large enough that a batch's fixed statements cost little per row
DEFAULT_BATCH_SIZE = 2000

Row = tuple[int, int, Any]  # (row number from 1, byte offset after it, value or ParseError)


@dataclass(frozen=True)
class _Batch:
    deliveries: list[Delivery]
    last_row: int
    last_offset: int


# rows mapped between two chances for the writer to run (see ``_map_batches``): often, since
# every statement of the writer waits for the mapper to give way before it goes on
_YIELD_EVERY = 8


async def _map_batches(
    engine: AsyncEngine,
    path: Path,
    kind: str,
    key: str,
    size: int,
    start_after: int,
    out: asyncio.Queue[_Batch | Exception | None],
) -> None:
    """Read and map the file into batches of deliveries, ahead of the writer.

    Mapping is pure CPU and the writer mostly waits for PostgreSQL, so the two overlap:
    this task gives way every few rows, and the bounded queue keeps it at most two
    batches ahead. Ends with None, or with the exception that stopped it."""
    try:
        currencies: dict[str, str | None] = {}
        async with engine.connect() as conn:  # Toast rows need their store's currency
            batch: list[Delivery] = []
            last: Row = (0, 0, None)
            for row in read_rows(path, kind):
                if row[0] <= start_after:
                    continue
                number, _, value = row
                if isinstance(value, ParseError):
                    batch.append(
                        Delivery(
                            SOURCES[kind],
                            f"import:{key}:row:{number}",
                            EVENT_TYPE_PREFIX + kind,
                            f"row {number}".encode(),
                            error=str(value),
                        )
                    )
                else:
                    batch.append(await delivery_for(conn, kind, value, currencies=currencies))
                last = row
                if len(batch) >= size:
                    await conn.rollback()  # no read transaction held open between batches
                    await out.put(_Batch(batch, last[0], last[1]))
                    batch = []
                elif number % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if batch:
                await out.put(_Batch(batch, last[0], last[1]))
        await out.put(None)
    except Exception as exc:  # handed to the writer, which raises it
        await out.put(exc)


async def _record_rejected(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """Rows that could not be mapped: kept in the inbox as rejected, with the reason."""
    if not deliveries:
        return []
    fresh = await inbox.record_many(
        conn,
        [
            {
                "source": d.source.value,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "status": InboxStatus.REJECTED.value,
                "reason": d.error,
                "raw_body": d.raw_body,
                "headers": dict(d.headers),
            }
            for d in deliveries
        ],
    )
    outcomes = []
    for d in deliveries:
        row = fresh.pop((d.source.value, d.event_id), None)
        if row is None:
            outcomes.append(Outcome(d.event_id, "duplicate"))
        else:
            log.warning("rejected %s import row %s: %s", d.source.value, d.event_id, d.error)
            outcomes.append(Outcome(d.event_id, "rejected", d.error, row))
    return outcomes


async def _apply_batch(
    conn: AsyncConnection, kind: str, deliveries: Sequence[Delivery], policy: MatchPolicy | None
) -> list[Outcome]:
    actor = f"import:{kind}"
    mapped = [d for d in deliveries if d.error is None]
    outcomes = await _record_rejected(conn, [d for d in deliveries if d.error is not None])
    if mapped and all(bulkable(d) for d in mapped):
        projector = Projector(conn, actor=actor, policy=policy, defer_traits=True)
        done = await ingest_orders_in_bulk(conn, projector, mapped, raise_transient=True)
        if done is not None:
            await projector.finish()
            return outcomes + done
    return outcomes + await ingest_in(conn, mapped, actor=actor, policy=policy, defer_traits=True)


async def settle_traits(engine: AsyncEngine) -> int:
    """Recompute every owed customer's traits (``traits.settle_owed``), a chunk per
    transaction; the number of customers settled."""
    settled = 0
    while True:
        async with engine.begin() as conn:
            n = await traits.settle_owed(conn)
        if not n:
            return settled
        settled += n


# Files of full orders are written by two transactions side by side: while one waits for
# PostgreSQL (or for its commit to be flushed), the next batch is applied on a second
# connection, so PostgreSQL works on both cores. Other kinds link people one after another
# in file order (who survives a merge depends on it), so they keep one writer.
ORDER_KINDS = frozenset({"square-orders", "toast-orders"})
ORDER_WRITERS = 2
# a batch that meets a transient database error (a deadlock with the batch beside it, a
# lost connection) is rolled back whole and tried again, this many times in all
ATTEMPTS = 5


class _Committed:
    """Which batches have committed, and so how far the file is done: to the end of the
    longest run of committed batches from the start (batches may commit out of order)."""

    def __init__(self, position: int) -> None:
        self.position = position
        self._next = 0  # the first batch not known to be committed
        self._ahead: dict[int, int] = {}  # batches committed after a gap: number -> last row

    def position_with(self, number: int, last_row: int) -> int:
        """The position batch ``number`` records in its transaction: as far as the batches
        before it have committed, and past itself only when all of them have."""
        position, following = self.position, self._next
        ahead = {**self._ahead, number: last_row}
        while following in ahead:
            position = ahead[following]
            following += 1
        return position

    def commit(self, number: int, last_row: int) -> None:
        self._ahead[number] = last_row
        while self._next in self._ahead:
            self.position = self._ahead.pop(self._next)
            self._next += 1


async def _write_batch(
    engine: AsyncEngine,
    kind: str,
    key: str,
    number: int,
    batch: _Batch,
    committed: _Committed,
    policy: MatchPolicy | None,
) -> list[Outcome]:
    """One batch in one transaction with its checkpoint; transient failures retried."""
    attempt = 1
    while True:
        try:
            async with engine.begin() as conn:
                outcomes = await _apply_batch(conn, kind, batch.deliveries, policy)
                position = committed.position_with(number, batch.last_row)
                await checkpoints.advance(conn, key, kind, position)
        except DBAPIError as exc:
            if not transient(exc) or attempt >= ATTEMPTS:
                raise
            log.info("import batch %d failed (%s); trying it again", number, exc.orig)
            await asyncio.sleep(0.05 * attempt)
            attempt += 1
            continue
        committed.commit(number, batch.last_row)
        return outcomes


async def run_import(
    engine: AsyncEngine,
    path: Path,
    kind: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    restart: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    policy: MatchPolicy | None = None,
    writers: int | None = None,
) -> Summary:
    """Import ``path``; ``on_progress(rows_done, byte_offset)`` after each batch, in file
    order.

    ``policy`` is the identity matching configuration (``Settings.match_policy()``).
    One connection of ``engine`` maps rows ahead (reading store currencies); ``writers``
    (default: two for order files, one otherwise) write the batches, one transaction each.
    If the import stops part-way, every batch that committed stays, and the checkpoint
    never passes a batch that did not commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}; one of {', '.join(KINDS)}")
    width = writers or (ORDER_WRITERS if kind in ORDER_KINDS else 1)
    key = file_key(path, kind)
    summary = Summary()
    async with engine.begin() as conn:
        if restart:
            await checkpoints.reset(conn, key)
        done = await checkpoints.position(conn, key)
    summary.skipped = done
    committed = _Committed(done)
    queue: asyncio.Queue[_Batch | Exception | None] = asyncio.Queue(maxsize=2)
    in_flight: deque[tuple[_Batch, asyncio.Task[list[Outcome]]]] = deque()

    async def report_oldest() -> None:
        batch, task = in_flight[0]
        outcomes = await task
        in_flight.popleft()
        for outcome in outcomes:
            setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
            if outcome.status == "rejected" and outcome.reason:
                summary.reasons[outcome.reason] = summary.reasons.get(outcome.reason, 0) + 1
        if on_progress is not None:
            on_progress(summary.rows + summary.skipped, batch.last_offset)

    collector = _Collector()
    mapper = asyncio.create_task(_map_batches(engine, path, kind, key, batch_size, done, queue))
    try:
        number = 0
        while (batch := await queue.get()) is not None:
            if isinstance(batch, Exception):
                raise batch
            if len(in_flight) >= width:
                await report_oldest()
            write = _write_batch(engine, kind, key, number, batch, committed, policy)
            in_flight.append((batch, asyncio.create_task(write)))
            number += 1
            collector.batch_done()
        while in_flight:
            await report_oldest()
        if width > 1 and number:
            # two batches that committed side by side may each have recorded the position
            # without the other: record the end
            async with engine.begin() as conn:
                await checkpoints.advance(conn, key, kind, committed.position)
        # traits of the customers the batches touched, once (and any an earlier,
        # interrupted import left owed)
        summary.traits_settled = await settle_traits(engine)
    finally:
        # a batch already writing is never cancelled mid-transaction: it commits or fails
        if in_flight:
            await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        mapper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mapper
        collector.close()
    return summary


# batches between two collections of cyclic garbage while an import runs
COLLECT_EVERY = 20


class _Collector:
    """The cyclic garbage collector, paused for an import and run every ``COLLECT_EVERY``
    batches instead.

    The automatic collector is triggered by allocations, and an import allocates millions of
    objects that live for a batch or two (rows read ahead, events, statements' arguments):
    it kept walking them, up to a third of the import's CPU (about 60 us of 180 per order,
    ``bench.ingest``). Almost nothing an import makes is cyclic garbage (about 80 objects
    per batch of 2,000 orders: asyncio's futures and tracebacks); reference counting frees
    the rest, so a collection every few batches bounds the memory just the same. The objects
    alive when the import starts (libraries, metadata) are frozen: collections skip them."""

    def __init__(self) -> None:
        self._was_enabled = gc.isenabled()
        self._batches = 0
        gc.freeze()
        gc.disable()

    def batch_done(self) -> None:
        self._batches += 1
        if self._batches % COLLECT_EVERY == 0:
            gc.collect()

    def close(self) -> None:
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()


def ndjson(values: list[Any]) -> bytes:
    """NDJSON bytes for ``values`` (the demo and the benchmark write files with it)."""
    out = io.BytesIO()
    for value in values:
        out.write(orjson.dumps(value))
        out.write(b"\n")
    return out.getvalue()
