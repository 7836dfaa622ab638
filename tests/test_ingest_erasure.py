"""Deleting a source record: a privacy deletion forgets its match keys; a plain one does not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.events import CustomerDeleted, CustomerUpserted
from domain.identity import CustomerRecord
from domain.model import Source
from readmodel.projector import apply_events
from readmodel.tables import customers, source_records

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def dana(source: Source, external_id: str) -> CustomerUpserted:
    return CustomerUpserted(
        CustomerRecord(
            source,
            external_id,
            given_name="Dana",
            family_name="Ortiz",
            email="dana.ortiz@example.com",
            phone="+1 415 555 0123",
            observed_at=NOW,
        )
    )


async def golden_of(engine: AsyncEngine, source: Source, external_id: str) -> int:
    async with engine.connect() as conn:
        customer_id: int = (
            await conn.execute(
                select(source_records.c.customer_id)
                .where(source_records.c.source == source.value)
                .where(source_records.c.external_id == external_id)
            )
        ).scalar_one()
    return customer_id


@pytest.mark.parametrize("erase", [True, False], ids=["privacy deletion", "plain deletion"])
async def test_a_privacy_deletion_stops_the_records_keys_from_matching(
    engine: AsyncEngine, erase: bool
) -> None:
    async with engine.begin() as conn:
        await apply_events(conn, [dana(Source.HUBSPOT, "901")], actor="test")
    async with engine.begin() as conn:
        deleted = CustomerDeleted(Source.HUBSPOT, "901", at=NOW, erase=erase)
        await apply_events(conn, [deleted], actor="test")
    async with engine.begin() as conn:
        await apply_events(conn, [dana(Source.SQUARE, "SQ-1")], actor="test")

    first = await golden_of(engine, Source.HUBSPOT, "901")
    later = await golden_of(engine, Source.SQUARE, "SQ-1")
    if erase:
        assert later != first  # the erased person's email and phone match no one
        async with engine.connect() as conn:
            erased = (
                await conn.execute(
                    select(customers.c.email_normalized).where(customers.c.id == first)
                )
            ).scalar_one()
        assert erased is None
    else:
        assert later == first  # deleting one source record does not make a new person
