"""The background fetcher: completes thin webhook events from the vendors' APIs (and settles
traits an interrupted import left owed, see ``readmodel.traits``).

A thin event (a Square order webhook, a HubSpot ``contact.creation``) is acknowledged as
soon as its inbox row is durable, with status ``pending``. This task claims due pending
rows (``FOR UPDATE SKIP LOCKED`` with a lease, so it survives restarts and shares work
across processes), fetches the full object with bounded concurrency, and applies it in one
transaction with the row's move to ``applied``. Failures retry with exponential backoff;
a 404 or an unmappable answer rejects the row with the reason; so does running out of
attempts (about 72 hours, Square's own retry window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.ingestion import deliveries_for
from api.settings import Settings
from domain.events import ContactFetchNeeded, CustomerUpserted, DomainEvent, OrderFetchNeeded
from domain.model import InboxStatus, Source
from domain.sources import hubspot, square
from domain.sources.common import ParseError
from readmodel import inbox, traits
from readmodel.inbox import InboxRow
from readmodel.projector import ProjectionError, Projector

log = logging.getLogger("guestgraph.fetcher")

LEASE = timedelta(minutes=2)
MAX_DELAY_S = 3600.0


class FetchFailed(Exception):
    """Temporary: try again later."""


class NotFound(Exception):
    """Permanent: the vendor does not know the object."""


def backoff(attempts: int, base_s: float) -> timedelta:
    """1, 2, 4, ... times ``base_s``, capped at an hour."""
    return timedelta(seconds=min(base_s * 2 ** max(attempts - 1, 0), MAX_DELAY_S))


class VendorClient:
    """Reads full objects from the Square Orders API and the HubSpot CRM API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(settings.fetch_timeout_s))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get_json(self, url: str, token: str | None) -> Any:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self.http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{type(exc).__name__} from {url}") from None
        if response.status_code == 404:
            raise NotFound(f"{url} answered 404")
        if response.status_code != 200:
            raise FetchFailed(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise FetchFailed(f"{url} answered invalid JSON") from None

    async def square_order(self, order_id: str) -> Any:
        base = str(self.settings.square_api_base_url).rstrip("/")
        body = await self._get_json(
            f"{base}/v2/orders/{order_id}", self.settings.square_access_token
        )
        if not isinstance(body, dict) or "order" not in body:
            raise FetchFailed("the Orders API answer holds no order")
        return body["order"]

    async def hubspot_contact(self, contact_id: str) -> Any:
        base = str(self.settings.hubspot_api_base_url).rstrip("/")
        properties = "email,firstname,lastname,phone,mobilephone," + ",".join(
            hubspot.KEPT_ATTRIBUTES
        )
        return await self._get_json(
            f"{base}/crm/v3/objects/contacts/{contact_id}?properties={properties}",
            self.settings.hubspot_access_token,
        )

    async def complete(self, needed: OrderFetchNeeded | ContactFetchNeeded) -> DomainEvent:
        """The full event a thin one stands for. Raises FetchFailed, NotFound, ParseError."""
        if isinstance(needed, OrderFetchNeeded) and needed.source is Source.SQUARE:
            return square.parse_order(await self.square_order(needed.order_external_id))
        if isinstance(needed, ContactFetchNeeded) and needed.source is Source.HUBSPOT:
            contact = await self.hubspot_contact(needed.external_id)
            return CustomerUpserted(hubspot.parse_contact(contact))
        raise NotFound(f"no API to complete {needed}")


class Fetcher:
    """One background task per process; ``wake()`` after committing a pending row."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.client = VendorClient(settings)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(settings.fetch_concurrency)
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guestgraph-fetcher")

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Finish the pass in progress (cancelling mid-transaction would leak its
        connection), then stop. Unfinished rows stay pending for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.client.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
                # traits an interrupted import left owed: a chunk per pass
                worked += await self.settle_traits_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive a database hiccup
                log.exception("fetcher pass failed")
                worked = 0
            if worked or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.fetch_poll_interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim and work through one batch of due rows; return how many were claimed."""
        async with self.engine.begin() as conn:
            rows = await inbox.claim_due(
                conn, limit=self.settings.fetch_concurrency * 4, lease=LEASE
            )
        await asyncio.gather(*(self._work(row) for row in rows))
        return len(rows)

    async def settle_traits_once(self) -> int:
        """Settle one chunk of owed traits (``traits.settle_owed``); how many."""
        async with self.engine.begin() as conn:
            settled = await traits.settle_owed(conn)
        if settled:
            log.info("recomputed the traits of %d customers an import left owed", settled)
        return settled

    async def _work(self, row: InboxRow) -> None:
        async with self._limit:
            try:
                events = await self._fetch(row)
            except FetchFailed as exc:
                await self._retry(row, str(exc))
                return
            except (NotFound, ParseError) as exc:
                await self._reject(row, f"fetch: {exc}")
                return
            await self._apply(row, events)

    async def _fetch(self, row: InboxRow) -> list[DomainEvent]:
        deliveries = await deliveries_for(
            self.engine, Source(row.source), row.raw_body, row.headers
        )
        needed = [
            e
            for d in deliveries
            for e in d.events
            if isinstance(e, OrderFetchNeeded | ContactFetchNeeded)
        ]
        return [await self.client.complete(n) for n in needed]

    async def _retry(self, row: InboxRow, reason: str) -> None:
        if row.attempts >= self.settings.fetch_max_attempts:
            await self._reject(row, f"fetch failed {row.attempts} times; last: {reason}")
            return
        delay = backoff(row.attempts, self.settings.fetch_retry_base_s)
        log.info("fetch for inbox row %s failed (%s); retrying in %s", row.id, reason, delay)
        async with self.engine.begin() as conn:
            await inbox.retry_later(conn, row.id, delay=delay, reason=reason)

    async def _reject(self, row: InboxRow, reason: str) -> None:
        log.warning("inbox row %s rejected: %s", row.id, reason)
        async with self.engine.begin() as conn:
            if await inbox.lock_pending(conn, row.id):
                await inbox.set_status(conn, row.id, InboxStatus.REJECTED, reason=reason)

    async def _apply(self, row: InboxRow, events: Sequence[DomainEvent]) -> None:
        try:
            async with self.engine.begin() as conn:
                if not await inbox.lock_pending(conn, row.id):
                    return
                projector = Projector(
                    conn,
                    actor=f"fetcher:{row.source.lower()}",
                    policy=self.settings.match_policy(),
                )
                await projector.apply(events)
                await projector.finish()
                await inbox.set_status(conn, row.id, InboxStatus.APPLIED)
        except ProjectionError as exc:
            await self._reject(row, exc.reason)
