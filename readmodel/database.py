"""Engines and URLs: the one place that knows how guestgraph talks to PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ASYNC_DRIVER = "postgresql+asyncpg"

# Every statement here is short OLTP work. PostgreSQL's JIT compiles a plan whose *estimated*
# cost is high, and set-based statements over arrays (a batch's traits, say) are estimated
# far above what they do: it spent ~0.5 s compiling a traits recompute that ran in 50 ms.
SESSION_SETTINGS = {"jit": "off"}


def async_url(url: str | URL) -> URL:
    """The SQLAlchemy URL for a plain ``postgresql://`` URL, using asyncpg."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername=ASYNC_DRIVER)


def redacted(url: str | URL) -> str:
    """The URL with any password replaced by ``***``: safe for logs."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


async def _no_reset(connection: Any) -> None:
    """asyncpg's default reset (RESET ALL; UNLISTEN *; ...) costs a round trip per release.

    We never change session state on pooled connections, so skip it.
    """


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int | None = None,
    application_name: str = "guestgraph",
) -> AsyncEngine:
    """An async engine for ``url`` with a bounded pool and liveness checks."""
    server_settings = {"application_name": application_name, **SESSION_SETTINGS}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings, "timeout": 10},
    )


# --- graphql: the read engine ----------------------------------------------------------------


def create_read_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int | None = None,
    application_name: str = "guestgraph-read",
) -> AsyncEngine:
    """An engine for the GraphQL reads: autocommit, no liveness ping per checkout.

    Each loader batch is one SELECT on a short connection; BEGIN/ROLLBACK around it and a
    ping before it would triple its round trips. A connection the server dropped fails one
    statement, and SQLAlchemy then invalidates the pool, so the next request reconnects.
    """
    server_settings = {"application_name": application_name, **SESSION_SETTINGS}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": server_settings, "timeout": 10},
    )
