"""mergeCustomers / splitCustomer through the API, delegating to identity resolution."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import Source
from readmodel import changefeed
from readmodel.tables import change_feed
from tests.factories import make_customer, make_order, make_store
from tests.graphql_support import data_of, global_id

MERGE = """
mutation($input: MergeCustomersInput!) {
  mergeCustomers(input: $input) {
    __typename
    ... on MergeCustomersSuccess {
      mergedCustomerId
      customer { id givenName identities { source externalId }
        orders { totalCount } identityHistory(first: 5) { action actor } }
    }
    ... on UserError { message }
    ... on InvalidInput { field }
    ... on CustomerNotFound { customerId }
    ... on CustomersSeparated { customerId otherCustomerId }
  }
}
"""

SPLIT = """
mutation($input: SplitCustomerInput!) {
  splitCustomer(input: $input) {
    __typename
    ... on SplitCustomerSuccess {
      customer { id identities { source externalId } }
      newCustomer { id identities { source externalId } orders { totalCount } }
    }
    ... on UserError { message }
    ... on InvalidInput { field }
    ... on CustomerNotFound { customerId }
  }
}
"""


async def merge(engine: AsyncEngine, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await data_of(engine, MERGE, {"input": input}))["mergeCustomers"]
    return result


async def split(engine: AsyncEngine, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await data_of(engine, SPLIT, {"input": input}))["splitCustomer"]
    return result


async def topics(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(select(change_feed.c.topic).order_by(change_feed.c.seq)))


async def test_merging_keeps_the_older_customer_and_moves_everything(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    older = await make_customer(engine, given_name="Dana", external_id="SQ-1")
    newer = await make_customer(
        engine, given_name="Danielle", source=Source.HUBSPOT, external_id="HS-1"
    )
    await make_order(engine, store_id=store, customer_id=newer)

    result = await merge(
        engine,
        customerId=global_id("Customer", newer),
        otherCustomerId=global_id("Customer", older),
        reason="same person on the phone",
    )

    assert result["__typename"] == "MergeCustomersSuccess"
    assert result["mergedCustomerId"] == global_id("Customer", newer)
    customer = result["customer"]
    assert customer["id"] == global_id("Customer", older)
    assert {(i["source"], i["externalId"]) for i in customer["identities"]} == {
        ("SQUARE", "SQ-1"),
        ("HUBSPOT", "HS-1"),
    }
    assert customer["orders"]["totalCount"] == 1
    assert customer["identityHistory"][0] == {"action": "merge", "actor": "development"}
    assert changefeed.CUSTOMER_MERGED in await topics(engine)
    old_id = await data_of(
        engine, "query($id: ID!) { customer(id: $id) { id } }", {"id": global_id("Customer", newer)}
    )
    assert old_id["customer"]["id"] == global_id("Customer", older)


async def test_merge_errors(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    itself = await merge(engine, customerId=dana, otherCustomerId=dana)
    assert (itself["__typename"], itself["field"]) == ("InvalidInput", "otherCustomerId")
    ghost = global_id("Customer", 999)
    missing = await merge(engine, customerId=dana, otherCustomerId=ghost)
    assert missing["__typename"] == "CustomerNotFound"
    assert missing["customerId"] == ghost


async def test_splitting_moves_records_to_a_new_customer_and_keeps_them_apart(
    engine: AsyncEngine,
) -> None:
    store = await make_store(engine)
    dana = await make_customer(engine, given_name="Dana", external_id="SQ-1")
    other = await make_customer(engine, given_name="Dan", source=Source.TOAST, external_id="T-9")
    await make_order(engine, store_id=store, customer_id=other)
    merged = await merge(
        engine,
        customerId=global_id("Customer", dana),
        otherCustomerId=global_id("Customer", other),
    )
    assert merged["__typename"] == "MergeCustomersSuccess"

    result = await split(
        engine,
        customerId=global_id("Customer", dana),
        identities=[{"source": "TOAST", "externalId": "T-9"}],
    )

    assert result["__typename"] == "SplitCustomerSuccess"
    assert result["customer"]["identities"] == [{"source": "SQUARE", "externalId": "SQ-1"}]
    assert result["newCustomer"]["identities"] == [{"source": "TOAST", "externalId": "T-9"}]
    assert result["newCustomer"]["id"] != result["customer"]["id"]
    assert changefeed.CUSTOMER_SPLIT in await topics(engine)

    again = await merge(
        engine, customerId=result["customer"]["id"], otherCustomerId=result["newCustomer"]["id"]
    )
    assert again["__typename"] == "CustomersSeparated"
    forced = await merge(
        engine,
        customerId=result["customer"]["id"],
        otherCustomerId=result["newCustomer"]["id"],
        force=True,
    )
    assert forced["__typename"] == "MergeCustomersSuccess"


async def test_split_errors(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine, external_id="SQ-1"))
    unknown = await split(
        engine, customerId=dana, identities=[{"source": "TOAST", "externalId": "nope"}]
    )
    assert (unknown["__typename"], unknown["field"]) == ("InvalidInput", "identities")
    everything = await split(
        engine, customerId=dana, identities=[{"source": "SQUARE", "externalId": "SQ-1"}]
    )
    assert (everything["__typename"], everything["field"]) == ("InvalidInput", "identities")
    nothing = await split(engine, customerId=dana, identities=[])
    assert nothing["__typename"] == "InvalidInput"
    missing = await split(
        engine,
        customerId=global_id("Customer", 999),
        identities=[{"source": "SQUARE", "externalId": "SQ-1"}],
    )
    assert missing["__typename"] == "CustomerNotFound"
