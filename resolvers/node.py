"""Global object identification: the ``Node`` interface and opaque global ids.

A global id is ``base64url("Type:dbid")`` without padding, e.g. ``Customer:42`` →
``Q3VzdG9tZXI6NDI``. Clients must treat ids as opaque strings.
"""

from __future__ import annotations

import base64
import binascii

import strawberry


@strawberry.interface(description="An object with a global, opaque id; fetch any by `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Global, opaque id.")


def to_global_id(type_name: str, db_id: int) -> strawberry.ID:
    raw = f"{type_name}:{db_id}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def from_global_id(global_id: str) -> tuple[str, int] | None:
    """``(type name, database id)``, or None when ``global_id`` is not one of ours."""
    if not global_id or len(global_id) > 200:
        return None
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        return None
    type_name, sep, db_id = raw.partition(":")
    if not sep or not type_name or not db_id.isdigit() or len(db_id) > 18:
        return None
    return type_name, int(db_id)


def db_id_of(global_id: str, expected_type: str) -> int | None:
    """The database id behind ``global_id`` if it names an ``expected_type``, else None."""
    decoded = from_global_id(global_id)
    if decoded is None or decoded[0] != expected_type:
        return None
    return decoded[1]
