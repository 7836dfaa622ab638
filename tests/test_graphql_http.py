"""The GraphQL endpoint over HTTP: bad documents are clear errors (never a 500), money is
formatted per locale, unexpected failures are masked, and a real server answers the gql client.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import strawberry
from gql import Client, GraphQLRequest, gql
from gql.transport.httpx import HTTPXAsyncTransport
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.hub import InProcessHub
from resolvers.context import Context
from resolvers.errors import MaskUnexpectedErrors, UserInputError
from tests.factories import make_customer, make_order, make_store
from tests.graphql_support import global_id, post_graphql


async def test_an_unknown_field_is_a_validation_error_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    body = await post_graphql(client, "{ customers { edges { node { shoeSize } } } }", status=400)
    assert "data" not in body
    assert "shoeSize" in body["errors"][0]["message"]


async def test_a_wrong_variable_type_is_a_clear_error(client: httpx.AsyncClient) -> None:
    body = await post_graphql(
        client, "query($n: Int) { orders(first: $n) { totalCount } }", {"n": "many"}, status=400
    )
    assert "Int cannot represent" in body["errors"][0]["message"]


@pytest.mark.parametrize("first", [-1, 100000])
async def test_page_sizes_out_of_range_are_typed_errors_over_http(
    client: httpx.AsyncClient, first: int
) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": "query($n: Int) { orders(first: $n) { totalCount } }",
            "variables": {"n": first},
        },
    )
    assert response.status_code in (200, 400)
    # the page-size rule, or the cost limit (api/graphql_http.py) before it: never a 500
    assert response.json()["errors"][0]["extensions"]["code"] in ("BAD_USER_INPUT", "COST_LIMIT")


async def test_a_huge_search_string_is_a_clear_error(client: httpx.AsyncClient) -> None:
    body = await post_graphql(
        client,
        "query($s: String) { customers(filter: {search: $s}) { totalCount } }",
        {"s": "x" * 10_000},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_money_follows_the_currency_exponent_and_the_callers_locale(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    tokyo = await make_store(engine, name="Tokyo", currency="JPY", timezone="Asia/Tokyo")
    kuwait = await make_store(engine, name="Kuwait", currency="KWD", timezone="Asia/Kuwait")
    yen = await make_order(
        engine, store_id=tokyo, currency="JPY", items=[{"name": "Ramen", "unit_price": 1250}]
    )
    fils = await make_order(
        engine, store_id=kuwait, currency="KWD", items=[{"name": "Tea", "unit_price": 1250}]
    )
    query = """query($a: ID!, $b: ID!) {
      a: order(id: $a) { total { amount currency formatted de: localized(locale: "de-DE") } }
      b: order(id: $b) { total { amount currency formatted } }
    }"""
    variables = {"a": global_id("Order", yen), "b": global_id("Order", fils)}
    body = await post_graphql(client, query, variables)
    assert body["data"]["a"]["total"] == {
        "amount": 1250,
        "currency": "JPY",
        "formatted": "¥1,250",
        "de": "1.250\xa0¥",
    }
    assert body["data"]["b"]["total"]["formatted"].replace("\xa0", "") == "KWD1.250"
    french = await post_graphql(
        client, query, variables, headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    )
    assert (
        french["data"]["a"]["total"]["formatted"].replace("\u202f", " ").replace("\xa0", " ")
        == "1 250 JPY"
    )
    bad = await post_graphql(
        client,
        'query($a: ID!) { order(id: $a) { total { localized(locale: "xx-!!") } } }',
        {"a": global_id("Order", yen)},
    )
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_graphiql_is_served_in_development_mode(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@strawberry.type
class _Broken:
    @strawberry.field
    def boom(self) -> str | None:
        raise RuntimeError("database password is hunter2")

    @strawberry.field
    def bad_input(self) -> str | None:
        raise UserInputError("`first` must be between 0 and 100", argument="first")


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    schema = strawberry.Schema(query=_Broken, extensions=[MaskUnexpectedErrors])
    context = Context(engine=engine, hub=InProcessHub(), request_id="req-42")
    with caplog.at_level(logging.ERROR, logger="guestgraph.graphql"):
        result = await schema.execute("{ boom badInput }", context_value=context)
    assert result.errors is not None
    errors = {e.path[0]: e.formatted for e in result.errors if e.path}
    boom, bad = errors["boom"], errors["badInput"]
    assert bad["path"] == ["badInput"]
    assert bad["message"] == "`first` must be between 0 and 100"
    assert boom["message"] == "Internal server error"
    assert boom["extensions"] == {"code": "INTERNAL", "requestId": "req-42"}
    assert "hunter2" not in str(boom)
    logged = [r for r in caplog.records if r.name == "guestgraph.graphql"]
    assert logged and "req-42" in logged[0].getMessage()
    assert logged[0].exc_info is not None


# --- a real server, a real client ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(engine: AsyncEngine, database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
    env.update({"GUESTGRAPH_DATABASE_URL": database_url, "GUESTGRAPH_MODE": "development"})
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, "server exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.e2e
async def test_the_gql_client_reads_a_customer_360_from_a_running_server(
    engine: AsyncEngine, server: str
) -> None:
    store = await make_store(engine)
    dana = await make_customer(engine, given_name="Dana")
    await make_order(
        engine,
        store_id=store,
        customer_id=dana,
        items=[{"name": "Latte", "unit_price": 450, "quantity": 2}],
    )
    request = GraphQLRequest(
        gql(
            """query($id: ID!) { customer(id: $id) { givenName
                 orders(first: 5) { edges { node { total { formatted }
                   lineItems { name quantity } } } } } }"""
        ),
        variable_values={"id": global_id("Customer", dana)},
    )
    async with Client(transport=HTTPXAsyncTransport(url=server)) as session:
        result = await session.execute(request)
    (edge,) = result["customer"]["orders"]["edges"]
    assert result["customer"]["givenName"] == "Dana"
    assert edge["node"]["total"] == {"formatted": "$9.00"}
    assert edge["node"]["lineItems"] == [{"name": "Latte", "quantity": 2.0}]
