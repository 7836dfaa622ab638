"""Global ids as the rest of the schema shows them: base64 of ``"<Type>:<database id>"``."""

from __future__ import annotations

import base64
import binascii

import strawberry
from graphql import GraphQLError


def to_global_id(type_name: str, db_id: int) -> strawberry.ID:
    return strawberry.ID(base64.b64encode(f"{type_name}:{db_id}".encode()).decode())


def from_global_id(value: str, type_name: str, *, argument: str) -> int:
    """The database id in ``value`` (a global id of ``type_name``, or a plain number).

    Raises GraphQLError naming ``argument`` when it is neither.
    """
    if value.isdigit():
        return int(value)
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    kind, _, raw = decoded.partition(":")
    if kind == type_name and raw.isdigit():
        return int(raw)
    raise GraphQLError(f"{argument}: not a {type_name} id")
