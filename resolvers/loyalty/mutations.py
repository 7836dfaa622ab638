"""``adjustLoyaltyPoints`` (support) and ``redeemPoints`` (apps): ledger entries, once per key."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel import commands, loyalty, queries
from resolvers.context import Info
from resolvers.customers.mutations import customer_for_update, fresh_customer, text_value
from resolvers.customers.types import Customer
from resolvers.errors import (
    CustomerNotFound,
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidInput,
    Rejected,
    UserError,
)
from resolvers.idempotency import ledger_key, run_once
from resolvers.loyalty.types import LoyaltyAccount, LoyaltyLedgerEntry
from resolvers.permissions import requires

MAX_POINTS = 1_000_000
MAX_REASON_LENGTH = 500


@strawberry.input(description="Add (positive) or remove (negative) points, with a reason.")
class AdjustLoyaltyPointsInput:
    customer_id: strawberry.ID
    points: int = strawberry.field(description="Non-zero; negative removes points.")
    reason: str
    idempotency_key: str = strawberry.field(description="Retrying with it posts once.")


@strawberry.input(description="Spend points.")
class RedeemPointsInput:
    customer_id: strawberry.ID
    points: int = strawberry.field(description="How many to spend; positive.")
    reason: str = strawberry.field(description="What they were spent on.")
    idempotency_key: str = strawberry.field(description="Retrying with it redeems once.")


@strawberry.type(description="The points were posted (or had been, with this key).")
class AdjustLoyaltyPointsSuccess:
    customer: Customer
    account: LoyaltyAccount
    entry: LoyaltyLedgerEntry


@strawberry.type(description="The points were spent (or had been, with this key).")
class RedeemPointsSuccess:
    customer: Customer
    account: LoyaltyAccount
    entry: LoyaltyLedgerEntry


AdjustLoyaltyPointsPayload = Annotated[
    AdjustLoyaltyPointsSuccess
    | CustomerNotFound
    | InvalidInput
    | InsufficientPoints
    | IdempotencyKeyReused,
    strawberry.union("AdjustLoyaltyPointsPayload"),
]
RedeemPointsPayload = Annotated[
    RedeemPointsSuccess
    | CustomerNotFound
    | InvalidInput
    | InsufficientPoints
    | IdempotencyKeyReused,
    strawberry.union("RedeemPointsPayload"),
]


async def _post(
    info: Info,
    *,
    operation: str,
    customer_global_id: str,
    points: int,
    kind: str,
    reason: str,
    key: str,
    create_account: bool,
) -> dict[str, Any] | UserError:
    async def effect(conn: AsyncConnection) -> dict[str, Any]:
        customer_id = await customer_for_update(conn, info, customer_global_id, "customerId")
        why = text_value(reason, "reason", max_length=MAX_REASON_LENGTH)
        try:
            result = await commands.post_loyalty_points(
                conn,
                customer_id,
                points=points,
                kind=kind,
                reason=why,
                actor=info.context.viewer.subject,
                idempotency_key=ledger_key(info, operation, key),
                create_account=create_account,
            )
        except loyalty.InsufficientPoints as exc:
            raise Rejected(_insufficient(exc.balance, exc.requested)) from None
        if result is None:
            raise Rejected(_insufficient(0, -points))
        return {"customer_id": customer_id, "entry_id": result.entry_id}

    request = {"customer_id": customer_global_id, "points": points, "reason": reason}
    return await run_once(info, operation=operation, key=key, request=request, effect=effect)


def _insufficient(balance: int, requested: int) -> InsufficientPoints:
    return InsufficientPoints(
        balance=balance,
        requested=requested,
        message=f"{requested} points requested, {balance} available",
    )


def _invalid_points(points: int, *, positive: bool) -> InvalidInput | None:
    low = 1 if positive else -MAX_POINTS
    if points < low or points > MAX_POINTS or points == 0:
        allowed = f"1 to {MAX_POINTS}" if positive else f"non-zero, within ±{MAX_POINTS}"
        return InvalidInput(field="points", message=f"points must be {allowed}")
    return None


async def _account_and_entry(
    info: Info, outcome: dict[str, Any]
) -> tuple[Customer, LoyaltyAccount, LoyaltyLedgerEntry]:
    customer = await fresh_customer(info, outcome["customer_id"])
    rows = await queries.ledger_entries_by_id(info.context.reader, [outcome["entry_id"]])
    account = customer.loyalty()
    if account is None or not rows:
        raise LookupError("loyalty entry vanished after a committed mutation")
    return customer, account, LoyaltyLedgerEntry.from_row(rows[0])


@strawberry.type
class LoyaltyMutations:
    @strawberry.mutation(
        description="Add or remove points with a reason (support). Never below zero unless "
        "the program allows it. The first adjustment opens an account if there is none.",
        extensions=[requires("loyalty:write")],
    )
    async def adjust_loyalty_points(
        self, info: Info, input: AdjustLoyaltyPointsInput
    ) -> AdjustLoyaltyPointsPayload:
        if invalid := _invalid_points(input.points, positive=False):
            return invalid
        outcome = await _post(
            info,
            operation="adjustLoyaltyPoints",
            customer_global_id=input.customer_id,
            points=input.points,
            kind="ADJUST",
            reason=input.reason,
            key=input.idempotency_key,
            create_account=True,
        )
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        customer, account, entry = await _account_and_entry(info, outcome)
        return AdjustLoyaltyPointsSuccess(customer=customer, account=account, entry=entry)

    @strawberry.mutation(
        description="Spend points. Never below zero unless the program allows it.",
        extensions=[requires("loyalty:write")],
    )
    async def redeem_points(self, info: Info, input: RedeemPointsInput) -> RedeemPointsPayload:
        if invalid := _invalid_points(input.points, positive=True):
            return invalid
        outcome = await _post(
            info,
            operation="redeemPoints",
            customer_global_id=input.customer_id,
            points=-input.points,
            kind="REDEEM",
            reason=input.reason,
            key=input.idempotency_key,
            create_account=False,
        )
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        customer, account, entry = await _account_and_entry(info, outcome)
        return RedeemPointsSuccess(customer=customer, account=account, entry=entry)
