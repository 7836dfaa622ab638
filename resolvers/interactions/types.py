"""Support interactions: calls, chats, emails and visits recorded against a customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from readmodel.queries import Window
from resolvers.context import Info
from resolvers.node import Node, to_global_id
from resolvers.orders.types import Order
from resolvers.pagination import Connection, build_connection
from resolvers.permissions import hidden_from_partners

INTERACTION_CURSOR = "interactions"
INTERACTION_KEY_TYPES = (datetime, int)


@strawberry.type(description="A contact between the customer and the business.")
class Interaction(Node):
    id: strawberry.ID
    channel: str = strawberry.field(description="PHONE, EMAIL, CHAT, IN_STORE, SOCIAL...")
    kind: str = strawberry.field(description="e.g. complaint, compliment, question, refund.")
    subject: str | None = strawberry.field(extensions=[hidden_from_partners()])
    body: str | None = strawberry.field(extensions=[hidden_from_partners()])
    actor: str = strawberry.field(description="Who recorded it.")
    occurred_at: datetime
    order_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: Any) -> Interaction:
        return cls(
            id=to_global_id("Interaction", row.id),
            channel=row.channel,
            kind=row.kind,
            subject=row.subject,
            body=row.body,
            actor=row.actor,
            occurred_at=row.occurred_at,
            order_id=row.order_id,
        )

    @strawberry.field(description="The order it is about, if any.")
    async def order(self, info: Info) -> Order | None:
        if self.order_id is None:
            return None
        row = await info.context.loaders.order_by_id.load(self.order_id)
        return None if row is None else Order.from_row(row, info.context.locale)


@strawberry.type(description="A page of interactions, newest first.")
class InteractionConnection(Connection[Interaction]):
    pass


def interaction_connection(rows: Any, window: Window, count: Any) -> InteractionConnection:
    return build_connection(
        InteractionConnection,
        rows,
        window,
        kind=INTERACTION_CURSOR,
        key_of=lambda row: (row.occurred_at, row.id),
        node_of=Interaction.from_row,
        count=count,
    )
