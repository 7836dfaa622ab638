"""Orders: ``Order``, its line items and status history, ``OrderFilter`` and connections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from domain import model
from domain.orders import is_delayed
from readmodel.queries import OrderQuery, Window
from resolvers.context import Info
from resolvers.enums import FulfillmentType, OrderStatus, Source
from resolvers.errors import UserInputError
from resolvers.money import Money, money
from resolvers.node import Node, db_id_of, to_global_id
from resolvers.pagination import Connection, build_connection, window_of
from resolvers.selection import selects
from resolvers.stores.types import MenuItem, Store

if TYPE_CHECKING:
    from resolvers.customers.types import Customer

ORDER_CURSOR = "orders"
ORDER_KEY_TYPES = (datetime, int)
MAX_FILTER_VALUES = 50


@strawberry.type(description="One line of an order's ticket.")
class LineItem:
    name: str
    quantity: float
    unit_price: Money
    total: Money
    menu_item: MenuItem | None = strawberry.field(
        description="The catalog item, when the source named one."
    )
    modifiers: list[str] = strawberry.field(description="e.g. 'extra cheese'.")

    @classmethod
    def from_row(cls, row: Any, locale: str) -> LineItem:
        return cls(
            name=row.name,
            quantity=float(row.quantity),
            unit_price=money(row.unit_price_amount, row.currency, locale),
            total=money(row.total_amount, row.currency, locale),
            menu_item=MenuItem.from_line_item_row(row, locale),
            modifiers=list(row.modifiers),
        )


@strawberry.type(description="A status the order entered, when, and who said so.")
class OrderStatusChange:
    status: OrderStatus
    at: datetime
    source: Source


@strawberry.type(description="An order placed at a store, from any source.")
class Order(Node):
    id: strawberry.ID
    source: Source
    external_id: str = strawberry.field(description="The order's id in its source.")
    status: OrderStatus
    fulfillment: FulfillmentType
    channel: str = strawberry.field(description="Where it was placed: ONLINE, IN_STORE, APP...")
    placed_at: datetime
    promised_at: datetime | None = strawberry.field(description="When it was promised ready.")
    is_delayed: bool = strawberry.field(
        description=(
            "Running late: the promised time passed and it is not READY yet, or preparation "
            "took longer than the store's usual time for the daypart by max(5 min, 50%). "
            "See docs/graphql.md."
        )
    )
    subtotal: Money
    tax: Money
    tip: Money
    discount: Money
    total: Money
    db_id: strawberry.Private[int]
    store_id: strawberry.Private[int]
    customer_id: strawberry.Private[int | None]
    prefetched_line_items: strawberry.Private[list[LineItem] | None] = None

    @classmethod
    def from_row(cls, row: Any, locale: str, now: datetime | None = None) -> Order:
        currency = row.currency
        status = model.OrderStatus(row.status)
        return cls(
            id=to_global_id("Order", row.id),
            source=model.Source(row.source),
            external_id=row.external_id,
            status=status,
            fulfillment=model.FulfillmentType(row.fulfillment),
            channel=row.channel,
            placed_at=row.placed_at,
            promised_at=row.promised_at,
            is_delayed=is_delayed(
                status=status,
                placed_at=row.placed_at,
                promised_at=row.promised_at,
                accepted_at=row.accepted_at,
                ready_at=row.ready_at,
                store_timezone=row.store_timezone,
                usual_prep_minutes=row.store_usual_prep_minutes or {},
                now=now or datetime.now(UTC),
            ),
            subtotal=money(row.subtotal_amount, currency, locale),
            tax=money(row.tax_amount, currency, locale),
            tip=money(row.tip_amount, currency, locale),
            discount=money(row.discount_amount, currency, locale),
            total=money(row.total_amount, currency, locale),
            db_id=row.id,
            store_id=row.store_id,
            customer_id=row.customer_id,
        )

    @strawberry.field(description="The store it was placed at.")
    async def store(self, info: Info) -> Store:
        row = await info.context.loaders.store_by_id.load(self.store_id)
        if row is None:
            raise LookupError(f"store {self.store_id} of order {self.db_id} is not visible")
        return Store.from_row(row)

    @strawberry.field(description="Who placed it, when known (a merged customer's survivor).")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("resolvers.customers.types")] | None:
        from resolvers.customers.types import Customer

        if self.customer_id is None:
            return None
        row = await info.context.loaders.customer_by_id.load(self.customer_id)
        return None if row is None else Customer.from_row(row)

    @strawberry.field(description="The ticket, in order.")
    def line_items(self, info: Info) -> list[LineItem]:
        if self.prefetched_line_items is not None:
            return self.prefetched_line_items
        # not prefetched: an awaitable, which graphql-core awaits (batched by the loader)
        return self._load_line_items(info)  # type: ignore[return-value]

    async def _load_line_items(self, info: Info) -> list[LineItem]:
        rows = await info.context.loaders.line_items_by_order_id.load(self.db_id)
        locale = info.context.locale
        return [LineItem.from_row(row, locale) for row in rows]

    @strawberry.field(description="Every status it went through, oldest first.")
    async def status_history(self, info: Info) -> list[OrderStatusChange]:
        rows = await info.context.loaders.status_history_by_order_id.load(self.db_id)
        return [
            OrderStatusChange(
                status=model.OrderStatus(row.status), at=row.at, source=model.Source(row.source)
            )
            for row in rows
        ]


@strawberry.type(description="A page of orders, newest first.")
class OrderConnection(Connection[Order]):
    pass


@strawberry.input(description="Narrows a list of orders; every given condition must hold.")
class OrderFilter:
    status: list[OrderStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    store_id: strawberry.ID | None = strawberry.field(default=None, description="At this store.")
    fulfillment: list[FulfillmentType] | None = strawberry.field(
        default=None, description="Any of these fulfillment types."
    )
    placed_after: datetime | None = strawberry.field(
        default=None, description="Placed at or after this time."
    )
    placed_before: datetime | None = strawberry.field(
        default=None, description="Placed before this time."
    )

    def to_query(self) -> OrderQuery:
        store_ids: tuple[int, ...] | None = None
        if self.store_id is not None:
            store_id = db_id_of(self.store_id, "Store")
            if store_id is None:
                raise UserInputError("`filter.storeId` is not a store id", argument="filter")
            store_ids = (store_id,)
        return OrderQuery(
            statuses=_values(self.status, "status"),
            store_ids=store_ids,
            fulfillments=_values(self.fulfillment, "fulfillment"),
            placed_after=self.placed_after,
            placed_before=self.placed_before,
        )


def _values(items: list[Any] | None, name: str) -> tuple[str, ...] | None:
    if items is None:
        return None
    if len(items) > MAX_FILTER_VALUES:
        raise UserInputError(f"`filter.{name}` takes at most {MAX_FILTER_VALUES} values")
    return tuple(sorted({item.value for item in items}))


def order_query(filter: OrderFilter | None) -> OrderQuery:
    return OrderQuery() if filter is None else filter.to_query()


def order_window(
    first: int | None, after: str | None, last: int | None, before: str | None
) -> Window:
    return window_of(
        ORDER_CURSOR, ORDER_KEY_TYPES, first=first, after=after, last=last, before=before
    )


async def order_connection(info: Info, rows: Any, window: Window, count: Any) -> OrderConnection:
    """The connection, with each order's line items fetched up front (one batch) when the
    client selected them: plain lists resolve much faster than one awaitable per order."""
    now = datetime.now(UTC)
    locale = info.context.locale
    connection = build_connection(
        OrderConnection,
        rows,
        window,
        kind=ORDER_CURSOR,
        key_of=lambda row: (row.placed_at, row.id),
        node_of=lambda row: Order.from_row(row, locale, now),
        count=count,
    )
    orders = [edge.node for edge in connection.edges]
    if orders and selects(info, "edges", "node", "lineItems"):
        loader = info.context.loaders.line_items_by_order_id
        pages = await loader.load_many([order.db_id for order in orders])
        for order, lines in zip(orders, pages, strict=True):
            order.prefetched_line_items = [LineItem.from_row(row, locale) for row in lines]
    return connection
