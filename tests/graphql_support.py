"""Helpers to run GraphQL documents in tests: over HTTP (the real app) or in-process.

Other test modules reuse these: ``post_graphql`` for end-to-end checks through the app,
``execute`` for resolver-level checks with a chosen viewer, ``count_statements`` to pin SQL
round trips, ``global_id`` to build ids the way the API shows them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.viewer import DEVELOPMENT_ADMIN, Viewer
from readmodel.hub import InProcessHub
from resolvers.context import Context
from resolvers.node import to_global_id
from resolvers.schema import schema


def global_id(type_name: str, db_id: int) -> str:
    return str(to_global_id(type_name, db_id))


async def post_graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """POST a document to /graphql; the HTTP status must be ``status``; returns the JSON body.

    (A document that fails validation, or variables that do not coerce, answer 400.)
    """
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def execute(
    engine: AsyncEngine,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    viewer: Viewer = DEVELOPMENT_ADMIN,
) -> dict[str, Any]:
    """Run a document in-process as ``viewer``; returns ``{"data": ..., "errors": [...]}``."""
    context = Context(engine=engine, hub=InProcessHub(), viewer=viewer)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return body


async def data_of(
    engine: AsyncEngine,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    viewer: Viewer = DEVELOPMENT_ADMIN,
) -> dict[str, Any]:
    """Like ``execute``, but the document must succeed without errors; returns ``data``."""
    body = await execute(engine, query, variables, viewer=viewer)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@contextlib.contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[StatementLog]:
    """Record every SQL statement ``engine`` sends while the block runs."""
    log = StatementLog()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        log.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
