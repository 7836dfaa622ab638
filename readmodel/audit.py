"""The PII audit log: who read which customer's unmasked email or phone, in which request.

Recording is a non-blocking append to an in-memory buffer; a background task writes the
buffer in one multi-row INSERT every ``interval_s`` (or as soon as ``batch_size`` reads
are waiting). Reads of the same customer in the same request collapse into one row. The
buffer is bounded: under a flood the oldest unwritten reads are dropped with a warning
rather than growing without limit or slowing queries down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.tables import audit_log

log = logging.getLogger("guestgraph.audit")

PII_READ = "pii.read"


@dataclass(frozen=True)
class PiiRead:
    actor: str
    role: str
    customer_id: int
    field: str
    request_id: str
    at: datetime


class AuditLog:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval_s: float = 1.0,
        batch_size: int = 500,
        max_buffer: int = 100_000,
    ) -> None:
        self._engine = engine
        self._interval = interval_s
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: list[PiiRead] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.dropped = 0

    def record(
        self, *, actor: str, role: str, customer_id: int, field: str, request_id: str
    ) -> None:
        """Note one unmasked read; returns at once."""
        if len(self._buffer) >= self._max_buffer:
            self._buffer.pop(0)
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("audit buffer full: %d reads dropped so far", self.dropped)
        self._buffer.append(PiiRead(actor, role, customer_id, field, request_id, datetime.now(UTC)))
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-log-writer")

    async def stop(self) -> None:
        """Stop the writer and write what is still buffered. The writer is asked to stop,
        not cancelled: a flush cut off mid-statement would strand its connection."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
            except Exception as exc:  # keep the writer alive; the reads stay buffered
                log.warning("audit flush failed: %s", type(exc).__name__)

    async def flush(self) -> int:
        """Write everything buffered now; returns the number of rows written."""
        if not self._buffer:
            return 0
        pending, self._buffer = self._buffer, []
        rows = _collapse(pending)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(audit_log), rows)
        except Exception:
            self._buffer = pending + self._buffer  # retried on the next flush
            raise
        return len(rows)


def _collapse(reads: list[PiiRead]) -> list[dict[str, object]]:
    """One row per (request, actor, customer) with the set of fields read."""
    grouped: dict[tuple[str, str, str, int], tuple[datetime, set[str]]] = {}
    for read in reads:
        key = (read.request_id, read.actor, read.role, read.customer_id)
        _, fields = grouped.setdefault(key, (read.at, set()))
        fields.add(read.field)
    return [
        {
            "at": at,
            "actor": actor,
            "role": role,
            "action": PII_READ,
            "customer_id": customer_id,
            "fields": sorted(fields),
            "request_id": request_id,
        }
        for (request_id, actor, role, customer_id), (at, fields) in grouped.items()
    ]
