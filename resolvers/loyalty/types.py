"""Loyalty: a customer's account and its append-only ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from readmodel.queries import Window
from resolvers.context import Info
from resolvers.node import to_global_id
from resolvers.pagination import Connection, build_connection, window_of

LEDGER_CURSOR = "ledger"


@strawberry.type(description="One ledger entry: points earned (+) or spent (-), and why.")
class LoyaltyLedgerEntry:
    id: strawberry.ID
    kind: str = strawberry.field(description="e.g. ACCUMULATE_POINTS, REDEEM, ADJUST.")
    points: int = strawberry.field(description="Signed: positive earns, negative spends.")
    reason: str | None
    actor: str = strawberry.field(description="Who made the entry: a source, or a support user.")
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> LoyaltyLedgerEntry:
        return cls(
            id=to_global_id("LoyaltyLedgerEntry", row.id),
            kind=row.kind,
            points=row.points,
            reason=row.reason,
            actor=row.actor,
            occurred_at=row.occurred_at,
        )


@strawberry.type(description="A page of ledger entries, newest first.")
class LoyaltyLedgerConnection(Connection[LoyaltyLedgerEntry]):
    pass


@strawberry.type(description="A customer's loyalty account (their primary one if several).")
class LoyaltyAccount:
    program: str
    balance: int = strawberry.field(description="Points available now.")
    lifetime_points: int = strawberry.field(description="Every point ever earned.")
    tier: str | None
    account_id: strawberry.Private[int]

    @strawberry.field(description="The entries that make up the balance, newest first.")
    async def ledger(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> LoyaltyLedgerConnection:
        window = window_of(LEDGER_CURSOR, (int,), first=first, after=after)
        loaders = info.context.loaders
        rows = await loaders.ledger_by_account_id.load((self.account_id, None, window))

        async def count() -> int:
            return int(await loaders.ledger_count_by_account_id.load((self.account_id, None)))

        return ledger_connection(rows, window, count)


def ledger_connection(rows: Any, window: Window, count: Any) -> LoyaltyLedgerConnection:
    return build_connection(
        LoyaltyLedgerConnection,
        rows,
        window,
        kind=LEDGER_CURSOR,
        key_of=lambda row: (row.id,),
        node_of=LoyaltyLedgerEntry.from_row,
        count=count,
    )
