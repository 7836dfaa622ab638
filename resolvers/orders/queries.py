from __future__ import annotations

import strawberry

from readmodel import queries
from resolvers.context import Info
from resolvers.enums import Source
from resolvers.node import db_id_of
from resolvers.orders.types import (
    Order,
    OrderConnection,
    OrderFilter,
    order_connection,
    order_query,
    order_window,
)
from resolvers.permissions import requires

MAX_EXTERNAL_ID_LENGTH = 255


async def order_by_db_id(info: Info, order_id: int) -> Order | None:
    row = await info.context.loaders.order_by_id.load(order_id)
    return None if row is None else Order.from_row(row, info.context.locale)


@strawberry.type
class OrderQueries:
    @strawberry.field(
        description="An order by its global id; null if unknown or not visible.",
        extensions=[requires("orders:read")],
    )
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        order_id = db_id_of(id, "Order")
        return None if order_id is None else await order_by_db_id(info, order_id)

    @strawberry.field(
        description="An order by its id in its source system.",
        extensions=[requires("orders:read")],
    )
    async def order_by_external_id(
        self, info: Info, source: Source, external_id: str
    ) -> Order | None:
        if len(external_id) > MAX_EXTERNAL_ID_LENGTH:
            return None
        order_id = await queries.order_id_by_external_id(
            info.context.reader, source.value, external_id, info.context.store_scope
        )
        return None if order_id is None else await order_by_db_id(info, order_id)

    @strawberry.field(
        description="Every order the caller may see, newest first.",
        extensions=[requires("orders:read")],
    )
    async def orders(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: OrderFilter | None = None,
    ) -> OrderConnection:
        window = order_window(first, after, last, before)
        query = order_query(filter)
        engine, scope = info.context.reader, info.context.store_scope
        rows = await queries.order_page(engine, query, window, scope)

        async def count() -> int:
            return await queries.order_count(engine, query, scope)

        return await order_connection(info, rows, window, count)
