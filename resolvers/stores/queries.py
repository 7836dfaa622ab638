from __future__ import annotations

import strawberry

from readmodel import queries
from resolvers.context import Info
from resolvers.permissions import authenticated
from resolvers.stores.types import Store


@strawberry.type
class StoreQueries:
    @strawberry.field(
        description="Every store the caller may see, by name.", extensions=[authenticated()]
    )
    async def stores(self, info: Info) -> list[Store]:
        rows = await queries.all_stores(info.context.reader, info.context.store_scope)
        return [Store.from_row(row) for row in rows]
