"""The events live subscriptions deliver, built from change-feed rows.

Payload fields read here (written by ingestion and mutations through ``append_changes``):

- ``order.status_changed``: ``status``, ``previous_status`` (or null), ``at`` (ISO 8601);
- ``loyalty.changed``: ``points`` (signed change), ``balance``, ``reason``, ``at``;
- ``interaction.recorded``: ``interaction_id``, ``channel``, ``kind``, ``subject``, ``at``.

A row without ``at`` is stamped with the time the event is built.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError

from domain.model import OrderStatus as DomainOrderStatus
from readmodel.changefeed import FeedRow
from resolvers.context import Info
from resolvers.enums import OrderStatus
from resolvers.live.ids import to_global_id
from resolvers.orders.types import Order


def _at(payload: dict[str, Any]) -> datetime:
    raw = payload.get("at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _status(value: object) -> DomainOrderStatus | None:
    try:
        return DomainOrderStatus(str(value)) if value is not None else None
    except ValueError:
        return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@strawberry.type(description="An order moved to a new status.")
class OrderStatusEvent:
    cursor: str = strawberry.field(description="change-feed sequence; resume with `after`")
    order_id: strawberry.ID
    store_id: strawberry.ID
    customer_id: strawberry.ID | None
    previous_status: OrderStatus | None
    status: OrderStatus = strawberry.field(description="the status the order entered")
    at: datetime
    db_order_id: strawberry.Private[int]

    @strawberry.field(description="The order as it is now (fresh for every event).")
    async def order(self, info: Info) -> Order:
        row = await info.context.loaders.order_by_id.load(self.db_order_id)
        if row is None:
            raise GraphQLError("order not found")
        return Order.from_row(row, info.context.locale)

    @classmethod
    def from_row(cls, row: FeedRow) -> OrderStatusEvent | None:
        status = _status(row.payload.get("status"))
        if status is None or row.order_id is None or row.store_id is None:
            return None
        return cls(
            cursor=str(row.seq),
            order_id=to_global_id("Order", row.order_id),
            store_id=to_global_id("Store", row.store_id),
            customer_id=(
                None if row.customer_id is None else to_global_id("Customer", row.customer_id)
            ),
            previous_status=_status(row.payload.get("previous_status")),
            status=status,
            at=_at(row.payload),
            db_order_id=row.order_id,
        )


@strawberry.type(description="A customer's loyalty balance changed.")
class LoyaltyChangeEvent:
    cursor: str
    customer_id: strawberry.ID
    points: int | None = strawberry.field(description="signed change in points")
    balance: int | None
    reason: str | None
    at: datetime


@strawberry.type(description="An interaction (call, chat, note...) was recorded.")
class InteractionEvent:
    cursor: str
    customer_id: strawberry.ID
    interaction_id: strawberry.ID | None
    channel: str | None
    kind: str | None
    subject: str | None
    at: datetime


CustomerActivityEvent = Annotated[
    OrderStatusEvent | LoyaltyChangeEvent | InteractionEvent,
    strawberry.union("CustomerActivityEvent"),
]


def activity_from_row(
    row: FeedRow,
) -> OrderStatusEvent | LoyaltyChangeEvent | InteractionEvent | None:
    """The event for one row of a customer's activity (None for a row it cannot show)."""
    from readmodel.changefeed import INTERACTION_RECORDED, LOYALTY_CHANGED, ORDER_STATUS_CHANGED

    if row.customer_id is None:
        return None
    customer = to_global_id("Customer", row.customer_id)
    p = row.payload
    if row.topic == ORDER_STATUS_CHANGED:
        return OrderStatusEvent.from_row(row)
    if row.topic == LOYALTY_CHANGED:
        return LoyaltyChangeEvent(
            cursor=str(row.seq),
            customer_id=customer,
            points=_int(p.get("points")),
            balance=_int(p.get("balance")),
            reason=_str(p.get("reason")),
            at=_at(p),
        )
    if row.topic == INTERACTION_RECORDED:
        interaction = _int(p.get("interaction_id"))
        return InteractionEvent(
            cursor=str(row.seq),
            customer_id=customer,
            interaction_id=None
            if interaction is None
            else to_global_id("Interaction", interaction),
            channel=_str(p.get("channel")),
            kind=_str(p.get("kind")),
            subject=_str(p.get("subject")),
            at=_at(p),
        )
    return None
