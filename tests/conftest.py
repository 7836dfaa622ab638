"""Fixtures: a real, migrated PostgreSQL database and a real Redis for every test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.settings import Mode, Settings
from readmodel import migrations
from readmodel.database import create_engine
from readmodel.tables import metadata
from tests import services

# Property tests: the default profile is repeatable (a fixed seed per test, no per-example
# deadline on a shared 2-core machine), so the same commit passes or fails the same way in CI.
# GUESTGRAPH_HYPOTHESIS_PROFILE=explore draws fresh random examples on every run.
hypothesis_settings.register_profile("repeatable", derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", deadline=None, max_examples=500)
hypothesis_settings.load_profile(os.environ.get("GUESTGRAPH_HYPOTHESIS_PROFILE", "repeatable"))

TRUNCATE = "TRUNCATE {} RESTART IDENTITY CASCADE".format(
    ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    with services.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """One migrated database per test session; every test starts from it emptied."""
    url = services.create_database(postgres_server_url)
    migrations.upgrade(url)
    yield url
    services.drop_database(postgres_server_url, url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis_server() as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session database, with every table emptied first."""
    eng = create_engine(database_url, pool_size=5)
    async with eng.begin() as conn:
        await conn.execute(text(TRUNCATE))
    yield eng
    await eng.dispose()


@pytest.fixture
def redis_prefix() -> str:
    """Keys and channels of one test never meet another's, even on a shared server."""
    return f"gg-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def settings(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        mode=Mode.DEVELOPMENT,
    )


@pytest.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a running app (lifespan included) over ASGI."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
