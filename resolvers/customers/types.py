"""Customers: the golden profile and everything a customer-360 view shows about it."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import strawberry

from domain import model
from resolvers.context import Info
from resolvers.enums import ConsentChannel
from resolvers.errors import UserInputError
from resolvers.identity.types import Identity, IdentityEvent
from resolvers.interactions.types import (
    INTERACTION_CURSOR,
    INTERACTION_KEY_TYPES,
    InteractionConnection,
    interaction_connection,
)
from resolvers.loyalty.types import LoyaltyAccount
from resolvers.money import Money, money
from resolvers.node import Node, to_global_id
from resolvers.orders.types import (
    OrderConnection,
    OrderFilter,
    order_connection,
    order_query,
    order_window,
)
from resolvers.pagination import MAX_PAGE_SIZE, window_of
from resolvers.permissions import hidden_from_partners, pii
from resolvers.stores.types import MenuItem

DEFAULT_CURRENCY = "USD"


@strawberry.type(description="Whether the customer agreed to marketing on one channel.")
class MarketingConsent:
    channel: ConsentChannel
    granted: bool


@strawberry.type(description="What the customer eats, avoids and likes, and marketing consent.")
class Preferences:
    dietary: list[str] = strawberry.field(description="e.g. vegetarian, halal.")
    # partners see dietary flags only: the rest is empty for them
    allergens: list[str] = strawberry.field(
        description="e.g. peanuts, gluten.", extensions=[hidden_from_partners(list)]
    )
    cuisines: list[str] = strawberry.field(
        description="Cuisines they like.", extensions=[hidden_from_partners(list)]
    )
    marketing_consent: list[MarketingConsent] = strawberry.field(
        extensions=[hidden_from_partners(list)]
    )


@strawberry.type(description="An item the customer orders often.")
class ItemAffinity:
    name: str
    quantity: float = strawberry.field(description="Units ordered in all (canceled excluded).")
    order_count: int = strawberry.field(description="Orders it appeared in.")
    menu_item_id: strawberry.Private[int | None]

    @strawberry.field(description="The catalog item, when known.")
    async def menu_item(self, info: Info) -> MenuItem | None:
        if self.menu_item_id is None:
            return None
        row = await info.context.loaders.menu_item_by_id.load(self.menu_item_id)
        return None if row is None else MenuItem.from_row(row, info.context.locale)


@strawberry.type(description="How many of the customer's orders came through one channel.")
class ChannelShare:
    channel: str
    order_count: int
    share: float = strawberry.field(description="Fraction of all orders, 0..1.")


@strawberry.type(
    description="What the customer's history says, kept current on ingest (never recomputed "
    "per query)."
)
class CustomerInsights:
    order_count: int = strawberry.field(description="Orders placed (canceled excluded).")
    total_spend: Money = strawberry.field(description="In their most used currency.")
    average_order_value: Money | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    usual_order_hour: int | None = strawberry.field(
        description="The hour (0-23, the store's local time) they order at most often."
    )
    channel_mix: list[ChannelShare] = strawberry.field(description="Most used channel first.")
    favorites: strawberry.Private[list[dict[str, Any]]]

    @strawberry.field(description="Items they order most, most first (up to 10).")
    def favorite_items(self, first: int = 3) -> list[ItemAffinity]:
        if first < 0 or first > MAX_PAGE_SIZE:
            raise UserInputError(f"`first` must be between 0 and {MAX_PAGE_SIZE}", argument="first")
        return [
            ItemAffinity(
                name=item.get("name") or "",
                quantity=float(item.get("quantity") or 0),
                order_count=int(item.get("orders") or 0),
                menu_item_id=item.get("menu_item_id"),
            )
            for item in self.favorites[:first]
        ]

    @classmethod
    def from_row(cls, row: Any, locale: str) -> CustomerInsights:
        count = row.order_count or 0
        spend = row.total_spend_amount or 0
        currency = row.spend_currency or DEFAULT_CURRENCY
        average = None
        if count:
            minor = (Decimal(spend) / count).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
            average = money(int(minor), currency, locale)
        mix = row.channel_mix or {}
        total = sum(mix.values()) or 1
        return cls(
            order_count=count,
            total_spend=money(spend, currency, locale),
            average_order_value=average,
            first_order_at=row.first_order_at,
            last_order_at=row.last_order_at,
            usual_order_hour=row.usual_order_hour,
            channel_mix=[
                ChannelShare(channel=channel, order_count=n, share=round(n / total, 4))
                for channel, n in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            favorites=list(row.favorite_items or []),
        )


@strawberry.type(description="A person: every source record resolved into one golden profile.")
class Customer(Node):
    id: strawberry.ID
    display_name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None = strawberry.field(
        description="Masked unless the caller holds pii:read.", extensions=[pii("email")]
    )
    phone: str | None = strawberry.field(
        description="E.164; masked unless pii:read.", extensions=[pii("phone")]
    )
    created_at: datetime
    db_id: strawberry.Private[int]
    row: strawberry.Private[Any]

    @classmethod
    def from_row(cls, row: Any) -> Customer:
        return cls(
            id=to_global_id("Customer", row.id),
            display_name=row.display_name,
            given_name=row.given_name,
            family_name=row.family_name,
            email=row.email,
            phone=row.phone,
            created_at=row.created_at,
            db_id=row.id,
            row=row,
        )

    @strawberry.field(description="Every source record merged into this person.")
    def identities(self) -> list[Identity]:
        return [Identity.from_json(item) for item in self.row.identities or []]

    @strawberry.field(description="Dietary needs, allergens, cuisines and marketing consent.")
    def preferences(self) -> Preferences:
        row = self.row
        consents = row.consents or {}
        return Preferences(
            dietary=list(row.dietary or []),
            allergens=list(row.allergens or []),
            cuisines=list(row.cuisines or []),
            marketing_consent=[
                MarketingConsent(channel=model.ConsentChannel(channel), granted=bool(granted))
                for channel, granted in sorted(consents.items())
            ],
        )

    @strawberry.field(description="Their orders, newest first.")
    async def orders(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: OrderFilter | None = None,
    ) -> OrderConnection:
        window = order_window(first, after, last, before)
        query = order_query(filter)
        loaders = info.context.loaders
        rows = await loaders.orders_by_customer_id.load((self.db_id, query, window))

        async def count() -> int:
            return await loaders.order_count_by_customer_id.load((self.db_id, query))

        return await order_connection(info, rows, window, count)

    @strawberry.field(description="Their loyalty account (the primary one), if any.")
    def loyalty(self) -> LoyaltyAccount | None:
        row = self.row
        if row.loyalty_account_id is None:
            return None
        return LoyaltyAccount(
            program=row.loyalty_program,
            balance=row.loyalty_balance,
            lifetime_points=row.loyalty_lifetime_points,
            tier=row.loyalty_tier,
            account_id=row.loyalty_account_id,
        )

    @strawberry.field(description="Support interactions, newest first.")
    async def interactions(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> InteractionConnection:
        window = window_of(INTERACTION_CURSOR, INTERACTION_KEY_TYPES, first=first, after=after)
        loaders = info.context.loaders
        rows = await loaders.interactions_by_customer_id.load((self.db_id, None, window))

        async def count() -> int:
            return int(await loaders.interaction_count_by_customer_id.load((self.db_id, None)))

        return interaction_connection(rows, window, count)

    @strawberry.field(description="Order count, spend, favorites, usual hour and channel mix.")
    def insights(self, info: Info) -> CustomerInsights:
        return CustomerInsights.from_row(self.row, info.context.locale)

    @strawberry.field(
        description="What identity resolution did to this customer (links, merges, splits), "
        "newest first."
    )
    async def identity_history(self, info: Info, first: int = 20) -> list[IdentityEvent]:
        if first < 0 or first > MAX_PAGE_SIZE:
            raise UserInputError(f"`first` must be between 0 and {MAX_PAGE_SIZE}", argument="first")
        events = await info.context.loaders.identity_history_by_customer_id.load(self.db_id)
        return [
            IdentityEvent.from_event(event) for event in reversed(events[-first:] if first else [])
        ]
