"""Errors the API shows, and the masking of everything it did not expect.

Expected failures of a mutation are members of its payload union (``CustomerNotFound``,
``InvalidInput``...). Bad arguments to queries (page size, cursors, filters) raise
``UserInputError``: a GraphQL error with ``extensions.code = "BAD_USER_INPUT"``. Any other
exception is a bug: ``MaskUnexpectedErrors`` replaces it with ``Internal server error``
(``extensions: {code: INTERNAL, requestId}``) and logs it with the request id, so clients
never see internals and operators can find the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

log = logging.getLogger("guestgraph.graphql")

INTERNAL_MESSAGE = "Internal server error"


class UserInputError(GraphQLError):
    """An argument the client must fix; shown as is, with ``code: BAD_USER_INPUT``."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        extensions: dict[str, Any] = {"code": "BAD_USER_INPUT"}
        if argument is not None:
            extensions["argument"] = argument
        super().__init__(message, extensions=extensions)


def is_expected(error: GraphQLError) -> bool:
    """Syntax, validation and deliberate GraphQL errors are expected; other exceptions not."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


def _request_id(context: object) -> str | None:
    request_id = getattr(context, "request_id", None)
    return request_id if isinstance(request_id, str) else None


class MaskUnexpectedErrors(SchemaExtension):
    """Mask unexpected exceptions as ``Internal server error`` and log them with the request id."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        request_id = _request_id(self.execution_context.context)
        masked: list[GraphQLError] = []
        for error in errors:
            if is_expected(error):
                masked.append(error)
                continue
            log.error(
                "unexpected error in %s at %s (request %s)",
                self.execution_context.operation_name or "anonymous operation",
                ".".join(str(p) for p in error.path or ()),
                request_id,
                exc_info=error.original_error,
            )
            masked.append(
                GraphQLError(
                    INTERNAL_MESSAGE,
                    nodes=error.nodes,
                    source=error.source,
                    positions=error.positions,
                    path=error.path,
                    extensions={"code": "INTERNAL", "requestId": request_id},
                )
            )
        result.errors = masked  # type: ignore[union-attr]


# --- expected failures of mutations: members of each mutation's payload union -------------------


@strawberry.interface(description="An expected failure of a mutation; `message` is for people.")
class UserError:
    message: str


@strawberry.type(description="No such customer, or not one the caller may see.")
class CustomerNotFound(UserError):
    customer_id: strawberry.ID


@strawberry.type(description="An input field is invalid; fix it and retry.")
class InvalidInput(UserError):
    field: str = strawberry.field(description="The input field, as named in the schema.")


@strawberry.type(
    description="This idempotency key was already used with a different input; use a new key."
)
class IdempotencyKeyReused(UserError):
    idempotency_key: str


@strawberry.type(description="The balance is too low and the program does not allow negatives.")
class InsufficientPoints(UserError):
    balance: int
    requested: int


class Rejected(Exception):
    """Raised inside a mutation's transaction to roll it back and answer with ``error``."""

    def __init__(self, error: UserError) -> None:
        super().__init__(error.message)
        self.error = error
