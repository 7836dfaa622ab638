"""Batched reads for the GraphQL layer: SQLAlchemy Core, only the columns a type needs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.tables import stores

STORE_COLUMNS = (
    stores.c.id,
    stores.c.source,
    stores.c.external_id,
    stores.c.name,
    stores.c.timezone,
    stores.c.country,
    stores.c.currency,
)


async def all_stores(engine: AsyncEngine) -> Sequence[RowMapping]:
    async with engine.connect() as conn:
        result = await conn.execute(select(*STORE_COLUMNS).order_by(stores.c.name, stores.c.id))
        return result.mappings().all()
