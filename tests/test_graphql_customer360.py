"""The customer-360 view: one document, the whole person, a fixed number of SQL statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import OrderStatus
from readmodel import loyalty, traits
from readmodel.tables import customers, source_records
from tests.factories import make_customer, make_menu_item, make_order, make_store
from tests.graphql_support import count_statements, data_of, execute, global_id

CUSTOMER_360 = """
query Customer360($id: ID!) {
  customer(id: $id) {
    id displayName givenName familyName email phone createdAt
    identities { source externalId matchedBy linkedAt }
    preferences { dietary allergens cuisines marketingConsent { channel granted } }
    loyalty { program balance lifetimePoints tier }
    insights {
      orderCount totalSpend { amount currency formatted }
      averageOrderValue { amount formatted } firstOrderAt lastOrderAt usualOrderHour
      channelMix { channel orderCount share }
      favoriteItems(first: 3) { name quantity orderCount }
    }
    orders(first: 20) {
      edges { cursor node {
        id source externalId status fulfillment placedAt promisedAt isDelayed
        subtotal { amount currency formatted } tax { amount } tip { amount }
        discount { amount } total { amount currency formatted }
        lineItems { name quantity modifiers unitPrice { amount formatted } total { amount }
          menuItem { id name price { amount formatted } tags } }
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def bulk_orders(
    engine: AsyncEngine, *, customer_id: int, store_id: int, menu_item_id: int, count: int
) -> None:
    """``count`` orders of three line items each, in two statements (fast for big histories)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                WITH o AS (
                  INSERT INTO orders (source, external_id, store_id, customer_id, status,
                                      fulfillment, channel, currency, subtotal_amount,
                                      total_amount, placed_at)
                  SELECT 'SQUARE', 'bulk-' || CAST(:customer_id AS bigint) || '-' || g,
                         CAST(:store_id AS bigint), CAST(:customer_id AS bigint), 'COMPLETED',
                         'PICKUP', 'ONLINE', 'USD', 1500, 1500,
                         now() - make_interval(hours => g)
                  FROM generate_series(1, CAST(:count AS int)) g
                  RETURNING id
                )
                INSERT INTO order_line_items (order_id, position, name, quantity,
                                              unit_price_amount, total_amount, currency,
                                              menu_item_id)
                SELECT o.id, p, 'Latte', 1, 500, 500, 'USD', CAST(:menu_item_id AS bigint)
                FROM o, generate_series(0, 2) p
                """
            ),
            {
                "customer_id": customer_id,
                "store_id": store_id,
                "count": count,
                "menu_item_id": menu_item_id,
            },
        )
        await traits.recompute_traits(conn, [customer_id])


async def test_customer_360_shows_the_whole_person(engine: AsyncEngine) -> None:
    store = await make_store(engine, timezone="America/New_York")
    pizza = await make_menu_item(engine, name="Margherita", price=1450, tags=["vegetarian"])
    dana = await make_customer(engine, email="Dana@Example.com", external_id="SQ-1")
    await make_order(
        engine,
        store_id=store,
        customer_id=dana,
        placed_at=datetime(2026, 1, 5, 17, 30, tzinfo=UTC),
        items=[
            {
                "name": "Margherita",
                "quantity": 2,
                "unit_price": 1450,
                "menu_item_id": pizza,
                "modifiers": ["extra basil"],
            }
        ],
        tax=232,
        tip=300,
    )
    async with engine.begin() as conn:
        await traits.recompute_traits(conn, [dana])
        account = await loyalty.ensure_account(
            conn, customer_id=dana, program="Stamps", source="SQUARE", external_id="la-1"
        )
        await loyalty.append_entry(
            conn,
            account_id=account,
            points=120,
            kind="ACCUMULATE_POINTS",
            actor="SQUARE",
            idempotency_key="e-1",
            source="SQUARE",
        )

    data = await data_of(engine, CUSTOMER_360, {"id": global_id("Customer", dana)})

    customer = data["customer"]
    assert customer["id"] == global_id("Customer", dana)
    assert customer["displayName"] == "Dana Ortiz"
    assert customer["email"] == "Dana@Example.com"
    assert customer["identities"][0]["source"] == "SQUARE"
    assert customer["identities"][0]["externalId"] == "SQ-1"
    assert customer["loyalty"] == {
        "program": "Stamps",
        "balance": 120,
        "lifetimePoints": 120,
        "tier": None,
    }
    insights = customer["insights"]
    assert insights["orderCount"] == 1
    assert insights["totalSpend"] == {"amount": 3432, "currency": "USD", "formatted": "$34.32"}
    assert insights["usualOrderHour"] == 12
    assert insights["channelMix"] == [{"channel": "ONLINE", "orderCount": 1, "share": 1.0}]
    assert insights["favoriteItems"] == [{"name": "Margherita", "quantity": 2.0, "orderCount": 1}]
    (edge,) = customer["orders"]["edges"]
    order = edge["node"]
    assert order["status"] == "COMPLETED"
    assert order["isDelayed"] is False
    assert order["subtotal"] == {"amount": 2900, "currency": "USD", "formatted": "$29.00"}
    assert order["total"]["amount"] == 2900 + 232 + 300
    (line,) = order["lineItems"]
    assert line["quantity"] == 2.0
    assert line["modifiers"] == ["extra basil"]
    assert line["unitPrice"] == {"amount": 1450, "formatted": "$14.50"}
    assert line["menuItem"]["name"] == "Margherita"
    assert line["menuItem"]["tags"] == ["vegetarian"]
    assert customer["orders"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("order_count", [1, 500])
async def test_customer_360_runs_at_most_four_statements_however_many_orders(
    engine: AsyncEngine, order_count: int
) -> None:
    store = await make_store(engine)
    latte = await make_menu_item(engine, name="Latte", price=500)
    dana = await make_customer(engine)
    await bulk_orders(
        engine, customer_id=dana, store_id=store, menu_item_id=latte, count=order_count
    )
    async with engine.begin() as conn:
        account = await loyalty.ensure_account(
            conn, customer_id=dana, program="Stamps", source="SQUARE", external_id="la-2"
        )

    with count_statements(engine) as log:
        data = await data_of(engine, CUSTOMER_360, {"id": global_id("Customer", dana)})

    edges = data["customer"]["orders"]["edges"]
    assert len(edges) == min(order_count, 20)
    assert all(len(e["node"]["lineItems"]) == 3 for e in edges)
    assert data["customer"]["loyalty"]["program"] == "Stamps"
    assert account
    assert log.count <= 4, log.statements


async def test_fifty_customers_with_their_last_five_orders_run_at_most_four_statements(
    engine: AsyncEngine,
) -> None:
    store = await make_store(engine)
    latte = await make_menu_item(engine, name="Latte", price=500)
    for n in range(50):
        customer = await make_customer(engine, given_name=f"Guest{n}")
        await bulk_orders(engine, customer_id=customer, store_id=store, menu_item_id=latte, count=7)
    query = """
    { customers(first: 50) { totalCount edges { node { id displayName
        insights { orderCount }
        orders(first: 5) { edges { node { id total { amount formatted }
          lineItems { name menuItem { name } } } } } } } } }
    """
    with count_statements(engine) as log:
        data = await data_of(engine, query)

    edges = data["customers"]["edges"]
    assert len(edges) == 50
    assert data["customers"]["totalCount"] == 50
    assert all(len(e["node"]["orders"]["edges"]) == 5 for e in edges)
    assert log.count <= 4, log.statements


async def test_a_merged_away_id_answers_with_the_surviving_customer(engine: AsyncEngine) -> None:
    survivor = await make_customer(engine, given_name="Dana")
    merged = await make_customer(engine, given_name="Danielle")
    async with engine.begin() as conn:
        await conn.execute(
            customers.update()
            .where(customers.c.id == merged)
            .values(merged_into=survivor, merged_at=datetime.now(UTC))
        )
    query = "query($id: ID!) { customer(id: $id) { id givenName } }"
    data = await data_of(engine, query, {"id": global_id("Customer", merged)})
    assert data["customer"] == {"id": global_id("Customer", survivor), "givenName": "Dana"}


async def test_an_unknown_or_foreign_id_is_null_not_an_error(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    query = """query($a: ID!, $b: ID!, $c: ID!) {
      a: customer(id: $a) { id } b: customer(id: $b) { id } c: node(id: $c) { id }
    }"""
    body = await execute(
        engine,
        query,
        {"a": global_id("Customer", 999), "b": global_id("Store", store), "c": "not-an-id"},
    )
    assert body == {"data": {"a": None, "b": None, "c": None}}


async def test_node_fetches_any_object_by_its_global_id(engine: AsyncEngine) -> None:
    store = await make_store(engine, name="Harbor")
    dana = await make_customer(engine, given_name="Dana")
    order = await make_order(engine, store_id=store, customer_id=dana)
    query = """query($c: ID!, $o: ID!, $s: ID!) {
      c: node(id: $c) { id ... on Customer { givenName } }
      o: node(id: $o) { ... on Order { id store { name } customer { givenName } } }
      s: node(id: $s) { ... on Store { name } }
    }"""
    data = await data_of(
        engine,
        query,
        {
            "c": global_id("Customer", dana),
            "o": global_id("Order", order),
            "s": global_id("Store", store),
        },
    )
    assert data["c"] == {"id": global_id("Customer", dana), "givenName": "Dana"}
    assert data["o"]["store"] == {"name": "Harbor"}
    assert data["o"]["customer"] == {"givenName": "Dana"}
    assert data["s"] == {"name": "Harbor"}


async def test_customer_by_identity_finds_the_person_behind_a_source_record(
    engine: AsyncEngine,
) -> None:
    dana = await make_customer(engine, external_id="HS-77")
    async with engine.begin() as conn:
        await conn.execute(
            insert(source_records).values(
                source="HUBSPOT", external_id="751", customer_id=dana, matched_by="email"
            )
        )
    query = """query($s: Source!, $e: String!) {
      customerByIdentity(source: $s, externalId: $e) { id identities { source matchedBy } }
    }"""
    data = await data_of(engine, query, {"s": "HUBSPOT", "e": "751"})
    assert data["customerByIdentity"]["id"] == global_id("Customer", dana)
    assert {i["source"] for i in data["customerByIdentity"]["identities"]} == {
        "SQUARE",
        "HUBSPOT",
    }
    missing = await data_of(engine, query, {"s": "TOAST", "e": "751"})
    assert missing == {"customerByIdentity": None}


async def test_placed_orders_past_their_promise_are_delayed(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    now = datetime.now(UTC)
    late = await make_order(
        engine,
        store_id=store,
        status=OrderStatus.PREPARING,
        placed_at=now - timedelta(minutes=40),
        promised_at=now - timedelta(minutes=10),
    )
    on_time = await make_order(
        engine,
        store_id=store,
        status=OrderStatus.PREPARING,
        placed_at=now - timedelta(minutes=5),
        promised_at=now + timedelta(minutes=10),
    )
    query = (
        "query($a: ID!, $b: ID!) { a: order(id: $a) { isDelayed } b: order(id: $b) { isDelayed } }"
    )
    data = await data_of(
        engine, query, {"a": global_id("Order", late), "b": global_id("Order", on_time)}
    )
    assert data == {"a": {"isDelayed": True}, "b": {"isDelayed": False}}


async def test_line_items_resolve_alone_and_through_fragments(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    dana = await make_customer(engine)
    order = await make_order(
        engine,
        store_id=store,
        customer_id=dana,
        items=[{"name": "Soup", "unit_price": 700}, {"name": "Bread", "unit_price": 200}],
    )
    query = """
    fragment Ticket on Order { lineItems { name } }
    query($o: ID!, $c: ID!) {
      order(id: $o) { lineItems { name } }
      customer(id: $c) { orders { edges { node { ...Ticket } } } }
    }"""
    data = await data_of(
        engine, query, {"o": global_id("Order", order), "c": global_id("Customer", dana)}
    )
    tickets = [{"name": "Soup"}, {"name": "Bread"}]
    assert data["order"]["lineItems"] == tickets
    assert data["customer"]["orders"]["edges"] == [{"node": {"lineItems": tickets}}]
