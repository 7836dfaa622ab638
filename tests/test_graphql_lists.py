"""Lists: Relay pagination edges, every filter, and bad arguments as clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import FulfillmentType, OrderStatus
from domain.viewer import Role, Viewer
from readmodel import traits
from readmodel.queries import CustomerQuery, Window, customer_page_statement
from tests.factories import make_customer, make_order, make_store
from tests.graphql_support import data_of, execute, global_id

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ORDERS = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: OrderFilter) {
  orders(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    edges { cursor node { externalId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def five_orders(engine: AsyncEngine) -> int:
    store = await make_store(engine)
    for n in range(5):
        await make_order(
            engine, store_id=store, external_id=f"o{n}", placed_at=T0 + timedelta(hours=n)
        )
    return store


def ids(data: dict[str, object]) -> list[str]:
    conn = data["orders"]
    assert isinstance(conn, dict)
    return [edge["node"]["externalId"] for edge in conn["edges"]]


async def test_pages_forward_to_the_last_page_and_then_an_empty_one(engine: AsyncEngine) -> None:
    await five_orders(engine)
    first = await data_of(engine, ORDERS, {"first": 2})
    assert ids(first) == ["o4", "o3"]
    assert first["orders"]["totalCount"] == 5
    assert first["orders"]["pageInfo"]["hasNextPage"] is True
    assert first["orders"]["pageInfo"]["hasPreviousPage"] is False

    second = await data_of(
        engine, ORDERS, {"first": 2, "after": first["orders"]["pageInfo"]["endCursor"]}
    )
    assert ids(second) == ["o2", "o1"]
    last = await data_of(
        engine, ORDERS, {"first": 2, "after": second["orders"]["pageInfo"]["endCursor"]}
    )
    assert ids(last) == ["o0"]
    assert last["orders"]["pageInfo"]["hasNextPage"] is False
    assert last["orders"]["pageInfo"]["hasPreviousPage"] is True

    beyond = await data_of(
        engine, ORDERS, {"first": 2, "after": last["orders"]["pageInfo"]["endCursor"]}
    )
    assert beyond["orders"]["edges"] == []
    assert beyond["orders"]["pageInfo"]["endCursor"] is None


async def test_pages_backward_with_last_and_before(engine: AsyncEngine) -> None:
    await five_orders(engine)
    tail = await data_of(engine, ORDERS, {"last": 2})
    assert ids(tail) == ["o1", "o0"]
    assert tail["orders"]["pageInfo"]["hasPreviousPage"] is True
    before = await data_of(
        engine, ORDERS, {"last": 2, "before": tail["orders"]["pageInfo"]["startCursor"]}
    )
    assert ids(before) == ["o3", "o2"]
    assert before["orders"]["pageInfo"]["hasNextPage"] is True


async def test_an_empty_list_is_an_empty_connection(engine: AsyncEngine) -> None:
    data = await data_of(engine, ORDERS, {})
    assert data["orders"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"first": -1}, "first"),
        ({"first": 100000}, "first"),
        ({"last": 101}, "last"),
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "!!!"}, "after"),
        ({"before": "x" * 10_000}, "before"),
    ],
)
async def test_bad_page_arguments_are_clear_typed_errors(
    engine: AsyncEngine, variables: dict[str, object], argument: str
) -> None:
    body = await execute(engine, ORDERS, variables)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert argument in error["message"]


async def test_a_cursor_of_another_list_is_rejected(engine: AsyncEngine) -> None:
    await make_customer(engine)
    customers = await data_of(engine, "{ customers(first: 1) { pageInfo { endCursor } } }")
    cursor = customers["customers"]["pageInfo"]["endCursor"]
    body = await execute(engine, ORDERS, {"after": cursor})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_orders_filter_by_status_store_fulfillment_and_time(engine: AsyncEngine) -> None:
    downtown = await make_store(engine, name="Downtown")
    harbor = await make_store(engine, name="Harbor")
    await make_order(
        engine,
        store_id=downtown,
        external_id="a",
        status=OrderStatus.PLACED,
        fulfillment=FulfillmentType.DELIVERY,
        placed_at=T0,
    )
    await make_order(
        engine,
        store_id=downtown,
        external_id="b",
        status=OrderStatus.READY,
        fulfillment=FulfillmentType.PICKUP,
        placed_at=T0 + timedelta(days=1),
    )
    await make_order(
        engine,
        store_id=harbor,
        external_id="c",
        status=OrderStatus.COMPLETED,
        fulfillment=FulfillmentType.DINE_IN,
        placed_at=T0 + timedelta(days=2),
    )

    async def matching(filter: dict[str, object]) -> list[str]:
        return sorted(ids(await data_of(engine, ORDERS, {"filter": filter})))

    assert await matching({"status": ["PLACED", "READY"]}) == ["a", "b"]
    assert await matching({"storeId": global_id("Store", harbor)}) == ["c"]
    assert await matching({"fulfillment": ["DELIVERY", "DINE_IN"]}) == ["a", "c"]
    assert await matching({"placedAfter": (T0 + timedelta(hours=1)).isoformat()}) == ["b", "c"]
    assert await matching({"placedBefore": (T0 + timedelta(days=1)).isoformat()}) == ["a"]
    assert await matching({"status": ["PLACED"], "fulfillment": ["PICKUP"]}) == []
    bad = await execute(engine, ORDERS, {"filter": {"storeId": global_id("Customer", 1)}})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_customers_orders_take_the_same_filter(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    dana = await make_customer(engine)
    await make_order(engine, store_id=store, customer_id=dana, status=OrderStatus.CANCELED)
    await make_order(engine, store_id=store, customer_id=dana, status=OrderStatus.COMPLETED)
    query = """query($id: ID!) { customer(id: $id) {
      orders(filter: {status: [CANCELED]}) { totalCount edges { node { status } } }
    } }"""
    data = await data_of(engine, query, {"id": global_id("Customer", dana)})
    assert data["customer"]["orders"] == {
        "totalCount": 1,
        "edges": [{"node": {"status": "CANCELED"}}],
    }


CUSTOMERS = """
query($filter: CustomerFilter, $first: Int, $after: String) {
  customers(filter: $filter, first: $first, after: $after) {
    totalCount edges { node { givenName } } pageInfo { hasNextPage endCursor }
  }
}
"""


def names(data: dict[str, object]) -> list[str]:
    conn = data["customers"]
    assert isinstance(conn, dict)
    return sorted(edge["node"]["givenName"] for edge in conn["edges"])


async def test_customers_filter_by_store_visited_and_last_order_time(engine: AsyncEngine) -> None:
    downtown = await make_store(engine, name="Downtown")
    harbor = await make_store(engine, name="Harbor")
    ana = await make_customer(engine, given_name="Ana")
    ben = await make_customer(engine, given_name="Ben")
    await make_customer(engine, given_name="Cy")  # never ordered
    await make_order(engine, store_id=downtown, customer_id=ana, placed_at=T0)
    await make_order(engine, store_id=harbor, customer_id=ben, placed_at=T0 + timedelta(days=10))
    async with engine.begin() as conn:
        await traits.recompute_traits(conn, [ana, ben])

    async def matching(filter: dict[str, object]) -> list[str]:
        return names(await data_of(engine, CUSTOMERS, {"filter": filter}))

    assert await matching({}) == ["Ana", "Ben", "Cy"]
    assert await matching({"visitedStoreId": global_id("Store", harbor)}) == ["Ben"]
    after = (T0 + timedelta(days=1)).isoformat()
    assert await matching({"lastOrderAfter": after}) == ["Ben"]
    assert await matching({"lastOrderBefore": after}) == ["Ana"]


async def test_customers_are_found_by_name_email_or_phone_text(engine: AsyncEngine) -> None:
    await make_customer(engine, given_name="Dana", family_name="Ortiz", email="dana@example.com")
    await make_customer(engine, given_name="Eli", family_name="Park", phone="+1 415 555 0100")
    await make_customer(engine, given_name="Fay", family_name="Ortega")

    async def found(search: str) -> list[str]:
        return names(await data_of(engine, CUSTOMERS, {"filter": {"search": search}}))

    assert await found("ORT") == ["Dana", "Fay"]
    assert await found("dana@exa") == ["Dana"]
    assert await found("100%") == []
    assert await found("nobody") == []


@pytest.mark.parametrize("search", ["ab", "x" * 10_000, "  a "])
async def test_a_search_too_short_or_too_long_is_a_clear_error(
    engine: AsyncEngine, search: str
) -> None:
    body = await execute(engine, CUSTOMERS, {"filter": {"search": search}})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "search" in error["message"]


async def test_customers_page_oldest_first(engine: AsyncEngine) -> None:
    for name in ["Ana", "Ben", "Cy"]:
        await make_customer(engine, given_name=name)
    page = await data_of(engine, CUSTOMERS, {"first": 2})
    assert [e["node"]["givenName"] for e in page["customers"]["edges"]] == ["Ana", "Ben"]
    rest = await data_of(
        engine, CUSTOMERS, {"first": 2, "after": page["customers"]["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["givenName"] for e in rest["customers"]["edges"]] == ["Cy"]
    assert rest["customers"]["pageInfo"]["hasNextPage"] is False


async def test_text_search_uses_the_trigram_index_not_a_table_scan(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO customers (given_name, family_name, email_normalized) "
                "SELECT 'Guest' || g, 'Family' || (g % 997), 'guest' || g || '@example.com' "
                "FROM generate_series(1, 20000) g"
            )
        )
        await conn.execute(text("ANALYZE customers"))
        await conn.execute(text("ANALYZE customer_traits"))
    stmt = customer_page_statement(CustomerQuery(search="guest1234"), Window(limit=20), None)
    compiled = stmt.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with engine.connect() as conn:
        plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_customers_search_text_trgm" in plan, plan
    assert "Seq Scan on customers" not in plan, plan


async def test_a_store_scoped_caller_sees_only_its_stores_rows(engine: AsyncEngine) -> None:
    mine = await make_store(engine, name="Mine")
    theirs = await make_store(engine, name="Theirs")
    ana = await make_customer(engine, given_name="Ana")
    ben = await make_customer(engine, given_name="Ben")
    await make_order(engine, store_id=mine, customer_id=ana, external_id="mine-1")
    foreign = await make_order(engine, store_id=theirs, customer_id=ana, external_id="theirs-1")
    await make_order(engine, store_id=theirs, customer_id=ben, external_id="theirs-2")
    async with engine.begin() as conn:
        await traits.recompute_traits(conn, [ana, ben])
    partner = Viewer(
        subject="partner-1",
        role=Role.PARTNER,
        scopes=frozenset({"orders:read", "customers:read"}),
        store_ids=frozenset({mine}),
    )
    query = """query($ana: ID!, $ben: ID!, $order: ID!) {
      stores { name }
      orders { edges { node { externalId } } }
      customers { edges { node { givenName orders { edges { node { externalId } } } } } }
      ben: customer(id: $ben) { id }
      ana: customer(id: $ana) { givenName }
      order(id: $order) { id }
    }"""
    data = await data_of(
        engine,
        query,
        {
            "ana": global_id("Customer", ana),
            "ben": global_id("Customer", ben),
            "order": global_id("Order", foreign),
        },
        viewer=partner,
    )
    assert data["stores"] == [{"name": "Mine"}]
    assert ids(data) == ["mine-1"]
    assert data["customers"]["edges"] == [
        {"node": {"givenName": "Ana", "orders": {"edges": [{"node": {"externalId": "mine-1"}}]}}}
    ]
    assert data["ben"] is None
    assert data["ana"] == {"givenName": "Ana"}
    assert data["order"] is None
