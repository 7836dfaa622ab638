"""The loyalty ledger: append-only entries, balances maintained from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel.tables import loyalty_accounts, loyalty_ledger


class InsufficientPoints(Exception):
    """The entry would take the balance below zero and the program does not allow it."""

    def __init__(self, account_id: int, balance: int, requested: int) -> None:
        super().__init__(f"account {account_id} has {balance} points, {requested} requested")
        self.account_id = account_id
        self.balance = balance
        self.requested = requested


@dataclass(frozen=True)
class LedgerResult:
    entry_id: int
    balance: int
    lifetime_points: int
    duplicate: bool


async def append_entry(
    conn: AsyncConnection,
    *,
    account_id: int,
    points: int,
    kind: str,
    actor: str,
    idempotency_key: str,
    source: str,
    reason: str | None = None,
    order_id: int | None = None,
    external_id: str | None = None,
    occurred_at: datetime | None = None,
    enforce_balance: bool = True,
) -> LedgerResult:
    """Append one ledger entry and move the balance, in the caller's transaction.

    A repeated ``idempotency_key`` changes nothing and returns the first entry with
    ``duplicate=True``. Positive points also raise ``lifetime_points``. With
    ``enforce_balance`` a debit below zero raises InsufficientPoints unless the account
    allows negative balances (sources such as Square may legitimately go negative: they
    pass ``enforce_balance=False``).
    """
    account = (
        await conn.execute(
            select(loyalty_accounts.c.balance, loyalty_accounts.c.allow_negative)
            .where(loyalty_accounts.c.id == account_id)
            .with_for_update()
        )
    ).one()
    values: dict[str, object] = {
        "account_id": account_id,
        "posted_account_id": account_id,
        "points": points,
        "kind": kind,
        "actor": actor,
        "idempotency_key": idempotency_key,
        "source": source,
        "reason": reason,
        "order_id": order_id,
        "external_id": external_id,
    }
    if occurred_at is not None:
        values["occurred_at"] = occurred_at
    inserted = (
        await conn.execute(
            pg_insert(loyalty_ledger)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(loyalty_ledger.c.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        first = (
            await conn.execute(
                select(loyalty_ledger.c.id).where(
                    loyalty_ledger.c.idempotency_key == idempotency_key
                )
            )
        ).scalar_one()
        current = (
            await conn.execute(
                select(loyalty_accounts.c.balance, loyalty_accounts.c.lifetime_points).where(
                    loyalty_accounts.c.id == account_id
                )
            )
        ).one()
        return LedgerResult(first, current.balance, current.lifetime_points, duplicate=True)
    new_balance = account.balance + points
    if enforce_balance and points < 0 and new_balance < 0 and not account.allow_negative:
        raise InsufficientPoints(account_id, account.balance, -points)
    row = (
        await conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.id == account_id)
            .values(
                balance=loyalty_accounts.c.balance + points,
                lifetime_points=loyalty_accounts.c.lifetime_points + max(points, 0),
            )
            .returning(loyalty_accounts.c.balance, loyalty_accounts.c.lifetime_points)
        )
    ).one()
    return LedgerResult(inserted, row.balance, row.lifetime_points, duplicate=False)


async def ensure_account(
    conn: AsyncConnection,
    *,
    customer_id: int,
    program: str,
    source: str,
    external_id: str,
    source_record_id: int | None = None,
) -> int:
    """The id of the account (source, external_id), created for ``customer_id`` if new.
    ``source_record_id``: the source record that brought it (a split moves it along)."""
    row = (
        await conn.execute(
            pg_insert(loyalty_accounts)
            .values(
                customer_id=customer_id,
                program=program,
                source=source,
                external_id=external_id,
                source_record_id=source_record_id,
            )
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(loyalty_accounts.c.id)
        )
    ).scalar_one_or_none()
    if row is not None:
        return int(row)
    existing = (
        await conn.execute(
            select(loyalty_accounts.c.id)
            .where(loyalty_accounts.c.source == source)
            .where(loyalty_accounts.c.external_id == external_id)
        )
    ).scalar_one()
    return int(existing)


__all__ = ["InsufficientPoints", "LedgerResult", "append_entry", "ensure_account"]
