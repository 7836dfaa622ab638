"""Run a mutation's effect at most once per idempotency key.

Same key + same input → the first result (replayed from ``mutation_idempotency``); same key +
different input → ``IdempotencyKeyReused``. Keys are scoped to the caller and the operation.
Failures (``Rejected``) roll back and are not remembered: a retry is evaluated afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from readmodel import commands
from resolvers.context import Info
from resolvers.errors import IdempotencyKeyReused, InvalidInput, Rejected, UserError

MAX_KEY_LENGTH = 200

Effect = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_key(key: str) -> None:
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Rejected(
            InvalidInput(
                field="idempotencyKey",
                message=f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} characters",
            )
        )


async def in_transaction(info: Info, effect: Effect) -> dict[str, Any] | UserError:
    """Run ``effect`` in one transaction; a ``Rejected`` rolls back and becomes its error."""
    try:
        async with info.context.engine.begin() as conn:
            return await effect(conn)
    except Rejected as rejected:
        return rejected.error


async def run_once(
    info: Info, *, operation: str, key: str, request: dict[str, Any], effect: Effect
) -> dict[str, Any] | UserError:
    """``effect``'s result, or the stored first result for this key (see the module doc)."""
    try:
        check_key(key)
    except Rejected as rejected:
        return rejected.error
    scoped_key = f"{info.context.viewer.subject}:{operation}:{key}"
    fingerprint = request_hash(request)

    async def once(conn: AsyncConnection) -> dict[str, Any]:
        stored = await commands.recall_idempotent(conn, scoped_key, operation)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise Rejected(
                    IdempotencyKeyReused(
                        idempotency_key=key,
                        message="this idempotencyKey was used with a different input",
                    )
                )
            return {**stored.response, "replayed": True}
        response = await effect(conn)
        await commands.remember_idempotent(conn, scoped_key, operation, fingerprint, response)
        return response

    return await in_transaction(info, once)


def ledger_key(info: Info, operation: str, key: str) -> str:
    """The loyalty ledger's own idempotency key for an API request's key."""
    return f"gql:{info.context.viewer.subject}:{operation}:{key}"
