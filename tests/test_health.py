"""Liveness, readiness and the GraphQL endpoint of a running app."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.settings import Settings
from tests import services


async def test_healthz_answers_while_the_process_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_migrations_are_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_graphql_answers_typename(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get(path)


async def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{services.free_port()}/nothing"
    response = await _get(settings.model_copy(update={"database_url": dead}), "/readyz")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unreachable")


async def test_readyz_is_503_when_migrations_are_missing(
    settings: Settings, postgres_server_url: str
) -> None:
    empty = await services.acreate_database(postgres_server_url, prefix="gg_unmigrated")
    try:
        response = await _get(settings.model_copy(update={"database_url": empty}), "/readyz")
    finally:
        await services.adrop_database(postgres_server_url, empty)
    assert response.status_code == 503
    assert "migrations not at head" in response.json()["reason"]


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.post("/graphql", json={"query": "{ __typename }"})
    response = await client.get("/metrics")
    assert response.status_code == 200
    body = response.text
    assert 'guestgraph_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
    assert 'guestgraph_http_requests_total{method="POST",route="/graphql",status="200"} 1.0' in body
    assert "guestgraph_http_request_duration_seconds_bucket" in body
