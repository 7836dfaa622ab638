"""``POST /ingest/events``: canonical event batches from partners and custom POS/CRM.

Auth: a bearer token with scope ``ingest:write``, verified by the app-wide ``api.auth``
(see ``authorize_ingest``). A partner's
events may only touch its own stores (``viewer.store_ids``); others are rejected per event.
The whole batch commits in one transaction, each event in its own savepoint, and the
answer lists every event's outcome.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api import auth
from api.batcher import DeliveryBatcher
from api.fetcher import Fetcher
from api.ingestion import Delivery, body_digest, ingest, transient
from api.settings import Settings
from api.webhooks import BodyTooLarge, error, read_body, webhook_routes
from domain.cards import scrub_json
from domain.model import Source
from domain.sources import canonical
from domain.sources.common import ParseError
from domain.viewer import Role, Viewer

log = logging.getLogger("guestgraph.ingest")

INGEST_SCOPE = "ingest:write"


class NotAuthorized(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


async def authorize_ingest(request: Request) -> Viewer:
    """The caller of an ingest request: a bearer token verified by ``api.auth`` (HS256 with
    ``GUESTGRAPH_JWT_SECRET``, or RS256/ES256 from ``GUESTGRAPH_JWKS_URL``; tokens from
    ``/oauth/token`` included) holding ``ingest:write``. Ingestion writes, so a token is
    required even in development mode. Raises NotAuthorized."""
    if not request.headers.get("authorization"):
        raise NotAuthorized(401, "missing_token", "send Authorization: Bearer <token>")
    try:
        viewer = await auth.require(request, INGEST_SCOPE)
    except auth.AuthError as exc:
        raise NotAuthorized(exc.status, exc.code, exc.description) from None
    if viewer.role in (Role.CUSTOMER, Role.ANONYMOUS):
        raise NotAuthorized(403, "insufficient_scope", f"the token lacks {INGEST_SCOPE}")
    return viewer


async def ingest_events(request: Request) -> Response:
    try:
        viewer = await authorize_ingest(request)
    except NotAuthorized as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = error(exc.status, exc.code, exc.message)
        if headers:
            response.headers.update(headers)
        return response
    settings: Settings = request.app.state.guestgraph.settings
    try:
        body = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge:
        return error(413, "body_too_large", f"the body exceeds {settings.max_body_bytes} bytes")
    try:
        payload = scrub_json(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        return error(400, "malformed_json", str(exc))
    try:
        items = canonical.batch_items(payload)
    except ParseError as exc:
        return error(422, "invalid_batch", exc.message, path=exc.path)
    namespace = viewer.client_id or viewer.subject
    deliveries = [_delivery(namespace, item) for item in items]
    try:
        outcomes = await ingest(
            request.app.state.guestgraph.engine,
            deliveries,
            actor=f"ingest:{namespace}",
            store_scope=viewer.store_ids,
            policy=settings.match_policy(),
        )
    except DBAPIError as exc:
        if not transient(exc):
            raise
        response = error(503, "ingestion_unavailable", "the batch was not stored; retry later")
        response.headers["Retry-After"] = "5"
        return response
    results = []
    for delivery, outcome in zip(deliveries, outcomes, strict=True):
        result = outcome.as_json()
        result["event_id"] = delivery.event_id.removeprefix(f"{namespace}:")
        results.append(result)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("applied", "duplicate")}
    counts["rejected"] = sum(1 for o in outcomes if o.status == "rejected")
    return JSONResponse({**counts, "results": results})


def _delivery(namespace: str, item: Any) -> Delivery:
    raw = orjson.dumps(item.value)
    event_id = item.value.get("id") if isinstance(item.value, dict) else None
    key = f"{namespace}:{event_id if isinstance(event_id, str | int) else '?'}"
    try:
        parsed = canonical.parse_event(item)
    except ParseError as exc:
        ident = key if event_id is not None else f"{namespace}:{body_digest(raw)}"
        return Delivery(Source.CANONICAL, ident, None, raw, error=str(exc))
    return Delivery(
        Source.CANONICAL, f"{namespace}:{parsed.event_id}", parsed.event_type, raw, parsed.events
    )


# --- wiring: routes and the lifespan hook the app calls --------------------------------------


@dataclass
class IngestRuntime:
    fetcher: Fetcher
    batcher: DeliveryBatcher


def ingest_routes() -> list[Route]:
    return [*webhook_routes(), Route("/ingest/events", ingest_events, methods=["POST"])]


@contextlib.asynccontextmanager
async def ingest_lifespan(app: Starlette) -> AsyncIterator[IngestRuntime]:
    """Start the background fetcher for the app's engine; stop it on shutdown."""
    state = app.state.guestgraph
    fetcher = Fetcher(state.engine, state.settings)
    batcher = DeliveryBatcher(state.engine, policy=state.settings.match_policy())
    fetcher.start()
    batcher.start()
    runtime = IngestRuntime(fetcher, batcher)
    app.state.ingest = runtime
    try:
        yield runtime
    finally:
        await batcher.stop()
        await fetcher.stop()
