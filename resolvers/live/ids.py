"""Ids in subscription arguments: the schema's global ids (``resolvers.node``) or plain numbers."""

from __future__ import annotations

from graphql import GraphQLError

from resolvers.node import db_id_of, to_global_id

__all__ = ["from_global_id", "to_global_id"]


def from_global_id(value: str, type_name: str, *, argument: str) -> int:
    """The database id in ``value`` (a global id of ``type_name``, or a plain number).

    Raises GraphQLError naming ``argument`` when it is neither.
    """
    if value.isdigit() and len(value) <= 18:
        return int(value)
    db_id = db_id_of(value, type_name)
    if db_id is None:
        raise GraphQLError(f"{argument}: not a {type_name} id")
    return db_id
