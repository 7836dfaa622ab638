"""Import checkpoints: how far ``guestgraph import`` got through a file (by row number)."""

from __future__ import annotations

from sqlalchemy import func, select
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
    """Record ``row`` as done, in the caller's transaction (with that row's effects)."""
    await conn.execute(
        pg_insert(import_checkpoints)
        .values(file_key=file_key, kind=kind, position=row, rows_done=row)
        .on_conflict_do_update(
            index_elements=["file_key"],
            set_={"position": row, "rows_done": row, "updated_at": func.now()},
        )
    )
