"""The enumerations of the contract: ``domain.model``'s enums, registered with strawberry.

``strawberry.enum`` marks the domain classes themselves, so resolvers use the domain
members directly (and mypy sees plain enums).
"""

from __future__ import annotations

import strawberry

from domain.model import ConsentChannel, FulfillmentType, OrderStatus, Source

strawberry.enum(Source, description="Where a fact came from.")
strawberry.enum(OrderStatus, description="guestgraph's normalized order status.")
strawberry.enum(FulfillmentType, description="How the order reaches the customer.")
strawberry.enum(
    ConsentChannel, description="A channel marketing may use, with the customer's consent."
)

__all__ = ["ConsentChannel", "FulfillmentType", "OrderStatus", "Source"]
