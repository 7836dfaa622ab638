"""Group commit for webhooks: concurrent deliveries share one transaction.

One commit (one fsync) per delivery caps a small machine at about 1-2k commits/s, and full
orders apply far faster in bulk. The batcher collects the deliveries that arrive while the
previous batch commits (up to ``max_batch``, waiting at most ``max_wait_s`` for company),
ingests them in ONE transaction (bulk when they are all full orders, else a savepoint each),
and answers each request only after that commit. A batch that fails as a whole is retried one
request at a time, so one poison delivery never fails its neighbours. Up to
``max_in_flight`` batches commit at once (separate transactions): while one waits on
PostgreSQL, the next is mapped and linked, and one held up by a lock does not stall the rest.
Batches touching the same guest or order serialize on its locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from api.ingestion import Outcome, Received, ingest
from domain.matching import MatchPolicy

log = logging.getLogger("guestgraph.batcher")


class IngestionFailed(Exception):
    """The delivery could not be committed (e.g. the database timed out): nothing was kept,
    the sender should retry."""


@dataclass
class _Job:
    deliveries: Sequence[Received]
    actor: str
    done: asyncio.Future[list[Outcome]]


class DeliveryBatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 200,
        max_wait_s: float = 0.002,
        max_in_flight: int = 2,
        policy: MatchPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Batches committing at once: while one waits on PostgreSQL (statements, fsync), the
        # next is mapped and linked, so the process's CPU and the database's overlap.
        self._slots = asyncio.Semaphore(max_in_flight)
        self._committing: set[asyncio.Task[None]] = set()
        self._unanswered = 0
        self._idle = asyncio.Event()  # every submitted job answered
        self._idle.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guestgraph-batcher")

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Commit what was submitted (cancelling mid-transaction would leak its
        connection), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await asyncio.gather(*self._committing, return_exceptions=True)

    async def submit(self, deliveries: Sequence[Received], *, actor: str) -> list[Outcome]:
        """Ingest ``deliveries``; return their outcomes once they are committed."""
        job = _Job(deliveries, actor, asyncio.get_running_loop().create_future())
        self._unanswered += 1
        self._idle.clear()
        job.done.add_done_callback(self._answered)
        await self._queue.put(job)
        return await job.done

    def _answered(self, _: asyncio.Future[list[Outcome]]) -> None:
        self._unanswered -= 1
        if not self._unanswered:
            self._idle.set()

    async def _run(self) -> None:
        while True:
            # a free slot first: while every slot commits, arrivals gather into the next batch
            await self._slots.acquire()
            try:
                jobs = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._commit_then_release(jobs))
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)

    async def _collect(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        size = len(jobs[0].deliveries)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_s):
                while size < self.max_batch:
                    job = await self._queue.get()
                    jobs.append(job)
                    size += len(job.deliveries)
        while not self._queue.empty() and size < self.max_batch:
            job = self._queue.get_nowait()
            jobs.append(job)
            size += len(job.deliveries)
        return jobs

    async def _commit_then_release(self, jobs: list[_Job]) -> None:
        try:
            await self._commit(jobs)
        finally:
            self._slots.release()

    async def _commit(self, jobs: list[_Job]) -> None:
        by_actor: dict[str, list[_Job]] = {}
        for job in jobs:
            by_actor.setdefault(job.actor, []).append(job)
        for actor, group in by_actor.items():
            flat = [d for job in group for d in job.deliveries]
            try:
                outcomes = await ingest(self.engine, flat, actor=actor, policy=self.policy)
            except Exception:
                if len(group) == 1:
                    self._fail(group[0])
                    continue
                log.warning("a batch of %d deliveries failed; retrying one by one", len(flat))
                for job in group:
                    await self._commit_alone(job)
                continue
            start = 0
            for job in group:
                end = start + len(job.deliveries)
                if not job.done.done():
                    job.done.set_result(outcomes[start:end])
                start = end

    async def _commit_alone(self, job: _Job) -> None:
        try:
            outcomes = await ingest(
                self.engine, job.deliveries, actor=job.actor, policy=self.policy
            )
        except Exception:
            self._fail(job)
            return
        if not job.done.done():
            job.done.set_result(outcomes)

    @staticmethod
    def _fail(job: _Job) -> None:
        if not job.done.done():
            log.exception("delivery failed")
            job.done.set_exception(IngestionFailed("ingestion failed; the source will retry"))
