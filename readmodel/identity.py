"""Identity resolution inside the ingestion transaction.

Every source record (a Square customer, a HubSpot contact, a Toast guest...) is linked to
exactly one golden customer. This module is the shell: it loads candidates, asks the pure
decision in ``domain``, and writes the result (source record, identifiers, ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.identity import CustomerRecord
from domain.model import Source
from readmodel.tables import customers, identity_ledger, source_records


@dataclass(frozen=True)
class Linked:
    """Where a source record landed."""

    customer_id: int
    source_record_id: int
    created_customer: bool
    merged_customer_ids: tuple[int, ...] = ()


def _display_name(record: CustomerRecord) -> str | None:
    if record.display_name:
        return record.display_name
    parts = [p for p in (record.given_name, record.family_name) if p]
    return " ".join(parts) or None


def _attributes(record: CustomerRecord) -> dict[str, Any]:
    return {
        "given_name": record.given_name,
        "family_name": record.family_name,
        "display_name": record.display_name,
        "email": record.email,
        "phone": record.phone,
        "loyalty_id": record.loyalty_id,
        **dict(record.attributes),
    }


async def canonical_customer_id(conn: AsyncConnection, customer_id: int) -> int | None:
    """Follow ``merged_into`` to the surviving customer; None if there is no such customer."""
    current: int | None = customer_id
    for _ in range(32):  # merge chains are short; the bound guards against a cycle
        row = (
            await conn.execute(select(customers.c.merged_into).where(customers.c.id == current))
        ).first()
        if row is None:
            return None
        if row.merged_into is None:
            return current
        current = row.merged_into
    raise RuntimeError(f"merge chain from customer {customer_id} does not end")


async def link_record(
    conn: AsyncConnection, record: CustomerRecord, *, actor: str = "ingest"
) -> Linked:
    """Link ``record`` to its golden customer, creating one when nothing matches.

    Runs in the caller's transaction. Same source + external id always lands on the same
    customer (following merges).
    """
    existing = (
        await conn.execute(
            select(
                source_records.c.id, source_records.c.customer_id, source_records.c.source_version
            )
            .where(source_records.c.source == record.source.value)
            .where(source_records.c.external_id == record.external_id)
            .with_for_update()
        )
    ).first()
    if existing is not None:
        customer_id = (
            await canonical_customer_id(conn, existing.customer_id) or existing.customer_id
        )
        is_newer = (
            record.version is None
            or existing.source_version is None
            or record.version >= existing.source_version
        )
        if is_newer:
            await conn.execute(
                update(source_records)
                .where(source_records.c.id == existing.id)
                .values(
                    attributes=_attributes(record),
                    source_version=record.version,
                    source_updated_at=record.observed_at,
                    customer_id=customer_id,
                )
            )
        return Linked(customer_id, existing.id, created_customer=False)

    customer_id = (
        await conn.execute(
            insert(customers)
            .values(
                given_name=record.given_name,
                family_name=record.family_name,
                display_name=_display_name(record),
                email=record.email.strip() if record.email else None,
                email_normalized=record.email.strip().lower() if record.email else None,
            )
            .returning(customers.c.id)
        )
    ).scalar_one()
    source_record_id = (
        await conn.execute(
            insert(source_records)
            .values(
                source=record.source.value,
                external_id=record.external_id,
                customer_id=customer_id,
                matched_by="new",
                evidence={},
                attributes=_attributes(record),
                source_version=record.version,
                source_updated_at=record.observed_at,
            )
            .returning(source_records.c.id)
        )
    ).scalar_one()
    await conn.execute(
        insert(identity_ledger).values(
            action="create",
            customer_id=customer_id,
            source_record_id=source_record_id,
            rule="new",
            evidence={"source": record.source.value, "external_id": record.external_id},
            actor=actor,
        )
    )
    return Linked(customer_id, source_record_id, created_customer=True)


class CustomerNotFound(Exception):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"customer {customer_id} not found")
        self.customer_id = customer_id


async def merge_customers(
    conn: AsyncConnection,
    survivor_id: int,
    merged_id: int,
    *,
    actor: str,
    rule: str = "manual",
    evidence: dict[str, Any] | None = None,
) -> int:
    """Merge two golden customers in the caller's transaction; return the survivor's id.

    The older customer survives. Raises CustomerNotFound.
    """
    raise NotImplementedError("identity resolution (issue 4) implements merging")


async def split_customer(
    conn: AsyncConnection,
    customer_id: int,
    identities: Sequence[tuple[Source, str]],
    *,
    actor: str,
) -> int:
    """Move the named source records to a new golden customer; return its id."""
    raise NotImplementedError("identity resolution (issue 4) implements splitting")


async def apply_source_merge(
    conn: AsyncConnection,
    source: Source,
    winner_external_id: str,
    loser_external_ids: Sequence[str],
    *,
    actor: str,
) -> int | None:
    """Honour a merge the source itself made (Square ``event_context.merge``, HubSpot
    ``contact.merge``, Salesforce ``MasterRecordId``): the golden customers of the losing
    records merge into the winner's. Returns the surviving customer id, or None when none
    of the records is known yet. Runs in the caller's transaction.
    """
    raise NotImplementedError("identity resolution (issue 4) implements source merges")
