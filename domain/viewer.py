"""Who is asking: the authenticated caller every resolver and query is scoped by.

The auth layer (``api/auth.py``) turns a bearer token into a ``Viewer``; resolvers read
``info.context.viewer``; read-model queries take ``viewer.store_ids`` as their row scope.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPPORT = "support"
    PARTNER = "partner"
    CUSTOMER = "customer"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Viewer:
    """An authenticated (or anonymous) caller.

    ``store_ids`` is the row scope: ``None`` means every store; a frozenset (possibly
    empty) limits every read to those stores' rows. ``customer_id`` is the golden
    customer a ``customer`` token resolved to (``me``).
    """

    subject: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    store_ids: frozenset[int] | None = None
    customer_id: int | None = None
    client_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        return self.role is Role.ADMIN or scope in self.scopes

    @property
    def is_anonymous(self) -> bool:
        return self.role is Role.ANONYMOUS


ANONYMOUS = Viewer(subject="anonymous", role=Role.ANONYMOUS)

DEVELOPMENT_ADMIN = Viewer(
    subject="development",
    role=Role.ADMIN,
    scopes=frozenset(
        {
            "customers:read",
            "customers:write",
            "orders:read",
            "pii:read",
            "interactions:write",
            "loyalty:write",
            "identity:write",
            "ingest:write",
        }
    ),
)
"""The caller in development mode when no token is sent (never in production)."""
