"""Writes the GraphQL mutations make, each inside the caller's transaction.

The resolvers open one transaction per mutation: the idempotency record, the change itself
and its change-feed rows commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel import changefeed, identity, loyalty
from readmodel.changefeed import Change
from readmodel.queries import Scope, customer_scope
from readmodel.tables import (
    customer_traits,
    customers,
    interactions,
    loyalty_accounts,
    marketing_consents,
    mutation_idempotency,
    orders,
    preferences,
)

# --- idempotency ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResult:
    """What an earlier request with the same idempotency key did."""

    request_hash: str
    response: dict[str, Any]


async def recall_idempotent(conn: AsyncConnection, key: str, operation: str) -> StoredResult | None:
    """The stored result of ``key``, after locking the key until this transaction ends.

    The lock makes a concurrent retry with the same key wait for the first to commit (and
    then replay it) instead of applying the effect twice.
    """
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    row = (
        await conn.execute(
            select(mutation_idempotency.c.request_hash, mutation_idempotency.c.response).where(
                mutation_idempotency.c.key == key, mutation_idempotency.c.operation == operation
            )
        )
    ).first()
    return None if row is None else StoredResult(row.request_hash, row.response)


async def remember_idempotent(
    conn: AsyncConnection, key: str, operation: str, request_hash: str, response: dict[str, Any]
) -> None:
    await conn.execute(
        insert(mutation_idempotency).values(
            key=key, operation=operation, request_hash=request_hash, response=response
        )
    )


# --- customers --------------------------------------------------------------------------------


async def visible_customer_id(conn: AsyncConnection, customer_id: int, scope: Scope) -> int | None:
    """The surviving customer for ``customer_id`` if the caller may see it, else None."""
    survivor = await identity.canonical_customer_id(conn, customer_id)
    if survivor is None:
        return None
    row = (
        await conn.execute(
            select(customers.c.id)
            .select_from(
                customers.outerjoin(
                    customer_traits, customer_traits.c.customer_id == customers.c.id
                )
            )
            .where(customers.c.id == survivor, customer_scope(scope))
            .with_for_update(of=customers)
        )
    ).first()
    return None if row is None else int(row.id)


async def update_preferences(
    conn: AsyncConnection,
    customer_id: int,
    *,
    dietary: Sequence[str] | None,
    allergens: Sequence[str] | None,
    cuisines: Sequence[str] | None,
    consents: Sequence[tuple[str, bool]],
    actor: str,
    now: datetime,
) -> None:
    """Replace the given preference lists (None leaves one as it is) and record consents."""
    values: dict[str, Any] = {}
    if dietary is not None:
        values["dietary"] = list(dietary)
    if allergens is not None:
        values["allergens"] = list(allergens)
    if cuisines is not None:
        values["cuisines"] = list(cuisines)
    stmt = pg_insert(preferences).values(customer_id=customer_id, **values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[preferences.c.customer_id],
            set_={**values, "updated_at": func.now()},
        )
        if values
        else stmt.on_conflict_do_nothing(index_elements=[preferences.c.customer_id])
    )
    for channel, granted in consents:
        consent = pg_insert(marketing_consents).values(
            customer_id=customer_id,
            channel=channel,
            granted=granted,
            source="CANONICAL",
            recorded_at=now,
        )
        await conn.execute(
            consent.on_conflict_do_update(
                index_elements=[marketing_consents.c.customer_id, marketing_consents.c.channel],
                set_={
                    "granted": granted,
                    "source": "CANONICAL",
                    "source_record_id": None,
                    "recorded_at": now,
                    "updated_at": func.now(),
                },
            )
        )
    await changefeed.append_changes(
        conn,
        [
            Change(
                changefeed.PREFERENCES_UPDATED,
                f"customer:{customer_id}",
                {
                    "customer_id": customer_id,
                    "actor": actor,
                    "fields": sorted(values) + (["marketing_consent"] if consents else []),
                },
                customer_id=customer_id,
            )
        ],
    )


# --- interactions -----------------------------------------------------------------------------


async def order_of_customer(conn: AsyncConnection, order_id: int, customer_id: int) -> bool:
    row = (
        await conn.execute(
            select(orders.c.id).where(orders.c.id == order_id, orders.c.customer_id == customer_id)
        )
    ).first()
    return row is not None


async def record_interaction(
    conn: AsyncConnection,
    customer_id: int,
    *,
    channel: str,
    kind: str,
    subject: str | None,
    body: str | None,
    order_id: int | None,
    occurred_at: datetime,
    actor: str,
    idempotency_key: str,
) -> int:
    interaction_id = (
        await conn.execute(
            insert(interactions)
            .values(
                customer_id=customer_id,
                source="CANONICAL",
                channel=channel,
                kind=kind,
                subject=subject,
                body=body,
                actor=actor,
                order_id=order_id,
                occurred_at=occurred_at,
                idempotency_key=idempotency_key,
            )
            .returning(interactions.c.id)
        )
    ).scalar_one()
    await changefeed.append_changes(
        conn,
        [
            Change(
                changefeed.INTERACTION_RECORDED,
                f"interaction:{interaction_id}",
                {
                    "interaction_id": interaction_id,
                    "customer_id": customer_id,
                    "channel": channel,
                    "kind": kind,
                    "actor": actor,
                },
                customer_id=customer_id,
                order_id=order_id,
            )
        ],
    )
    return int(interaction_id)


# --- loyalty ----------------------------------------------------------------------------------

DEFAULT_PROGRAM = "Rewards"


async def primary_loyalty_account(conn: AsyncConnection, customer_id: int) -> int | None:
    """The account the API shows as the customer's ``loyalty`` (most lifetime points)."""
    row = (
        await conn.execute(
            select(loyalty_accounts.c.id)
            .where(loyalty_accounts.c.customer_id == customer_id)
            .order_by(loyalty_accounts.c.lifetime_points.desc(), loyalty_accounts.c.id)
            .limit(1)
        )
    ).first()
    return None if row is None else int(row.id)


async def post_loyalty_points(
    conn: AsyncConnection,
    customer_id: int,
    *,
    points: int,
    kind: str,
    reason: str,
    actor: str,
    idempotency_key: str,
    create_account: bool,
) -> loyalty.LedgerResult | None:
    """Post ``points`` to the customer's primary account; None when there is no account.

    Raises ``loyalty.InsufficientPoints`` when a debit would go below zero and the program
    does not allow it. With ``create_account`` a customer without an account gets one in
    guestgraph's own program.
    """
    account_id = await primary_loyalty_account(conn, customer_id)
    if account_id is None:
        if not create_account:
            return None
        account_id = await loyalty.ensure_account(
            conn,
            customer_id=customer_id,
            program=DEFAULT_PROGRAM,
            source="CANONICAL",
            external_id=f"customer:{customer_id}",
        )
    result = await loyalty.append_entry(
        conn,
        account_id=account_id,
        points=points,
        kind=kind,
        actor=actor,
        idempotency_key=idempotency_key,
        source="CANONICAL",
        reason=reason,
    )
    await changefeed.append_changes(
        conn,
        [
            Change(
                changefeed.LOYALTY_CHANGED,
                f"loyalty:{account_id}",
                {
                    "account_id": account_id,
                    "customer_id": customer_id,
                    "entry_id": result.entry_id,
                    "points": points,
                    "balance": result.balance,
                    "kind": kind,
                    "actor": actor,
                },
                customer_id=customer_id,
            )
        ],
    )
    return result
