"""The ASGI application: a Starlette app factory with a lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from api.console import console_routes
from api.fanout import start_live_fanout
from api.graphql_http import GraphQLHTTP, start_security
from api.ingest import ingest_lifespan, ingest_routes
from api.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from api.oauth import oauth_routes
from api.settings import Settings, load_settings
from api.websocket import LiveWebSocketApp
from readmodel import migrations
from readmodel.database import create_engine, create_read_engine, redacted
from readmodel.hub import Hub
from resolvers.schema import schema as default_schema

log = logging.getLogger("guestgraph.app")

READINESS_TIMEOUT_S = 2.0


@dataclass
class AppState:
    """Everything the lifespan creates; handlers reach it through ``request.app.state``."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    read_engine: AsyncEngine  # graphql: autocommit reads for the loaders
    hub: Hub
    head_revision: str


async def healthz(request: Request) -> Response:
    """Liveness: the process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers and its migrations are at head."""
    state: AppState = request.app.state.guestgraph
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            current = await migrations.current_revision(state.engine)
    except Exception as exc:  # any failure to answer means "not ready", never a crash
        reason = f"database unreachable: {type(exc).__name__}"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    if current != state.head_revision:
        reason = f"migrations not at head (database: {current}, code: {state.head_revision})"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready", "revision": current})


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    schema: strawberry.Schema | None = None,
) -> Starlette:
    """Build the app. ``database_url`` overrides settings (the CLI passes the embedded one);
    ``schema`` defaults to guestgraph's schema (tests pass their own)."""
    schema = schema or default_schema
    url = database_url or settings.database_url
    if url is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded one)")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            url,
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
        read_engine = create_read_engine(
            url,
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
        hub = await start_live_fanout(settings, engine, url)  # live: notifier, relay, hub
        app.state.guestgraph = AppState(
            settings=settings,
            database_url=url,
            engine=engine,
            read_engine=read_engine,
            hub=hub,
            head_revision=migrations.head_revision(),
        )
        kind = (
            "embedded" if settings.database_is_embedded or not settings.database_url else "external"
        )
        log.info("database: %s (%s)", redacted(url), kind)
        log.info("broker: %s", hub.description)
        log.info("mode: %s", settings.mode.value)
        security = await start_security(app, settings, engine)  # auth: api/graphql_http.py
        try:
            async with ingest_lifespan(app):  # --- ingest: background fetcher ---
                yield
        finally:
            await security.aclose()
            await hub.stop()
            await engine.dispose()
            await read_engine.dispose()

    # Each feature adds its routes here, one line each.
    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/graphql", GraphQLHTTP(schema, settings)),  # auth: api/graphql_http.py
        WebSocketRoute("/graphql", LiveWebSocketApp(settings, schema)),  # live: subscriptions
        *console_routes(),  # live: GET /console
        *oauth_routes(),
        *ingest_routes(),  # --- ingest: webhooks and POST /ingest/events ---
    ]
    metrics = Metrics()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    app = create_app(load_settings())
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """graphql: take the long-lived start-up objects (modules, the schema) out of the
    collector's sight and run gen0 less often: a GraphQL response makes thousands of short
    lived objects, and full collections over everything else were 0.5-1 ms per request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(2000, 10, 100)
