"""Subscription fields: ``orderStatusChanged`` and ``customerActivity``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError

from domain.viewer import Role, Viewer
from readmodel.changefeed import INTERACTION_RECORDED, LOYALTY_CHANGED, ORDER_STATUS_CHANGED
from readmodel.hub import Interest, surviving_customer
from resolvers.context import Info
from resolvers.live.ids import from_global_id
from resolvers.live.stream import live_rows
from resolvers.live.types import (
    CustomerActivityEvent,
    InteractionEvent,
    LoyaltyChangeEvent,
    OrderStatusEvent,
    activity_from_row,
)

ACTIVITY_TOPICS = frozenset({ORDER_STATUS_CHANGED, LOYALTY_CHANGED, INTERACTION_RECORDED})


def _optional_id(value: strawberry.ID | None, type_name: str, argument: str) -> int | None:
    return None if value is None else from_global_id(value, type_name, argument=argument)


async def _person(info: Info, customer_id: int | None) -> int | None:
    """Follow merges: rows after a merge carry the survivor's id."""
    if customer_id is None:
        return None
    return await surviving_customer(info.context.engine, customer_id)


def _scoped(viewer: Viewer, interest: Interest) -> Interest:
    """The interest narrowed to what ``viewer`` may see; GraphQLError if nothing."""
    if viewer.role is Role.CUSTOMER:
        if viewer.customer_id is None or interest.customer_id not in (None, viewer.customer_id):
            raise GraphQLError("not allowed: customers may only follow their own orders")
        return Interest(
            topics=interest.topics,
            order_id=interest.order_id,
            customer_id=viewer.customer_id,
            store_id=interest.store_id,
        )
    if not viewer.has_scope("orders:read"):
        raise GraphQLError("not allowed: needs the orders:read scope")
    scope = viewer.store_ids
    if scope is not None and interest.store_id is not None and interest.store_id not in scope:
        scope = frozenset()  # a store outside the caller's scope is simply absent
    return Interest(
        topics=interest.topics,
        order_id=interest.order_id,
        customer_id=interest.customer_id,
        store_id=interest.store_id,
        store_scope=scope,
    )


@strawberry.type
class LiveSubscriptions:
    @strawberry.subscription(
        description=(
            "Every status change of the matching orders (all filters must match), in the "
            "order they happened. With `after` (an event's `cursor`), first the changes "
            "since that cursor, then live ones: no gap, no duplicate."
        )
    )
    async def order_status_changed(
        self,
        info: Info,
        order_id: strawberry.ID | None = None,
        customer_id: strawberry.ID | None = None,
        store_id: strawberry.ID | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[OrderStatusEvent, None]:
        interest = _scoped(
            info.context.viewer,
            Interest(
                topics=frozenset({ORDER_STATUS_CHANGED}),
                order_id=_optional_id(order_id, "Order", "orderId"),
                customer_id=await _person(
                    info, _optional_id(customer_id, "Customer", "customerId")
                ),
                store_id=_optional_id(store_id, "Store", "storeId"),
            ),
        )
        async for row in live_rows(info.context, interest, after):
            event = OrderStatusEvent.from_row(row)
            if event is not None:
                yield event

    @strawberry.subscription(
        description=(
            "One customer's order status changes, loyalty changes and new interactions, in "
            "order; resumable with `after` like orderStatusChanged."
        )
    )
    async def customer_activity(
        self, info: Info, customer_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[CustomerActivityEvent, None]:
        interest = _scoped(
            info.context.viewer,
            Interest(
                topics=ACTIVITY_TOPICS,
                customer_id=await _person(
                    info, from_global_id(customer_id, "Customer", argument="customerId")
                ),
            ),
        )
        async for row in live_rows(info.context, interest, after):
            event = activity_from_row(row)
            if event is not None:
                yield event


__all__ = ["InteractionEvent", "LiveSubscriptions", "LoyaltyChangeEvent", "OrderStatusEvent"]
