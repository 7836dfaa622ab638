"""A group of deliveries links its customers together (``identity.link_records``): the same
result as linking one record at a time, in a number of statements that does not grow with
the group."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.ingestion import Outcome, ingest, toast_received
from domain.events import CustomerRef
from domain.identity import CustomerRecord
from domain.model import Source
from readmodel.database import create_engine
from readmodel.projector import Projector
from readmodel.tables import (
    customers,
    identifiers,
    identity_ledger,
    ingest_inbox,
    orders,
    source_records,
)
from tests.conftest import TRUNCATE
from tests.factories import make_store
from tests.ingest_support import dumps, toast_order_event

STORE_PHONE = "+1 212 555 0100"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def toast(external_id: str, version: int = 1, **kw: Any) -> CustomerRecord:
    return CustomerRecord(
        source=Source.TOAST, external_id=external_id, version=version, observed_at=T0, **kw
    )


async def _setup(engine: AsyncEngine) -> None:
    """What the database knows before the batch arrives."""
    await make_store(engine, phone=STORE_PHONE)
    before = [
        toast("repeat", 5, given_name="Ari", family_name="Haddad", email="ari@example.com"),
        toast("older", 5, given_name="Noor", family_name="Iyer", email="noor@example.com"),
        toast("moved", 5, given_name="Zoe", family_name="Byrne", email="zoe@example.com"),
        CustomerRecord(
            source=Source.HUBSPOT,
            external_id="crm-1",
            given_name="Kenji",
            family_name="Tanaka",
            email="kenji@example.com",
        ),
    ]
    async with engine.begin() as conn:
        projector = Projector(conn, actor="setup")
        for record in before:
            await projector.customer(CustomerRef(record.source, record.external_id, record))


def _batch() -> list[CustomerRecord]:
    return [
        # unchanged, newer version / unchanged, older version / changed family name
        toast("repeat", 9, given_name="Ari", family_name="Haddad", email="ari@example.com"),
        toast("older", 2, given_name="Noor", family_name="Other", email="noor@example.com"),
        toast("moved", 9, given_name="Zoe", family_name="Okafor", email="zoe@example.com"),
        # new, keys nobody holds; new with only a name; new with the store's own phone
        toast("new-1", given_name="Sam", family_name="Cohen", email="sam@example.com"),
        toast("new-2", given_name="Priya"),
        toast("new-3", given_name="Mateo", family_name="Moreno", phone=STORE_PHONE),
        # new, but a CRM customer holds the email
        toast("new-4", given_name="Kenji", family_name="Tanaka", email="KENJI@example.com"),
        # two new records of one person in the same batch (same phone and name)
        toast("pair-a", given_name="Dana", family_name="Ortiz", phone="+1 415 555 0123"),
        toast("pair-b", given_name="Dana", family_name="Ortiz", phone="(415) 555-0123"),
        # one record twice with different contents; and one sent twice the same
        toast("twice", 1, given_name="Lee", email="lee@example.com"),
        toast("twice", 2, given_name="Lee", family_name="Park", email="lee@example.com"),
        toast("same", 1, given_name="Ada", email="ada@example.com"),
        toast("same", 1, given_name="Ada", email="ada@example.com"),
    ]


async def _link(
    engine: AsyncEngine, *, ahead: bool, batch: list[CustomerRecord] | None = None
) -> dict[str, str]:
    """Link ``batch`` (default: ``_batch()``) in one transaction, ahead as a group or not;
    answer which record landed with which (each record named by the first of its customer)."""
    refs = [CustomerRef(r.source, r.external_id, r) for r in (batch or _batch())]
    landed: dict[str, int] = {}
    async with engine.begin() as conn:
        projector = Projector(conn, actor="test")
        if ahead:
            await projector.link_customers(refs)
        for ref in refs:
            customer_id, _ = await projector.customer(ref)
            assert customer_id is not None
            landed[f"{ref.source.value}:{ref.external_id}"] = customer_id
        await projector.finish()
    return {k: min(e for e, c in landed.items() if c == v) for k, v in landed.items()}


def _named(value: Any, person: dict[int, str]) -> str:
    """Evidence as text, the customer ids in it replaced by who they are."""

    def walk(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            return sorted((k, walk(x, k)) for k, x in v.items())
        if isinstance(v, list):
            return [walk(x, key) for x in v]
        if key.endswith("customer_id") and isinstance(v, int):
            return person.get(v, "a merged customer")
        return v

    return str(walk(value))


async def _state(engine: AsyncEngine) -> dict[str, Any]:
    """Everything identity resolution wrote, with database ids replaced by source keys."""
    async with engine.connect() as conn:
        records = (await conn.execute(select(source_records))).all()
        key = {r.id: f"{r.source}:{r.external_id}" for r in records}
        members: dict[int, list[str]] = {}
        for r in records:
            members.setdefault(r.customer_id, []).append(key[r.id])
        person = {cid: ",".join(sorted(keys)) for cid, keys in members.items()}
        golden = {
            person[c.id]: (
                c.given_name,
                c.family_name,
                c.display_name,
                c.email,
                c.email_normalized,
                c.phone,
                {k: key[v] for k, v in c.survivorship.items()},
                c.merged_into is not None,
            )
            for c in (await conn.execute(select(customers))).all()
            if c.id in person
        }
        ledger = sorted(
            (
                r.action,
                person.get(r.customer_id, "merged away"),
                key.get(r.source_record_id, ""),
                r.rule,
                _named(r.evidence, person),
                r.actor,
            )
            for r in (await conn.execute(select(identity_ledger))).all()
        )
        idents = sorted(
            (key[r.source_record_id], person[r.customer_id], r.kind, r.value, r.verified)
            for r in (await conn.execute(select(identifiers))).all()
        )
    return {
        "records": sorted(
            (
                key[r.id],
                person[r.customer_id],
                r.matched_by,
                _named(r.evidence, person),
                str(sorted(r.attributes.items())),
                r.source_version,
                r.source_updated_at,
                r.deleted_at,
            )
            for r in records
        ),
        "golden": golden,
        "ledger": ledger,
        "identifiers": idents,
    }


async def _reset(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(TRUNCATE))


async def test_a_batch_linked_ahead_ends_where_linking_one_by_one_ends(
    engine: AsyncEngine,
) -> None:
    await _setup(engine)
    one_by_one = await _link(engine, ahead=False)
    expected = await _state(engine)

    await _reset(engine)
    await _setup(engine)
    together = await _link(engine, ahead=True)
    assert together == one_by_one
    assert await _state(engine) == expected
    # and the cases the batch covers came out as they should
    assert one_by_one["TOAST:pair-b"] == "TOAST:pair-a"
    assert one_by_one["TOAST:new-1"] == "TOAST:new-1"
    assert one_by_one["TOAST:new-3"] == "TOAST:new-3"


# --- the same, over generated batches ------------------------------------------------------

PEOPLE = [("Dana", "Ortiz"), ("Ari", "Haddad"), ("Dana", None), (None, None)]
EMAILS = ["dana@example.com", "ari@example.com", "DANA@example.com ", None]
PHONES = ["+1 415 555 0123", "(628) 201-3377", None]


@st.composite
def records(draw: st.DrawFn) -> CustomerRecord:
    given, family = draw(st.sampled_from(PEOPLE))
    return CustomerRecord(
        source=draw(st.sampled_from([Source.TOAST, Source.TOAST, Source.HUBSPOT])),
        external_id=f"g{draw(st.integers(1, 5))}",
        version=draw(st.integers(1, 3)),
        observed_at=T0,
        given_name=given,
        family_name=family,
        email=draw(st.sampled_from(EMAILS)),
        phone=draw(st.sampled_from(PHONES)),
    )


async def _generated(
    database_url: str, before: list[CustomerRecord], batch: list[CustomerRecord], ahead: bool
) -> tuple[dict[str, str], dict[str, Any]]:
    engine = create_engine(database_url, pool_size=2)
    try:
        await _reset(engine)
        async with engine.begin() as conn:
            projector = Projector(conn, actor="setup")
            for record in before:
                await projector.customer(CustomerRef(record.source, record.external_id, record))
        together = await _link(engine, ahead=ahead, batch=batch)
        return together, await _state(engine)
    finally:
        await engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(before=st.lists(records(), max_size=3), batch=st.lists(records(), min_size=1, max_size=8))
def test_any_batch_linked_ahead_ends_where_linking_one_by_one_ends(
    database_url: str, before: list[CustomerRecord], batch: list[CustomerRecord]
) -> None:
    one_by_one = asyncio.run(_generated(database_url, before, batch, ahead=False))
    together = asyncio.run(_generated(database_url, before, batch, ahead=True))
    assert together == one_by_one


async def test_link_records_answers_only_the_records_it_linked(engine: AsyncEngine) -> None:
    from readmodel import identity

    await _setup(engine)
    async with engine.begin() as conn:
        linked = await identity.link_records(conn, _batch(), actor="test")
    assert {external_id for _, external_id in linked} == {
        "repeat",
        "older",
        "new-1",
        "new-2",
        "new-3",
        "same",
    }
    assert linked[("TOAST", "new-1")].created_customer
    assert not linked[("TOAST", "repeat")].created_customer
    async with engine.connect() as conn:
        version = await conn.scalar(
            select(source_records.c.source_version).where(source_records.c.external_id == "repeat")
        )
    assert version == 9


# --- a webhook group: statements per group, not per delivery ------------------------------


def _guest_order(n: int, guest: int, run: str) -> bytes:
    event = toast_order_event(
        f"{run}-order-{n}",
        event_guid=f"{run}-evt-{n}",
        modified=f"2025-06-14T18:{n // 60 % 60:02d}:{n % 60:02d}.000+0000",
    )
    event["details"]["order"]["checks"][0]["customer"] = {
        "guid": f"guest-{guest}",
        "firstName": "Guest",
        "lastName": f"Number{guest}",
        "email": f"guest{guest}@example.com",
        "phone": f"628201{guest:04d}",
        "phoneCountryCode": "1",
    }
    return dumps(event)


@contextlib.contextmanager
def count_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the engine's connections send to PostgreSQL while the block runs:
    SQLAlchemy's (prepared: its cursor events see them) and those sent on the driver
    connection (``readmodel.driver``: asyncpg's query log sees them)."""
    seen: list[str] = []

    def logged(query: Any) -> None:
        seen.append(query.query)

    def executed(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.remove_query_logger(logged)

    hooks = {"checkout": checkout, "checkin": checkin, "before_cursor_execute": executed}
    for name, hook in hooks.items():
        event.listen(engine.sync_engine, name, hook)
    try:
        yield seen
    finally:
        for name, hook in hooks.items():
            event.remove(engine.sync_engine, name, hook)


async def _ingest_group(engine: AsyncEngine, bodies: Sequence[bytes]) -> list[Outcome]:
    return await ingest(engine, [toast_received(b) for b in bodies], actor="webhook:toast")


async def test_a_group_of_deliveries_costs_the_same_statements_whatever_its_size(
    engine: AsyncEngine,
) -> None:
    await make_store(
        engine, source=Source.TOAST, external_id=toast_order_event("x")["details"]["restaurantGuid"]
    )
    # guests 0-39 have ordered before
    await _ingest_group(engine, [_guest_order(n, n, "warm") for n in range(40)])

    counts = []
    for run, size in (("small", 8), ("large", 32)):
        # half repeat guests, half first-time guests
        offset = 100 if run == "small" else 200
        bodies = [_guest_order(n, n if n % 2 else offset + n, run) for n in range(size)]
        with count_queries(engine) as log:
            outcomes = await _ingest_group(engine, bodies)
        assert [o.status for o in outcomes] == ["applied"] * size
        counts.append(len(log))
    assert counts[0] == counts[1]
    assert counts[1] <= 25, counts

    async with engine.connect() as conn:
        stored = await conn.scalar(
            select(orders.c.id).where(orders.c.external_id == "large-order-31")
        )
        applied = (
            (
                await conn.execute(
                    select(ingest_inbox.c.status).where(ingest_inbox.c.event_id.like("large-evt-%"))
                )
            )
            .scalars()
            .all()
        )
        guests = (
            (
                await conn.execute(
                    select(source_records.c.external_id).where(source_records.c.source == "TOAST")
                )
            )
            .scalars()
            .all()
        )
    assert stored is not None and applied == ["applied"] * 32
    assert len(guests) == 40 + 4 + 16
