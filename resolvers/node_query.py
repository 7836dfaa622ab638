"""``node(id:)``: any object by its global id; null when unknown, foreign or not visible."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from resolvers.context import Info
from resolvers.customers.queries import customer_by_db_id
from resolvers.interactions.types import Interaction
from resolvers.node import Node, from_global_id
from resolvers.orders.queries import order_by_db_id
from resolvers.permissions import requires_any
from resolvers.stores.types import MenuItem, Store


async def _store(info: Info, db_id: int) -> Node | None:
    row = await info.context.loaders.store_by_id.load(db_id)
    return None if row is None else Store.from_row(row)


async def _menu_item(info: Info, db_id: int) -> Node | None:
    row = await info.context.loaders.menu_item_by_id.load(db_id)
    return None if row is None else MenuItem.from_row(row, info.context.locale)


async def _interaction(info: Info, db_id: int) -> Node | None:
    row = await info.context.loaders.interaction_by_id.load(db_id)
    return None if row is None else Interaction.from_row(row)


NODE_FETCHERS: dict[str, Callable[[Info, int], Awaitable[Node | None]]] = {
    "Customer": customer_by_db_id,
    "Order": order_by_db_id,
    "Store": _store,
    "MenuItem": _menu_item,
    "Interaction": _interaction,
}


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id; null if unknown or not visible.",
        extensions=[requires_any("customers:read", "orders:read")],
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        decoded = from_global_id(id)
        if decoded is None:
            return None
        fetch = NODE_FETCHERS.get(decoded[0])
        return None if fetch is None else await fetch(info, decoded[1])
