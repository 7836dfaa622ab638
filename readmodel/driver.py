"""Set-based statements on the driver (asyncpg) connection under a SQLAlchemy connection.

The bulk paths (``readmodel.bulk``, batched inbox rows and change-feed rows, batched identity
links) send a batch as a few statements over arrays (``unnest``) or ``COPY``. Through
SQLAlchemy, a multi-row ``VALUES`` statement is compiled anew for every batch size, which
costs more than running it; here the statement text is fixed, asyncpg prepares it once per
connection and encodes the arrays in binary.

Statements run in the caller's transaction (begun here if SQLAlchemy has not started it
yet). A database error is raised as SQLAlchemy's ``DBAPIError``, like any other statement,
so the callers' savepoint rollbacks and fallbacks work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection


class Driver:
    """The asyncpg connection of one SQLAlchemy connection, in its transaction."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows of ``sql`` (records: ``row["name"]`` or ``row[0]``)."""
        try:
            return list(await self._connection.fetch(sql, *args))
        except asyncpg.PostgresError as exc:
            raise DBAPIError(sql, None, exc) from exc

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._connection.execute(sql, *args)
        except asyncpg.PostgresError as exc:
            raise DBAPIError(sql, None, exc) from exc

    async def copy(
        self, table: str, columns: Sequence[str], records: Iterable[tuple[Any, ...]]
    ) -> None:
        """``COPY table (columns) FROM STDIN`` (binary) with ``records``."""
        try:
            await self._connection.copy_records_to_table(
                table, columns=list(columns), records=records
            )
        except asyncpg.PostgresError as exc:
            raise DBAPIError(f"COPY {table}", None, exc) from exc


async def driver(conn: AsyncConnection) -> Driver:
    """The driver connection of ``conn``, inside ``conn``'s transaction."""
    raw = await conn.get_raw_connection()
    connection = raw.driver_connection
    assert connection is not None
    if not connection.is_in_transaction():
        # SQLAlchemy begins its transaction with the first statement: start it, so what
        # runs here belongs to the caller's transaction and not to an autocommit of its own
        await conn.execute(text("SELECT 1"))
    return Driver(connection)
