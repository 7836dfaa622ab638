"""Identity resolution against the real database: linking, guardrails, merges, splits."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.matching import MatchPolicy
from domain.model import Source
from readmodel import identity
from readmodel.changefeed import rows_after
from readmodel.tables import customers, identity_ledger
from readmodel.tables import source_records as source_records_table
from tests.factories import make_store


async def link(engine: AsyncEngine, record: CustomerRecord, **kw: object) -> identity.Linked:
    async with engine.begin() as conn:
        return await identity.link_record(conn, record, actor="test", **kw)  # type: ignore[arg-type]


def square(external_id: str, **kw: object) -> CustomerRecord:
    return CustomerRecord(source=Source.SQUARE, external_id=external_id, **kw)  # type: ignore[arg-type]


def hubspot(external_id: str, **kw: object) -> CustomerRecord:
    return CustomerRecord(source=Source.HUBSPOT, external_id=external_id, **kw)  # type: ignore[arg-type]


async def golden_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(customers).where(customers.c.merged_into.is_(None))
            )
            or 0
        )


async def test_same_email_in_two_sources_is_one_customer(engine: AsyncEngine) -> None:
    a = await link(engine, square("sq-1", given_name="Dana", email=" Dana.Ortiz@Example.com "))
    b = await link(engine, hubspot("hs-1", given_name="Dana", email="dana.ortiz@example.com"))
    assert b.customer_id == a.customer_id
    assert b.matched_by == "email" and not b.created_customer
    async with engine.connect() as conn:
        row = (await conn.execute(select(customers).where(customers.c.id == a.customer_id))).one()
    assert row.email_normalized == "dana.ortiz@example.com"


async def test_phone_matches_only_with_an_agreeing_name(engine: AsyncEngine) -> None:
    dana = await link(
        engine, square("sq-1", given_name="Dana", family_name="Ortiz", phone="(415) 555-0123")
    )
    same = await link(
        engine, hubspot("hs-1", given_name="dana", family_name="Ortíz", phone="+1 415-555-0123")
    )
    sam = await link(
        engine, hubspot("hs-2", given_name="Sam", family_name="Ortiz", phone="4155550123")
    )
    assert same.customer_id == dana.customer_id and same.matched_by == "phone_and_name"
    assert sam.customer_id != dana.customer_id and sam.created_customer


async def test_blocked_email_and_store_phone_never_match(engine: AsyncEngine) -> None:
    await make_store(engine, phone="(212) 555-0100")
    a = await link(
        engine,
        square(
            "sq-1",
            given_name="Ann",
            family_name="Lee",
            email="noemail@gmail.com",
            phone="212-555-0100",
        ),
    )
    b = await link(
        engine,
        square(
            "sq-2",
            given_name="Ann",
            family_name="Lee",
            email="noemail@gmail.com",
            phone="212 555 0100",
        ),
    )
    assert a.customer_id != b.customer_id
    c = await link(
        engine,
        square(
            "sq-3", given_name="Bo", family_name="Kim", email="none@none.com", phone="000-000-0000"
        ),
    )
    assert c.created_customer


async def test_a_shared_phone_matches_no_one_on_its_own(engine: AsyncEngine) -> None:
    policy = MatchPolicy(phone_max_customers=1)

    async def arrive(external_id: str, given: str | None, **kw: object) -> identity.Linked:
        record = square(external_id, given_name=given, family_name="Lee", phone="4155550199", **kw)
        return await link(engine, record, policy=policy)

    ann = await arrive("sq-1", "Ann")
    bob = await arrive("sq-2", "Bob", email="bob@x.com")
    # the phone is now held by two customers (> 1): a family name or a near name does not
    # link on it
    nameless = await arrive("sq-3", None)
    typo = await arrive("sq-4", "Bbo")
    assert nameless.created_customer and typo.created_customer
    # the exact full name of exactly one holder does
    again = await arrive("sq-5", "ANN")
    assert again.customer_id == ann.customer_id
    assert again.matched_by == "shared_phone_and_exact_name"
    async with engine.connect() as conn:
        evidence = await conn.scalar(
            select(identity_ledger.c.evidence).where(
                identity_ledger.c.source_record_id == again.source_record_id
            )
        )
    assert evidence is not None
    assert evidence["phone"] == "+14155550199" and evidence["phone_holders"] == 4
    assert evidence["name"] == "exact" and evidence["shared"] == ["phone:+14155550199"]
    # a second Bob Lee with another email is someone else (Jr.); after him, "Bob Lee" on
    # that phone is ambiguous
    junior = await arrive("sq-6", "Bob", email="bob.jr@x.com")
    assert junior.created_customer
    ambiguous = await arrive("sq-7", "Bob")
    assert ambiguous.created_customer and bob.customer_id != ambiguous.customer_id


async def test_shared_loyalty_card_with_conflicting_email_and_name_does_not_link(
    engine: AsyncEngine,
) -> None:
    owner = await link(
        engine,
        square("sq-1", given_name="Ann", family_name="Lee", email="ann@x.com", loyalty_id="LC-1"),
    )
    staff = await link(
        engine,
        square("sq-2", given_name="Raj", family_name="Patel", email="raj@y.com", loyalty_id="lc 1"),
    )
    same = await link(engine, square("sq-3", given_name="Ann", loyalty_id="LC1"))
    assert staff.customer_id != owner.customer_id
    assert same.customer_id == owner.customer_id and same.matched_by == "loyalty_id"


async def test_a_record_that_ties_two_customers_merges_them_into_the_older(
    engine: AsyncEngine,
) -> None:
    by_email = await link(
        engine, square("sq-1", given_name="Dana", family_name="Ortiz", email="dana@example.com")
    )
    by_phone = await link(
        engine, hubspot("hs-1", given_name="Dana", family_name="Ortiz", phone="4155550123")
    )
    assert by_email.customer_id != by_phone.customer_id
    tie = await link(
        engine,
        hubspot(
            "hs-2",
            given_name="Dana",
            family_name="Ortiz",
            email="dana@example.com",
            phone="415.555.0123",
        ),
    )
    assert tie.customer_id == by_email.customer_id
    assert tie.merged_customer_ids == (by_phone.customer_id,)
    async with engine.connect() as conn:
        assert (
            await identity.canonical_customer_id(conn, by_phone.customer_id) == by_email.customer_id
        )
        feed = await rows_after(conn, 0)
        history = await identity.identity_history(conn, by_email.customer_id)
    assert any(
        r.topic == "customer.merged" and r.payload["merged_id"] == by_phone.customer_id
        for r in feed
    )
    assert [e.action for e in history].count("merge") == 1
    assert await golden_count(engine) == 1


async def test_secondary_email_needs_an_agreeing_name(engine: AsyncEngine) -> None:
    dana = await link(
        engine, square("sq-1", given_name="Dana", family_name="Ortiz", email="dana.ortiz@gmail.com")
    )
    same = await link(
        engine,
        hubspot(
            "hs-1", given_name="Dana", family_name="Ortiz", email="DanaOrtiz+pizza@googlemail.com"
        ),
    )
    other = await link(
        engine, hubspot("hs-2", given_name="Kim", family_name="Wu", email="danaortiz@gmail.com")
    )
    assert same.customer_id == dana.customer_id and same.matched_by == "secondary_email"
    assert other.customer_id != dana.customer_id
    async with engine.connect() as conn:
        stored = await conn.scalar(
            select(customers.c.email).where(customers.c.id == other.customer_id)
        )
    assert stored == "danaortiz@gmail.com"


async def test_an_older_version_does_not_overwrite_a_newer_one(engine: AsyncEngine) -> None:
    await link(engine, square("sq-1", given_name="Dana", version=5))
    await link(engine, square("sq-1", given_name="Old", version=3))
    async with engine.connect() as conn:
        assert await conn.scalar(select(customers.c.given_name)) == "Dana"


async def test_two_concurrent_deliveries_about_a_new_person_make_one_customer(
    engine: AsyncEngine,
) -> None:
    """Two connections, both inside their transaction before either commits."""
    both_started = asyncio.Barrier(2)

    async def deliver(record: CustomerRecord) -> int:
        async with engine.begin() as conn:
            await conn.execute(select(1))
            await both_started.wait()
            linked = await identity.link_record(conn, record, actor="test")
            await asyncio.sleep(0.05)  # hold the transaction open a moment
            return linked.customer_id

    for round_ in range(5):
        ids = await asyncio.gather(
            deliver(square(f"sq-{round_}", given_name="Dana", email=f"dana{round_}@example.com")),
            deliver(hubspot(f"hs-{round_}", given_name="Dana", email=f"DANA{round_}@example.com")),
        )
        assert ids[0] == ids[1]
    assert await golden_count(engine) == 5


async def test_every_link_is_in_the_ledger(engine: AsyncEngine) -> None:
    a = await link(engine, square("sq-1", email="a@example.com"))
    await link(engine, hubspot("hs-1", email="a@example.com"))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(identity_ledger).order_by(identity_ledger.c.id))).all()
    assert [(r.action, r.rule, r.actor) for r in rows] == [
        ("create", "new", "test"),
        ("link", "email", "test"),
    ]
    assert rows[1].evidence["email"] == "a@example.com"
    assert rows[1].customer_id == a.customer_id


@pytest.mark.parametrize("actor", ["support:1"])
async def test_identities_are_listed_with_how_they_matched(engine: AsyncEngine, actor: str) -> None:
    a = await link(engine, square("sq-1", email="a@example.com"))
    await link(engine, hubspot("hs-1", email="a@example.com"))
    async with engine.connect() as conn:
        found = await identity.identities_by_customer_ids(conn, [a.customer_id])
    assert [(i.source, i.external_id, i.matched_by) for i in found[a.customer_id]] == [
        (Source.SQUARE, "sq-1", "new"),
        (Source.HUBSPOT, "hs-1", "email"),
    ]


ARRIVALS = [
    square("sq-1", given_name="Dana", family_name="Ortiz", email="dana@example.com"),
    hubspot("hs-1", given_name="Dana", family_name="Ortiz", phone="4155550123"),
    hubspot(
        "hs-2",
        given_name="Dana",
        family_name="Ortiz",
        email="DANA@example.com",
        phone="(415) 555-0123",
    ),
    square("sq-2", given_name="Sam", family_name="Ortiz", phone="4155550123"),
    square(
        "sq-3",
        given_name="dana",
        family_name="ortiz",
        email="dana+x@example.com",
        phone="4155550123",
    ),
]


async def clusters(engine: AsyncEngine) -> set[frozenset[str]]:
    async with engine.connect() as conn:
        ids = [
            int(i)
            for i in (
                await conn.execute(select(customers.c.id).where(customers.c.merged_into.is_(None)))
            ).scalars()
        ]
        found = await identity.identities_by_customer_ids(conn, ids)
    return {frozenset(i.external_id for i in links) for links in found.values() if links}


@pytest.mark.parametrize(
    "order", [(0, 1, 2, 3, 4), (4, 3, 2, 1, 0), (3, 1, 4, 0, 2), (2, 4, 1, 3, 0)]
)
async def test_the_result_does_not_depend_on_arrival_order(
    engine: AsyncEngine, order: tuple[int, ...]
) -> None:
    for i in order:
        await link(engine, ARRIVALS[i])
    assert await clusters(engine) == {
        frozenset({"sq-1", "hs-1", "hs-2", "sq-3"}),
        frozenset({"sq-2"}),
    }


async def test_a_link_waiting_on_a_merge_lands_on_the_survivor(engine: AsyncEngine) -> None:
    a = await link(engine, square("sq-1", email="a@example.com"))
    b_record = hubspot("hs-1", email="b@example.com")
    b = await link(engine, b_record)
    merged = asyncio.Event()
    release = asyncio.Event()

    async def merge() -> None:
        async with engine.begin() as conn:
            await identity.merge_customers(conn, a.customer_id, b.customer_id, actor="t")
            merged.set()
            await release.wait()

    merging = asyncio.create_task(merge())
    await merged.wait()
    linking = asyncio.create_task(link(engine, b_record))
    await asyncio.sleep(0.2)
    assert not linking.done()  # waits for the merge's row locks
    release.set()
    await merging
    assert (await linking).customer_id == a.customer_id


async def test_an_erased_record_keys_match_no_one_and_leave_the_golden_profile(
    engine: AsyncEngine,
) -> None:
    first = await link(engine, square("sq-1", given_name="Eve", email="eve@example.com"))
    async with engine.begin() as conn:
        await conn.execute(
            source_records_table.update()
            .where(source_records_table.c.external_id == "sq-1")
            .values(attributes={})
        )
        forgotten = await identity.forget_record_keys(conn, Source.SQUARE, "sq-1", actor="dpo")
        assert await identity.forget_record_keys(conn, Source.SQUARE, "nope", actor="dpo") is None
    assert forgotten == first.customer_id
    async with engine.connect() as conn:
        golden = (await conn.execute(select(customers).where(customers.c.id == forgotten))).one()
    assert golden.email is None and golden.email_normalized is None and golden.given_name is None
    again = await link(engine, hubspot("hs-9", given_name="Eve", email="eve@example.com"))
    assert again.created_customer
