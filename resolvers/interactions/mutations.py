"""``recordInteraction``: log a call, chat, email or visit against a customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel import commands, queries
from resolvers.context import Info
from resolvers.customers.mutations import (
    customer_for_update,
    fresh_customer,
    optional_text,
    text_value,
)
from resolvers.customers.types import Customer
from resolvers.errors import (
    CustomerNotFound,
    IdempotencyKeyReused,
    InvalidInput,
    Rejected,
    UserError,
)
from resolvers.idempotency import run_once
from resolvers.interactions.types import Interaction
from resolvers.node import db_id_of
from resolvers.permissions import requires

MAX_FUTURE = timedelta(minutes=5)


@strawberry.input(description="A contact with the customer to record.")
class RecordInteractionInput:
    customer_id: strawberry.ID
    channel: str = strawberry.field(description="PHONE, EMAIL, CHAT, IN_STORE, SOCIAL...")
    kind: str = strawberry.field(description="e.g. complaint, compliment, question, refund.")
    idempotency_key: str = strawberry.field(description="Retrying with it records it once.")
    subject: str | None = None
    body: str | None = None
    order_id: strawberry.ID | None = strawberry.field(
        default=None, description="The customer's order it is about."
    )
    occurred_at: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.type(description="The interaction was recorded (or had been, with this key).")
class RecordInteractionSuccess:
    interaction: Interaction
    customer: Customer


RecordInteractionPayload = Annotated[
    RecordInteractionSuccess | CustomerNotFound | InvalidInput | IdempotencyKeyReused,
    strawberry.union("RecordInteractionPayload"),
]


def _request(input: RecordInteractionInput) -> dict[str, Any]:
    return {
        "customer_id": input.customer_id,
        "channel": input.channel,
        "kind": input.kind,
        "subject": input.subject,
        "body": input.body,
        "order_id": input.order_id,
        "occurred_at": None if input.occurred_at is None else input.occurred_at.isoformat(),
    }


@strawberry.type
class InteractionMutations:
    @strawberry.mutation(
        description="Record a contact with a customer, once per key.",
        extensions=[requires("interactions:write")],
    )
    async def record_interaction(
        self, info: Info, input: RecordInteractionInput
    ) -> RecordInteractionPayload:
        async def effect(conn: AsyncConnection) -> dict[str, Any]:
            customer_id = await customer_for_update(conn, info, input.customer_id, "customerId")
            now = datetime.now(UTC)
            occurred_at = input.occurred_at or now
            if occurred_at.tzinfo is None or occurred_at > now + MAX_FUTURE:
                raise Rejected(
                    InvalidInput(field="occurredAt", message="occurredAt must not be in the future")
                )
            order_id = None
            if input.order_id is not None:
                order_id = db_id_of(input.order_id, "Order")
                if order_id is None or not await commands.order_of_customer(
                    conn, order_id, customer_id
                ):
                    raise Rejected(
                        InvalidInput(field="orderId", message="not an order of this customer")
                    )
            interaction_id = await commands.record_interaction(
                conn,
                customer_id,
                channel=text_value(input.channel, "channel", max_length=32).upper(),
                kind=text_value(input.kind, "kind", max_length=64).lower(),
                subject=optional_text(input.subject, "subject", max_length=200),
                body=optional_text(input.body, "body", max_length=10_000),
                order_id=order_id,
                occurred_at=occurred_at,
                actor=info.context.viewer.subject,
                idempotency_key=f"gql:{info.context.viewer.subject}:{input.idempotency_key}",
            )
            return {"customer_id": customer_id, "interaction_id": interaction_id}

        outcome = await run_once(
            info,
            operation="recordInteraction",
            key=input.idempotency_key,
            request=_request(input),
            effect=effect,
        )
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        rows = await queries.interactions_by_id(info.context.reader, [outcome["interaction_id"]])
        return RecordInteractionSuccess(
            interaction=Interaction.from_row(rows[0]),
            customer=await fresh_customer(info, outcome["customer_id"]),
        )
