"""Merging and splitting golden customers: everything moves, and a split stays split."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.model import Source
from readmodel import identity, loyalty
from readmodel.changefeed import rows_after
from readmodel.tables import (
    customer_traits,
    customers,
    interactions,
    loyalty_accounts,
    loyalty_ledger,
    marketing_consents,
    orders,
    preferences,
    source_records,
)
from tests.factories import make_order, make_store


def record(source: Source, external_id: str, **kw: object) -> CustomerRecord:
    return CustomerRecord(source=source, external_id=external_id, **kw)  # type: ignore[arg-type]


async def link(engine: AsyncEngine, rec: CustomerRecord) -> identity.Linked:
    async with engine.begin() as conn:
        return await identity.link_record(conn, rec, actor="test")


async def source_record_id(engine: AsyncEngine, source: Source, external_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(source_records.c.id).where(
                    source_records.c.source == source.value,
                    source_records.c.external_id == external_id,
                )
            )
            or 0
        )


async def give_points(
    engine: AsyncEngine,
    customer_id: int,
    external_id: str,
    points: int,
    *,
    record_id: int | None = None,
    program: str = "Stamps",
) -> int:
    async with engine.begin() as conn:
        account = await loyalty.ensure_account(
            conn,
            customer_id=customer_id,
            program=program,
            source="SQUARE",
            external_id=external_id,
            source_record_id=record_id,
        )
        await loyalty.append_entry(
            conn,
            account_id=account,
            points=points,
            kind="ACCUMULATE_POINTS",
            actor="t",
            idempotency_key=f"k-{external_id}",
            source="SQUARE",
        )
    return account


async def test_merge_moves_orders_loyalty_preferences_and_keeps_the_older_id(
    engine: AsyncEngine,
) -> None:
    store = await make_store(engine)
    older = (
        await link(
            engine,
            record(
                Source.SQUARE, "sq-1", given_name="Dana", family_name="Ortiz", email="d@pos.com"
            ),
        )
    ).customer_id
    newer = (
        await link(
            engine,
            record(
                Source.HUBSPOT,
                "hs-1",
                given_name="Dana",
                family_name="Ortiz",
                email="d@crm.com",
                phone="4155550123",
                phone_verified=True,
            ),
        )
    ).customer_id
    await make_order(
        engine, store_id=store, customer_id=newer, items=[{"name": "Tea", "unit_price": 400}]
    )
    await make_order(
        engine, store_id=store, customer_id=older, items=[{"name": "Pie", "unit_price": 600}]
    )
    kept = await give_points(engine, older, "la-1", 30)
    await give_points(engine, newer, "la-2", 12)
    async with engine.begin() as conn:
        await conn.execute(insert(preferences).values(customer_id=older, allergens=["peanut"]))
        await conn.execute(
            insert(preferences).values(
                customer_id=newer, allergens=["shellfish"], dietary=["vegan"]
            )
        )
        await conn.execute(
            insert(interactions).values(
                customer_id=newer,
                source="CANONICAL",
                channel="PHONE",
                kind="CALL",
                actor="a",
                occurred_at=func.now(),
            )
        )
    async with engine.begin() as conn:
        survivor = await identity.merge_customers(conn, newer, older, actor="support:7")
    assert survivor == older
    async with engine.connect() as conn:
        order_owners = set((await conn.execute(select(orders.c.customer_id))).scalars())
        account = (
            await conn.execute(select(loyalty_accounts).where(loyalty_accounts.c.id == kept))
        ).one()
        prefs = (await conn.execute(select(preferences))).all()
        traits = (
            await conn.execute(
                select(customer_traits).where(customer_traits.c.customer_id == older)
            )
        ).one()
        merged = (await conn.execute(select(customers).where(customers.c.id == newer))).one()
        gold = (await conn.execute(select(customers).where(customers.c.id == older))).one()
        owners = set((await conn.execute(select(interactions.c.customer_id))).scalars())
        assert await identity.canonical_customer_id(conn, newer) == older
    assert order_owners == {older} and owners == {older}
    assert (account.balance, account.lifetime_points) == (42, 42)
    assert [(p.customer_id, p.allergens, p.dietary) for p in prefs] == [
        (older, ["peanut", "shellfish"], ["vegan"])
    ]
    assert traits.order_count == 2 and traits.total_spend_amount == 1000
    assert merged.merged_into == older
    assert gold.phone == "+14155550123"


async def test_merge_errors_are_typed(engine: AsyncEngine) -> None:
    a = (await link(engine, record(Source.SQUARE, "sq-1", email="a@x.com"))).customer_id
    b = (await link(engine, record(Source.SQUARE, "sq-2", email="b@x.com"))).customer_id
    async with engine.begin() as conn:
        with pytest.raises(identity.CustomerNotFound):
            await identity.merge_customers(conn, a, 999_999, actor="t")
        with pytest.raises(identity.CannotMergeWithItself):
            await identity.merge_customers(conn, a, a, actor="t")
        await identity.merge_customers(conn, a, b, actor="t")
        with pytest.raises(identity.CannotMergeWithItself):
            await identity.merge_customers(conn, b, a, actor="t")
    assert issubclass(identity.CustomersSeparated, identity.IdentityError)


async def test_crm_wins_names_and_consent(engine: AsyncEngine) -> None:
    pos = (
        await link(
            engine,
            record(Source.SQUARE, "sq-1", given_name="Dan", family_name="O", email="d@x.com"),
        )
    ).customer_id
    crm = (
        await link(
            engine,
            record(
                Source.SALESFORCE, "sf-1", given_name="Dana", family_name="Ortiz", email="d2@x.com"
            ),
        )
    ).customer_id
    async with engine.begin() as conn:
        await conn.execute(
            insert(marketing_consents).values(
                customer_id=crm,
                channel="EMAIL",
                granted=False,
                source="SALESFORCE",
                recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
        await conn.execute(
            insert(marketing_consents).values(
                customer_id=pos,
                channel="EMAIL",
                granted=True,
                source="SQUARE",
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        survivor = await identity.merge_customers(conn, pos, crm, actor="t")
    async with engine.connect() as conn:
        gold = (await conn.execute(select(customers).where(customers.c.id == survivor))).one()
        consent = (await conn.execute(select(marketing_consents))).one()
    assert (gold.given_name, gold.family_name, gold.display_name) == ("Dana", "Ortiz", "Dana Ortiz")
    assert (consent.customer_id, consent.granted, consent.source) == (survivor, False, "SALESFORCE")


async def test_split_moves_what_came_from_the_named_records_and_never_remerges(
    engine: AsyncEngine,
) -> None:
    store = await make_store(engine)
    mom = record(
        Source.SQUARE, "sq-mom", given_name="Ana", family_name="Ruiz", email="family@x.com"
    )
    son = record(
        Source.TOAST,
        "t-son",
        given_name="Ana",
        family_name="Ruiz",
        email="family@x.com",
        phone="4155550111",
    )
    customer = (await link(engine, mom)).customer_id
    assert (await link(engine, son)).customer_id == customer
    son_record = await source_record_id(engine, Source.TOAST, "t-son")
    async with engine.begin() as conn:
        order = await conn.scalar(
            insert(orders)
            .values(
                source="TOAST",
                external_id="o-1",
                store_id=store,
                customer_id=customer,
                source_record_id=son_record,
                status="COMPLETED",
                fulfillment="PICKUP",
                currency="USD",
                total_amount=900,
                placed_at=func.now(),
            )
            .returning(orders.c.id)
        )
    await make_order(
        engine, store_id=store, customer_id=customer, items=[{"name": "Pie", "unit_price": 600}]
    )
    async with engine.begin() as conn:
        new = await identity.split_customer(
            conn, customer, [(Source.TOAST, "t-son")], actor="support:1"
        )
    async with engine.connect() as conn:
        assert await conn.scalar(select(orders.c.customer_id).where(orders.c.id == order)) == new
        found = await identity.identities_by_customer_ids(conn, [customer, new])
        feed = await rows_after(conn, 0)
        history = await identity.identity_history(conn, new)
        phone = await conn.scalar(select(customers.c.phone).where(customers.c.id == new))
    assert [i.external_id for i in found[customer]] == ["sq-mom"]
    assert [(i.external_id, i.matched_by) for i in found[new]] == [("t-son", "split")]
    assert any(r.topic == "customer.split" and r.payload["new_customer_id"] == new for r in feed)
    assert [e.action for e in history] == ["link", "split"]
    assert phone == "+14155550111"
    # the same events again: each stays where the split put it
    assert (await link(engine, replace(son, given_name="Anita"))).customer_id == new
    assert (await link(engine, replace(mom, phone="4155550111"))).customer_id == customer
    async with engine.begin() as conn:
        with pytest.raises(identity.CustomersSeparated):
            await identity.merge_customers(conn, customer, new, actor="t")
    async with engine.begin() as conn:
        assert (
            await identity.merge_customers(conn, customer, new, actor="t", force=True) == customer
        )


async def test_split_moves_the_loyalty_accounts_the_named_records_brought(
    engine: AsyncEngine,
) -> None:
    pos = record(Source.SQUARE, "sq-1", given_name="Dana", family_name="Ortiz", email="d@x.com")
    crm = record(Source.HUBSPOT, "hs-1", given_name="Dana", family_name="Ortiz", email="d@y.com")
    kept_customer = (await link(engine, pos)).customer_id
    other = (await link(engine, crm)).customer_id
    pos_id = await source_record_id(engine, Source.SQUARE, "sq-1")
    crm_id = await source_record_id(engine, Source.HUBSPOT, "hs-1")
    stamps = await give_points(engine, kept_customer, "la-1", 30, record_id=pos_id)
    folded = await give_points(engine, other, "la-2", 12, record_id=crm_id)
    wine = await give_points(engine, other, "la-3", 5, record_id=crm_id, program="Wine")
    unattributed = await give_points(engine, other, "la-4", 7, program="Coffee")
    async with engine.begin() as conn:
        await identity.merge_customers(conn, kept_customer, other, actor="t")

    async def balances() -> dict[int, tuple[int, int, int]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    loyalty_accounts.c.id,
                    loyalty_accounts.c.customer_id,
                    loyalty_accounts.c.balance,
                    loyalty_accounts.c.lifetime_points,
                )
            )
            return {int(r.id): (r.customer_id, r.balance, r.lifetime_points) for r in rows}

    merged = await balances()
    assert merged[stamps] == (kept_customer, 42, 42)  # the merge folded la-2 into la-1
    assert merged[folded] == (kept_customer, 0, 0)
    async with engine.begin() as conn:
        new = await identity.split_customer(
            conn, kept_customer, [(Source.HUBSPOT, "hs-1")], actor="support:1"
        )
        ledger = await conn.execute(select(loyalty_ledger.c.account_id, loyalty_ledger.c.points))
        entries = sorted((int(r.account_id), r.points) for r in ledger)
        feed = await rows_after(conn, 0)
    assert await balances() == {
        stamps: (kept_customer, 30, 30),
        folded: (new, 12, 12),
        wine: (new, 5, 5),
        unattributed: (kept_customer, 7, 7),  # no source record brought it: it stays
    }
    assert entries == sorted([(stamps, 30), (folded, 12), (wine, 5), (unattributed, 7)])
    split_changes = {
        (r.payload["account_id"], r.customer_id)
        for r in feed
        if r.topic == "loyalty.changed" and r.payload.get("reason") == "split"
    }
    assert split_changes == {(stamps, kept_customer), (folded, new)}


async def test_split_errors_are_typed(engine: AsyncEngine) -> None:
    a = (await link(engine, record(Source.SQUARE, "sq-1", email="a@x.com"))).customer_id
    await link(engine, record(Source.HUBSPOT, "hs-1", email="a@x.com"))
    async with engine.begin() as conn:
        with pytest.raises(identity.NothingToSplit):
            await identity.split_customer(conn, a, [], actor="t")
        with pytest.raises(identity.IdentityNotFound):
            await identity.split_customer(conn, a, [(Source.TOAST, "nope")], actor="t")
        with pytest.raises(identity.CannotSplitEveryIdentity):
            await identity.split_customer(
                conn, a, [(Source.SQUARE, "sq-1"), (Source.HUBSPOT, "hs-1")], actor="t"
            )
        with pytest.raises(identity.CustomerNotFound):
            await identity.split_customer(conn, 424242, [(Source.SQUARE, "sq-1")], actor="t")


@pytest.mark.parametrize(
    ("source", "winner", "losers"),
    [
        (Source.SQUARE, "sq-new", ["sq-a", "sq-b"]),
        (Source.HUBSPOT, "751", ["752"]),
        (Source.SALESFORCE, "0035f00000LkQ2mAAF", ["0035f00000LkQ2nAAF"]),
    ],
)
async def test_source_merges_are_honoured(
    engine: AsyncEngine, source: Source, winner: str, losers: list[str]
) -> None:
    ids = []
    for i, external_id in enumerate([*losers, winner]):
        linked = await link(
            engine, record(source, external_id, given_name=f"P{i}", email=f"p{i}@x.com")
        )
        ids.append(linked.customer_id)
    assert len(set(ids)) == len(ids)
    async with engine.begin() as conn:
        survivor = await identity.apply_source_merge(conn, source, winner, losers, actor="ingest")
    assert survivor == min(ids)
    async with engine.connect() as conn:
        assert set((await identity.canonical_customer_ids(conn, ids)).values()) == {survivor}
        history = await identity.identity_history(conn, survivor)
    assert [e.rule for e in history if e.action == "merge"] == ["source_merge"] * (len(ids) - 1)


async def test_a_source_merge_of_unknown_records_changes_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert (
            await identity.apply_source_merge(conn, Source.HUBSPOT, "1", ["2"], actor="t") is None
        )
