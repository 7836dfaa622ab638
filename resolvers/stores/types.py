from __future__ import annotations

from typing import Any

import strawberry

from resolvers.money import Money, money
from resolvers.node import Node, to_global_id


@strawberry.type(description="A store (location) guestgraph has seen orders from.")
class Store(Node):
    id: strawberry.ID
    name: str
    timezone: str = strawberry.field(description="IANA time zone, e.g. America/New_York")
    country: str = strawberry.field(description="ISO 3166 country code.")
    currency: str = strawberry.field(description="ISO 4217 currency the store sells in.")

    @classmethod
    def from_row(cls, row: Any) -> Store:
        return cls(
            id=to_global_id("Store", row.id),
            name=row.name,
            timezone=row.timezone,
            country=row.country,
            currency=row.currency,
        )


@strawberry.type(description="An item of a store's menu (catalog).")
class MenuItem(Node):
    id: strawberry.ID
    name: str
    description: str | None
    price: Money = strawberry.field(description="List price.")
    is_available: bool = strawberry.field(description="Whether it can be ordered now.")
    tags: list[str] = strawberry.field(description="e.g. vegan, spicy.")

    @classmethod
    def from_row(cls, row: Any, locale: str) -> MenuItem:
        return cls(
            id=to_global_id("MenuItem", row.id),
            name=row.name,
            description=row.description,
            price=money(row.price_amount, row.currency, locale),
            is_available=row.is_available,
            tags=list(row.tags),
        )

    @classmethod
    def from_line_item_row(cls, row: Any, locale: str) -> MenuItem | None:
        """The menu item that rides along on a line-item row (``menu_item_*`` columns)."""
        if row.menu_item_id is None:
            return None
        return cls(
            id=to_global_id("MenuItem", row.menu_item_id),
            name=row.menu_item_name,
            description=row.menu_item_description,
            price=money(row.menu_item_price_amount, row.menu_item_currency, locale),
            is_available=row.menu_item_is_available,
            tags=list(row.menu_item_tags),
        )
