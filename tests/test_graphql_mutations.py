"""Mutations: each one's success and each of its errors, idempotent replay, change-feed rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel import changefeed, loyalty
from readmodel.tables import change_feed, loyalty_accounts, loyalty_ledger
from tests.factories import make_customer, make_order, make_store
from tests.graphql_support import data_of, global_id

ADJUST = """
mutation($input: AdjustLoyaltyPointsInput!) {
  adjustLoyaltyPoints(input: $input) {
    __typename
    ... on AdjustLoyaltyPointsSuccess {
      account { program balance lifetimePoints }
      entry { id points reason actor kind }
      customer { loyalty { balance } }
    }
    ... on UserError { message }
    ... on InvalidInput { field }
    ... on InsufficientPoints { balance requested }
    ... on CustomerNotFound { customerId }
    ... on IdempotencyKeyReused { idempotencyKey }
  }
}
"""

REDEEM = (
    ADJUST.replace("AdjustLoyaltyPointsInput", "RedeemPointsInput")
    .replace("adjustLoyaltyPoints", "redeemPoints")
    .replace("AdjustLoyaltyPointsSuccess", "RedeemPointsSuccess")
)


async def feed_topics(engine: AsyncEngine) -> list[str]:
    """Change-feed topics in order, without the customer.updated rows the factories cause."""
    async with engine.connect() as conn:
        topics = await conn.scalars(
            select(change_feed.c.topic)
            .where(change_feed.c.topic != changefeed.CUSTOMER_UPDATED)
            .order_by(change_feed.c.seq)
        )
        return list(topics)


async def adjust(engine: AsyncEngine, **input: Any) -> dict[str, Any]:
    data = await data_of(engine, ADJUST, {"input": input})
    result: dict[str, Any] = data["adjustLoyaltyPoints"]
    return result


async def redeem(engine: AsyncEngine, **input: Any) -> dict[str, Any]:
    data = await data_of(engine, REDEEM, {"input": input})
    result: dict[str, Any] = data["redeemPoints"]
    return result


async def test_adjusting_points_opens_an_account_and_posts_a_ledger_entry(
    engine: AsyncEngine,
) -> None:
    dana = global_id("Customer", await make_customer(engine))
    result = await adjust(
        engine, customerId=dana, points=150, reason="late delivery", idempotencyKey="k1"
    )
    assert result["__typename"] == "AdjustLoyaltyPointsSuccess"
    assert result["account"] == {"program": "Rewards", "balance": 150, "lifetimePoints": 150}
    assert result["entry"]["points"] == 150
    assert result["entry"]["reason"] == "late delivery"
    assert result["entry"]["actor"] == "development"
    assert result["customer"] == {"loyalty": {"balance": 150}}
    assert await feed_topics(engine) == [changefeed.LOYALTY_CHANGED]


async def test_the_same_key_and_input_replays_the_first_result(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    input = {"customerId": dana, "points": 40, "reason": "goodwill", "idempotencyKey": "same"}
    first, again = await asyncio.gather(adjust(engine, **input), adjust(engine, **input))
    assert first["entry"]["id"] == again["entry"]["id"]
    assert first["account"]["balance"] == again["account"]["balance"] == 40
    async with engine.connect() as conn:
        assert await conn.scalar(select(loyalty_ledger.c.id).where(loyalty_ledger.c.points == 40))
        entries = (await conn.execute(select(loyalty_ledger.c.id))).all()
    assert len(entries) == 1
    assert await feed_topics(engine) == [changefeed.LOYALTY_CHANGED]


async def test_the_same_key_with_another_input_is_rejected(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    await adjust(engine, customerId=dana, points=40, reason="goodwill", idempotencyKey="k")
    reused = await adjust(engine, customerId=dana, points=50, reason="goodwill", idempotencyKey="k")
    assert reused == {
        "__typename": "IdempotencyKeyReused",
        "message": "this idempotencyKey was used with a different input",
        "idempotencyKey": "k",
    }


async def test_points_never_go_below_zero_unless_the_program_allows_it(
    engine: AsyncEngine,
) -> None:
    customer = await make_customer(engine)
    dana = global_id("Customer", customer)
    await adjust(engine, customerId=dana, points=30, reason="welcome", idempotencyKey="a")
    refused = await redeem(
        engine, customerId=dana, points=50, reason="free latte", idempotencyKey="b"
    )
    assert refused == {
        "__typename": "InsufficientPoints",
        "message": "50 points requested, 30 available",
        "balance": 30,
        "requested": 50,
    }
    removed = await adjust(engine, customerId=dana, points=-31, reason="typo", idempotencyKey="c")
    assert removed["__typename"] == "InsufficientPoints"

    async with engine.begin() as conn:
        await conn.execute(update(loyalty_accounts).values(allow_negative=True))
    allowed = await redeem(
        engine, customerId=dana, points=50, reason="free latte", idempotencyKey="b"
    )
    assert allowed["__typename"] == "RedeemPointsSuccess"
    assert allowed["account"]["balance"] == -20
    assert allowed["entry"]["kind"] == "REDEEM"
    assert allowed["entry"]["points"] == -50


async def test_a_redeem_retried_with_other_points_is_rejected(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    await adjust(engine, customerId=dana, points=100, reason="welcome", idempotencyKey="w")
    first = await redeem(engine, customerId=dana, points=10, reason="tea", idempotencyKey="r1")
    again = await redeem(engine, customerId=dana, points=10, reason="tea", idempotencyKey="r1")
    other = await redeem(engine, customerId=dana, points=20, reason="tea", idempotencyKey="r1")
    assert first["entry"]["id"] == again["entry"]["id"]
    assert again["account"]["balance"] == 90
    assert other["__typename"] == "IdempotencyKeyReused"


async def test_redeeming_without_an_account_is_insufficient_points(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    result = await redeem(engine, customerId=dana, points=5, reason="x", idempotencyKey="r")
    assert result["__typename"] == "InsufficientPoints"
    assert result["balance"] == 0


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"points": 0}, "points"),
        ({"points": 10_000_000}, "points"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"idempotencyKey": "k" * 201}, "idempotencyKey"),
        ({"customerId": "nope"}, "customerId"),
    ],
)
async def test_invalid_loyalty_input_names_the_field(
    engine: AsyncEngine, input: dict[str, Any], field: str
) -> None:
    dana = global_id("Customer", await make_customer(engine))
    base = {"customerId": dana, "points": 5, "reason": "ok", "idempotencyKey": "k"}
    result = await adjust(engine, **{**base, **input})
    assert result["__typename"] == "InvalidInput"
    assert result["field"] == field
    assert await feed_topics(engine) == []


async def test_an_unknown_customer_is_customer_not_found(engine: AsyncEngine) -> None:
    ghost = global_id("Customer", 4242)
    for run in (adjust, redeem):
        result = await run(engine, customerId=ghost, points=5, reason="x", idempotencyKey="g")
        assert result == {
            "__typename": "CustomerNotFound",
            "message": "customer not found",
            "customerId": ghost,
        }


UPDATE_PREFERENCES = """
mutation($input: UpdatePreferencesInput!) {
  updatePreferences(input: $input) {
    __typename
    ... on UpdatePreferencesSuccess { customer { preferences {
      dietary allergens cuisines marketingConsent { channel granted } } } }
    ... on InvalidInput { field message }
    ... on CustomerNotFound { customerId }
  }
}
"""


async def test_preferences_are_replaced_and_consent_recorded(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    first = await data_of(
        engine,
        UPDATE_PREFERENCES,
        {
            "input": {
                "customerId": dana,
                "dietary": ["Vegetarian"],
                "allergens": ["peanuts", "gluten"],
                "marketingConsent": [{"channel": "EMAIL", "granted": True}],
            }
        },
    )
    assert first["updatePreferences"]["customer"]["preferences"] == {
        "dietary": ["vegetarian"],
        "allergens": ["gluten", "peanuts"],
        "cuisines": [],
        "marketingConsent": [{"channel": "EMAIL", "granted": True}],
    }
    second = await data_of(
        engine,
        UPDATE_PREFERENCES,
        {
            "input": {
                "customerId": dana,
                "cuisines": ["thai"],
                "marketingConsent": [{"channel": "EMAIL", "granted": False}],
            }
        },
    )
    prefs = second["updatePreferences"]["customer"]["preferences"]
    assert prefs["dietary"] == ["vegetarian"]
    assert prefs["cuisines"] == ["thai"]
    assert prefs["marketingConsent"] == [{"channel": "EMAIL", "granted": False}]
    assert await feed_topics(engine) == [changefeed.PREFERENCES_UPDATED] * 2


async def test_preference_errors(engine: AsyncEngine) -> None:
    dana = global_id("Customer", await make_customer(engine))
    too_many = await data_of(
        engine,
        UPDATE_PREFERENCES,
        {"input": {"customerId": dana, "allergens": [f"a{n}" for n in range(51)]}},
    )
    assert too_many["updatePreferences"]["__typename"] == "InvalidInput"
    assert too_many["updatePreferences"]["field"] == "allergens"
    twice = await data_of(
        engine,
        UPDATE_PREFERENCES,
        {
            "input": {
                "customerId": dana,
                "marketingConsent": [
                    {"channel": "SMS", "granted": True},
                    {"channel": "SMS", "granted": False},
                ],
            }
        },
    )
    assert twice["updatePreferences"]["field"] == "marketingConsent"
    missing = await data_of(
        engine, UPDATE_PREFERENCES, {"input": {"customerId": global_id("Customer", 999)}}
    )
    assert missing["updatePreferences"]["__typename"] == "CustomerNotFound"


RECORD = """
mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) {
    __typename
    ... on RecordInteractionSuccess {
      interaction { id channel kind subject body actor order { externalId } }
      customer { interactions(first: 5) { totalCount edges { node { kind } } } }
    }
    ... on InvalidInput { field }
    ... on CustomerNotFound { customerId }
    ... on IdempotencyKeyReused { idempotencyKey }
  }
}
"""


async def test_an_interaction_is_recorded_once_per_key(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    customer = await make_customer(engine)
    order = await make_order(engine, store_id=store, customer_id=customer, external_id="T-1")
    input = {
        "customerId": global_id("Customer", customer),
        "channel": "phone",
        "kind": "Complaint",
        "subject": "Cold fries",
        "body": "Refunded the fries.",
        "orderId": global_id("Order", order),
        "idempotencyKey": "call-1",
    }
    first = (await data_of(engine, RECORD, {"input": input}))["recordInteraction"]
    assert first["__typename"] == "RecordInteractionSuccess"
    assert first["interaction"]["channel"] == "PHONE"
    assert first["interaction"]["kind"] == "complaint"
    assert first["interaction"]["order"] == {"externalId": "T-1"}
    assert first["customer"]["interactions"]["totalCount"] == 1
    again = (await data_of(engine, RECORD, {"input": input}))["recordInteraction"]
    assert again["interaction"]["id"] == first["interaction"]["id"]
    assert again["customer"]["interactions"]["totalCount"] == 1
    reused = (await data_of(engine, RECORD, {"input": {**input, "body": "other"}}))[
        "recordInteraction"
    ]
    assert reused == {"__typename": "IdempotencyKeyReused", "idempotencyKey": "call-1"}
    assert await feed_topics(engine) == [changefeed.INTERACTION_RECORDED]


async def test_interaction_errors(engine: AsyncEngine) -> None:
    store = await make_store(engine)
    customer = await make_customer(engine)
    someone_else = await make_customer(engine)
    foreign_order = await make_order(engine, store_id=store, customer_id=someone_else)
    base = {
        "customerId": global_id("Customer", customer),
        "channel": "CHAT",
        "kind": "question",
        "idempotencyKey": "q",
    }

    async def typename_and_field(**change: Any) -> tuple[str, str | None]:
        result = (await data_of(engine, RECORD, {"input": {**base, **change}}))["recordInteraction"]
        return result["__typename"], result.get("field")

    assert await typename_and_field(orderId=global_id("Order", foreign_order)) == (
        "InvalidInput",
        "orderId",
    )
    assert await typename_and_field(channel=" ") == ("InvalidInput", "channel")
    assert await typename_and_field(occurredAt="2999-01-01T00:00:00+00:00") == (
        "InvalidInput",
        "occurredAt",
    )
    assert (await typename_and_field(customerId=global_id("Customer", 999)))[0] == (
        "CustomerNotFound"
    )


async def test_loyalty_ledger_pages_newest_first(engine: AsyncEngine) -> None:
    customer = await make_customer(engine)
    async with engine.begin() as conn:
        account = await loyalty.ensure_account(
            conn, customer_id=customer, program="Stamps", source="SQUARE", external_id="la"
        )
        for n in range(3):
            await loyalty.append_entry(
                conn,
                account_id=account,
                points=10 * (n + 1),
                kind="ACCUMULATE_POINTS",
                actor="SQUARE",
                idempotency_key=f"e{n}",
                source="SQUARE",
            )
    query = """query($id: ID!, $after: String) { customer(id: $id) { loyalty {
      ledger(first: 2, after: $after) { totalCount edges { node { points } }
        pageInfo { hasNextPage endCursor } } } } }"""
    variables: dict[str, Any] = {"id": global_id("Customer", customer)}
    page = (await data_of(engine, query, variables))["customer"]["loyalty"]["ledger"]
    assert [e["node"]["points"] for e in page["edges"]] == [30, 20]
    assert page["totalCount"] == 3
    rest = (await data_of(engine, query, {**variables, "after": page["pageInfo"]["endCursor"]}))[
        "customer"
    ]["loyalty"]["ledger"]
    assert [e["node"]["points"] for e in rest["edges"]] == [10]
    assert rest["pageInfo"]["hasNextPage"] is False
