"""API protection on /graphql: limits, cost, introspection, persisted queries, rate limits,
timeouts, and graphql-cop's twelve checks written as our own tests (production mode)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Mode, Settings
from domain.viewer import Role
from readmodel import clients as client_store
from tests.security_support import (
    ADMIN_SCOPES,
    app_client,
    bearer,
    make_token,
    nested,
    security_settings,
)

ADMIN = bearer(make_token(role="admin", scope=ADMIN_SCOPES))
SUPPORT = bearer(make_token(role="support", scope="customers:read orders:read"))


@pytest.fixture
def prod(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return security_settings(database_url, redis_url, redis_prefix)


@pytest.fixture
async def http(engine: AsyncEngine, prod: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(prod) as client:
        yield client


async def post(
    http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, **extra}, headers=headers or SUPPORT)


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


# --- document limits ----------------------------------------------------------------------


async def test_depth_over_eight_is_refused_before_execution(http: httpx.AsyncClient) -> None:
    eight = await post(http, nested(8))
    assert eight.status_code == 200
    assert "depth" in eight.text
    nine = await post(http, nested(9))
    assert nine.status_code == 400
    assert code_of(nine) == "DEPTH_LIMIT"
    thousand = await post(http, nested(1000))
    assert thousand.status_code == 400


async def test_depth_counts_through_fragments_and_survives_fragment_cycles(
    http: httpx.AsyncClient,
) -> None:
    cycle = "query { ...A } fragment A on TestQuery { ...B } fragment B on TestQuery { ...A }"
    response = await post(http, cycle)
    assert response.status_code == 400
    assert code_of(response) == "GRAPHQL_VALIDATION_FAILED"
    assert "cycle" in response.json()["errors"][0]["message"].lower() or "spread" in response.text


async def test_more_than_fifteen_aliases_are_refused_with_one_error(
    http: httpx.AsyncClient,
) -> None:
    sixteen = "{ " + " ".join(f"a{i}: ping" for i in range(16)) + " }"
    response = await post(http, sixteen)
    assert response.status_code == 400
    assert code_of(response) == "TOO_MANY_ALIASES"
    fifteen = "{ " + " ".join(f"a{i}: ping" for i in range(15)) + " }"
    assert (await post(http, fifteen)).status_code == 200


async def test_aliases_hidden_in_fragments_count_too(http: httpx.AsyncClient) -> None:
    fragment = " ".join(f"a{i}: ping" for i in range(16))
    response = await post(http, "{ ...F } fragment F on TestQuery { " + fragment + " }")
    assert code_of(response) == "TOO_MANY_ALIASES"


async def test_more_than_2000_tokens_are_refused(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ " + "__typename " * 2100 + "}")
    assert response.status_code == 400
    assert code_of(response) == "TOO_MANY_TOKENS"


async def test_cost_is_reported_and_expensive_queries_are_refused_before_running(
    http: httpx.AsyncClient,
) -> None:
    cheap = await post(http, "{ customers(first: 5) { id email } }")
    assert cheap.headers["x-query-cost"] == str(1 + 5 * 2)
    costly = await post(http, "{ customers(first: 100000) { id email } }")
    assert costly.status_code == 400
    error = costly.json()["errors"][0]
    assert error["extensions"]["code"] == "COST_LIMIT"
    assert error["extensions"]["cost"] == {"requested": 200001, "maximum": 20000}
    by_variable = await post(
        http, "query($n: Int!) { customers(first: $n) { id } }", variables={"n": 10**6}
    )
    assert code_of(by_variable) == "COST_LIMIT"


async def test_introspection_is_off_for_non_admins_in_production_and_on_for_admins(
    http: httpx.AsyncClient,
) -> None:
    query = "{ __schema { queryType { name } } }"
    refused = await post(http, query)
    assert refused.status_code == 400
    assert code_of(refused) == "INTROSPECTION_DISABLED"
    anonymous = await post(http, '{ __type(name: "TestQuery") { name } }', headers={})
    assert code_of(anonymous) == "INTROSPECTION_DISABLED"
    allowed = await post(http, query, headers=ADMIN)
    assert allowed.json() == {"data": {"__schema": {"queryType": {"name": "TestQuery"}}}}


async def test_field_suggestions_are_hidden_from_non_admins(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ pin }")
    message = response.json()["errors"][0]["message"]
    assert "Did you mean" not in message
    assert "pin" in message
    admin = await post(http, "{ pin }", headers=ADMIN)
    assert "Did you mean" in admin.json()["errors"][0]["message"]


async def test_graphiql_is_served_in_development_only(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    html = {"Accept": "text/html"}
    async with app_client(security_settings(database_url, redis_url, redis_prefix)) as c:
        production = await c.get("/graphql", headers=html)
    assert production.status_code == 404
    assert "graphiql" not in production.text.lower()
    dev = security_settings(database_url, redis_url, redis_prefix, mode=Mode.DEVELOPMENT)
    async with app_client(dev) as c:
        development = await c.get("/graphql", headers=html)
    assert development.status_code == 200
    assert "graphiql" in development.text.lower()


# --- persisted queries ---------------------------------------------------------------------


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


async def test_automatic_persisted_queries_register_then_run_by_hash(
    http: httpx.AsyncClient,
) -> None:
    query = "{ ping }"
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": sha(query)}}
    miss = await http.post("/graphql", json={"extensions": hashed}, headers=SUPPORT)
    assert miss.status_code == 200
    assert code_of(miss) == "PERSISTED_QUERY_NOT_FOUND"
    registered = await http.post(
        "/graphql", json={"query": query, "extensions": hashed}, headers=SUPPORT
    )
    assert registered.json() == {"data": {"ping": "pong"}}
    hit = await http.post("/graphql", json={"extensions": hashed}, headers=SUPPORT)
    assert hit.json() == {"data": {"ping": "pong"}}
    import json

    by_get = await http.get("/graphql", params={"extensions": json.dumps(hashed)}, headers=SUPPORT)
    assert by_get.json() == {"data": {"ping": "pong"}}


async def test_an_apq_hash_that_does_not_match_its_document_is_refused(
    http: httpx.AsyncClient,
) -> None:
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha("{ other }")}}
    response = await http.post(
        "/graphql", json={"query": "{ ping }", "extensions": wrong}, headers=SUPPORT
    )
    assert response.status_code == 400
    assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"


async def test_a_client_restricted_to_trusted_documents_runs_only_those(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await client_store.create_client(
        engine,
        name="Locked partner",
        role=Role.PARTNER,
        scopes=["orders:read"],
        trusted_documents_only=True,
        secret_cost=2**10,
    )
    trusted = "query Ping { ping }"
    digest = await client_store.trust_document(engine, created.client.id, trusted)
    token = bearer(make_token(role="partner", scope="orders:read", client_id=created.client.id))
    by_hash = await http.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        headers=token,
    )
    assert by_hash.json() == {"data": {"ping": "pong"}}
    by_text = await post(http, trusted, headers=token)
    assert by_text.json() == {"data": {"ping": "pong"}}
    other = await post(http, "{ ping }", headers=token)
    assert other.status_code == 403
    assert code_of(other) == "UNTRUSTED_DOCUMENT"


# --- time and rate -------------------------------------------------------------------------


async def test_a_slow_operation_times_out_with_a_typed_error(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = security_settings(database_url, redis_url, redis_prefix, operation_timeout_ms=200)
    async with app_client(settings) as c:
        response = await c.post(
            "/graphql", json={"query": "{ sleep(seconds: 2) }"}, headers=SUPPORT
        )
    assert response.status_code == 200
    assert code_of(response) == "OPERATION_TIMEOUT"


async def test_postgresql_statement_timeout_becomes_the_same_typed_error(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = security_settings(database_url, redis_url, redis_prefix, statement_timeout_ms=100)
    async with app_client(settings) as c:
        response = await c.post(
            "/graphql", json={"query": "{ pgSleep(seconds: 1) }"}, headers=SUPPORT
        )
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "OPERATION_TIMEOUT"
    assert "pg_sleep" not in response.text and "cancel" not in response.text.lower()


async def test_rate_limits_hold_across_two_app_instances_sharing_redis(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = security_settings(
        database_url, redis_url, redis_prefix, rate_limit_client="5/minute"
    )
    token = bearer(make_token(role="support", scope="customers:read", sub="shared-client"))
    async with app_client(settings) as one, app_client(settings) as two:
        statuses = []
        for i in range(8):
            target = one if i % 2 == 0 else two
            r = await target.post("/graphql", json={"query": "{ ping }"}, headers=token)
            statuses.append(r.status_code)
        assert statuses == [200] * 5 + [429] * 3
        assert int(r.headers["retry-after"]) >= 1
        assert code_of(r) == "RATE_LIMITED"
        # another client has its own budget
        other = bearer(make_token(role="support", scope="customers:read", sub="someone-else"))
        assert (
            await two.post("/graphql", json={"query": "{ ping }"}, headers=other)
        ).status_code == 200


async def test_anonymous_callers_are_limited_per_ip_and_clients_by_their_own_limit(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = security_settings(
        database_url, redis_url, redis_prefix, rate_limit_anonymous="2/minute"
    )
    created = await client_store.create_client(
        engine,
        name="Small",
        role=Role.SUPPORT,
        scopes=["customers:read"],
        rate_limit="1/minute",
        secret_cost=2**10,
    )
    limited = bearer(
        make_token(role="support", scope="customers:read", client_id=created.client.id)
    )
    async with app_client(settings) as c:
        anon = [
            (await c.post("/graphql", json={"query": "{ ping }"})).status_code for _ in range(3)
        ]
        assert anon == [200, 200, 429]
        mine = [
            (await c.post("/graphql", json={"query": "{ ping }"}, headers=limited)).status_code
            for _ in range(2)
        ]
        assert mine == [200, 429]


# --- graphql-cop's twelve checks ----------------------------------------------------------


async def test_cop_alias_overloading_101_aliases_is_refused(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }")
    assert response.status_code == 400 and "data" not in response.json()


async def test_cop_array_batching_is_refused(http: httpx.AsyncClient) -> None:
    batch = [{"query": "{ __typename }"}] * 10
    response = await http.post("/graphql", json=batch, headers=SUPPORT)
    assert response.status_code == 400
    assert code_of(response) == "BATCHING_NOT_SUPPORTED"


async def test_cop_directive_overloading_gets_one_error_not_ten(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ __typename " + "@aa " * 10 + "}")
    assert response.status_code == 400
    assert len(response.json()["errors"]) == 1
    assert code_of(response) == "TOO_MANY_DIRECTIVES"


async def test_cop_field_duplication_500_typenames_is_refused(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ " + "__typename " * 500 + "}")
    assert response.status_code == 400
    assert code_of(response) == "FIELD_DUPLICATION"


async def test_cop_field_suggestions_are_off(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ __schema { directive } }")
    assert "Did you mean" not in response.text


async def test_cop_introspection_query_is_refused(http: httpx.AsyncClient) -> None:
    response = await post(http, "query { __schema { types { name fields { name } } } }")
    assert response.status_code == 400 and "TestQuery" not in response.text


async def test_cop_circular_introspection_is_refused(http: httpx.AsyncClient) -> None:
    circular = (
        "query { __schema { types { fields { type { fields { type { fields { type { name } } } } }"
        " } } } }"
    )
    response = await post(http, circular)
    assert response.status_code == 400


async def test_cop_get_queries_work_but_get_mutations_do_not(http: httpx.AsyncClient) -> None:
    query = await http.get("/graphql", params={"query": "{ ping }"}, headers=SUPPORT)
    assert query.json() == {"data": {"ping": "pong"}}
    mutation = await http.get(
        "/graphql", params={"query": "mutation { touch(value: 1) }"}, headers=SUPPORT
    )
    assert mutation.status_code == 405
    assert code_of(mutation) == "METHOD_NOT_ALLOWED"


async def test_cop_form_urlencoded_post_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", data={"query": "mutation { touch(value: 1) }"}, headers=SUPPORT
    )
    assert response.status_code == 415


async def test_cop_no_ide_in_production(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert "graphiql" not in response.text.lower() and "playground" not in response.text.lower()


async def test_cop_no_tracing_or_exception_details_in_extensions(http: httpx.AsyncClient) -> None:
    response = await post(http, "{ boom }")
    body = response.json()
    assert "tracing" not in body.get("extensions", {})
    assert body["errors"][0]["message"] == "Internal server error"
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    for leak in ("Traceback", "SELECT", "RuntimeError", "internals"):
        assert leak not in response.text
    assert body["errors"][0]["extensions"]["requestId"] == response.headers["x-request-id"]
