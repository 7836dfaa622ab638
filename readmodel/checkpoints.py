"""Import checkpoints: how far ``guestgraph import`` got through a file (by row number)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel.tables import import_checkpoints


async def position(conn: AsyncConnection, file_key: str) -> int:
    found = (
        await conn.execute(
            select(import_checkpoints.c.position).where(import_checkpoints.c.file_key == file_key)
        )
    ).scalar_one_or_none()
    return int(found or 0)


async def advance(conn: AsyncConnection, file_key: str, kind: str, row: int) -> None:
    """Record every row up to ``row`` as done, in the caller's transaction (with those rows'
    effects). The position never moves back: batches written side by side may commit out of
    order, each recording how far the file is done as it sees it."""
    stmt = pg_insert(import_checkpoints).values(
        file_key=file_key, kind=kind, position=row, rows_done=row
    )
    furthest = func.greatest(import_checkpoints.c.position, stmt.excluded.position)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["file_key"],
            set_={"position": furthest, "rows_done": furthest, "updated_at": func.now()},
        )
    )


async def reset(conn: AsyncConnection, file_key: str) -> None:
    """Forget how far an earlier run got (``guestgraph import --restart``)."""
    await conn.execute(delete(import_checkpoints).where(import_checkpoints.c.file_key == file_key))
