"""``mergeCustomers`` / ``splitCustomer``: support corrects identity resolution by hand.

Both delegate to ``readmodel.identity``, which keeps the identity ledger and appends the
``customer.merged`` / ``customer.split`` change-feed rows in the mutation's transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel import identity
from resolvers.context import Info
from resolvers.customers.mutations import customer_for_update, fresh_customer, optional_text
from resolvers.customers.types import Customer
from resolvers.enums import Source
from resolvers.errors import CustomerNotFound, InvalidInput, Rejected, UserError
from resolvers.idempotency import in_transaction
from resolvers.node import to_global_id
from resolvers.permissions import requires

MAX_IDENTITIES = 100


@strawberry.input(description="Two customers that are one person; the older one survives.")
class MergeCustomersInput:
    customer_id: strawberry.ID
    other_customer_id: strawberry.ID
    reason: str | None = strawberry.field(default=None, description="Kept in the identity ledger.")
    force: bool = strawberry.field(
        default=False, description="Merge even though a split separated them (forgets it)."
    )


@strawberry.input(description="A source record, by source and its id there.")
class IdentityInput:
    source: Source
    external_id: str


@strawberry.input(description="Source records of a customer that are really someone else.")
class SplitCustomerInput:
    customer_id: strawberry.ID
    identities: list[IdentityInput] = strawberry.field(
        description="Move these records to a new customer (some must stay behind)."
    )


@strawberry.type(description="The customers are one now.")
class MergeCustomersSuccess:
    customer: Customer = strawberry.field(description="The survivor.")
    merged_customer_id: strawberry.ID = strawberry.field(
        description="The merged-away customer; its id now answers with the survivor."
    )


@strawberry.type(description="The records moved to a new customer.")
class SplitCustomerSuccess:
    customer: Customer = strawberry.field(description="The customer as it is now.")
    new_customer: Customer = strawberry.field(description="Who the moved records belong to.")


@strawberry.type(description="A person split these customers apart before.")
class CustomersSeparated(UserError):
    customer_id: strawberry.ID
    other_customer_id: strawberry.ID


MergeCustomersPayload = Annotated[
    MergeCustomersSuccess | CustomerNotFound | InvalidInput | CustomersSeparated,
    strawberry.union("MergeCustomersPayload"),
]
SplitCustomerPayload = Annotated[
    SplitCustomerSuccess | CustomerNotFound | InvalidInput,
    strawberry.union("SplitCustomerPayload"),
]


def _not_found(customer_id: int) -> Rejected:
    return Rejected(
        CustomerNotFound(
            customer_id=to_global_id("Customer", customer_id), message="customer not found"
        )
    )


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(
        description="Merge two customers into one (the older survives).",
        extensions=[requires("identity:write")],
    )
    async def merge_customers(
        self, info: Info, input: MergeCustomersInput
    ) -> MergeCustomersPayload:
        async def effect(conn: AsyncConnection) -> dict[str, Any]:
            first = await customer_for_update(conn, info, input.customer_id, "customerId")
            other = await customer_for_update(
                conn, info, input.other_customer_id, "otherCustomerId"
            )
            if first == other:
                raise Rejected(
                    InvalidInput(field="otherCustomerId", message="they are already one customer")
                )
            reason = optional_text(input.reason, "reason", max_length=500)
            actor = info.context.viewer.subject
            try:
                survivor = await identity.merge_customers(
                    conn,
                    first,
                    other,
                    actor=actor,
                    rule="manual",
                    evidence={"reason": reason} if reason else {},
                    force=input.force,
                )
            except identity.CustomerNotFound as exc:
                raise _not_found(exc.customer_id) from None
            except identity.CannotMergeWithItself:
                raise Rejected(
                    InvalidInput(field="otherCustomerId", message="they are already one customer")
                ) from None
            except identity.CustomersSeparated:
                raise Rejected(
                    CustomersSeparated(
                        customer_id=input.customer_id,
                        other_customer_id=input.other_customer_id,
                        message="these customers were split apart; pass force: true to merge",
                    )
                ) from None
            # identity appends the customer.merged change-feed row in this transaction
            return {"survivor": survivor, "merged": other if survivor == first else first}

        outcome = await in_transaction(info, effect)
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        return MergeCustomersSuccess(
            customer=await fresh_customer(info, outcome["survivor"]),
            merged_customer_id=to_global_id("Customer", outcome["merged"]),
        )

    @strawberry.mutation(
        description="Move some of a customer's source records to a new customer.",
        extensions=[requires("identity:write")],
    )
    async def split_customer(self, info: Info, input: SplitCustomerInput) -> SplitCustomerPayload:
        async def effect(conn: AsyncConnection) -> dict[str, Any]:
            customer_id = await customer_for_update(conn, info, input.customer_id, "customerId")
            if not input.identities or len(input.identities) > MAX_IDENTITIES:
                raise Rejected(
                    InvalidInput(
                        field="identities", message=f"name 1 to {MAX_IDENTITIES} identities"
                    )
                )
            records = sorted({(i.source, i.external_id) for i in input.identities})
            actor = info.context.viewer.subject
            try:
                new_id = await identity.split_customer(conn, customer_id, records, actor=actor)
            except identity.CustomerNotFound as exc:
                raise _not_found(exc.customer_id) from None
            except (
                identity.NothingToSplit,
                identity.IdentityNotFound,
                identity.CannotSplitEveryIdentity,
            ) as exc:
                raise Rejected(InvalidInput(field="identities", message=str(exc))) from None
            # identity appends the customer.split change-feed row in this transaction
            return {"customer": customer_id, "new_customer": new_id}

        outcome = await in_transaction(info, effect)
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        return SplitCustomerSuccess(
            customer=await fresh_customer(info, outcome["customer"]),
            new_customer=await fresh_customer(info, outcome["new_customer"]),
        )
