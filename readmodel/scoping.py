"""Row scoping: which rows a caller's read queries may load, expressed as SQL conditions.

A partner's store ids and a customer's own id travel into the ``WHERE`` clause of every read,
so a row outside the caller's scope is never loaded (and ``node(id:)`` of a foreign object
finds nothing). Also: the look-ups the auth layer needs to turn token claims into a scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import Source
from domain.viewer import Role, Viewer
from readmodel.identity import canonical_customer_id
from readmodel.tables import customers, orders, source_records, stores


@dataclass(frozen=True)
class RowScope:
    """``store_ids`` None = every store; ``customer_id`` set = only that person's rows;
    ``nothing`` = an anonymous or unresolved caller: no customer or order rows at all."""

    store_ids: frozenset[int] | None = None
    customer_id: int | None = None
    nothing: bool = False

    @property
    def is_unrestricted(self) -> bool:
        return self.store_ids is None and self.customer_id is None and not self.nothing


EVERYTHING = RowScope()
NOTHING = RowScope(nothing=True)


def row_scope(viewer: Viewer) -> RowScope:
    """The rows ``viewer`` may read."""
    if viewer.role is Role.ANONYMOUS:
        return NOTHING
    if viewer.role is Role.CUSTOMER:
        if viewer.customer_id is None:
            return NOTHING
        return RowScope(customer_id=viewer.customer_id)
    if viewer.role is Role.PARTNER and viewer.store_ids is None:
        return NOTHING  # a partner without a store list sees no store, never every store
    return RowScope(store_ids=viewer.store_ids)


def orders_condition(scope: RowScope) -> ColumnElement[bool]:
    """``WHERE`` condition on ``orders`` for this scope."""
    if scope.nothing:
        return false()
    conditions: list[ColumnElement[bool]] = []
    if scope.store_ids is not None:
        conditions.append(orders.c.store_id.in_(sorted(scope.store_ids)))
    if scope.customer_id is not None:
        conditions.append(orders.c.customer_id == scope.customer_id)
    return and_(true(), *conditions)


def customers_condition(scope: RowScope) -> ColumnElement[bool]:
    """``WHERE`` condition on ``customers``: a partner sees the people who ordered at its
    stores; a customer sees only itself."""
    if scope.nothing:
        return false()
    conditions: list[ColumnElement[bool]] = []
    if scope.customer_id is not None:
        conditions.append(customers.c.id == scope.customer_id)
    if scope.store_ids is not None:
        conditions.append(
            exists().where(
                orders.c.customer_id == customers.c.id,
                orders.c.store_id.in_(sorted(scope.store_ids)),
            )
        )
    return and_(true(), *conditions)


def stores_condition(scope: RowScope) -> ColumnElement[bool]:
    """``WHERE`` condition on ``stores`` (customers see every store: it is public)."""
    if scope.store_ids is None:
        return true()
    return stores.c.id.in_(sorted(scope.store_ids))


def _parse_store_ref(ref: object) -> tuple[int | None, tuple[str, str] | None, str | None]:
    """(api id, (source, external id), bare external id) — exactly one is set."""
    if isinstance(ref, bool):
        return None, None, None
    if isinstance(ref, int):
        return ref, None, None
    if not isinstance(ref, str) or not ref or len(ref) > 200:
        return None, None, None
    if ref.isascii() and ref.isdigit():
        return int(ref), None, None
    source, sep, external = ref.partition(":")
    if sep and source.upper() in {s.value for s in Source} and external:
        return None, (source.upper(), external), None
    return None, None, ref


async def resolve_store_refs(engine: AsyncEngine, refs: Iterable[object]) -> frozenset[int]:
    """Store ids for a token's ``stores`` claim: API ids, ``SOURCE:external_id`` or bare
    external ids. Unknown references are dropped (a partner never gains a store by typo)."""
    ids: set[int] = set()
    pairs: set[tuple[str, str]] = set()
    externals: set[str] = set()
    for ref in refs:
        api_id, pair, external = _parse_store_ref(ref)
        if api_id is not None:
            ids.add(api_id)
        elif pair is not None:
            pairs.add(pair)
        elif external is not None:
            externals.add(external)
    conditions: list[ColumnElement[bool]] = []
    if ids:
        conditions.append(stores.c.id.in_(sorted(ids)))
    if pairs:
        conditions.append(tuple_(stores.c.source, stores.c.external_id).in_(sorted(pairs)))
    if externals:
        conditions.append(stores.c.external_id.in_(sorted(externals)))
    if not conditions:
        return frozenset()
    async with engine.connect() as conn:
        rows = await conn.execute(select(stores.c.id).where(or_(*conditions)))
        return frozenset(row.id for row in rows)


async def customer_for_source_identity(
    engine: AsyncEngine, source: str, external_id: str
) -> int | None:
    """The golden customer behind one source record (following merges), or None."""
    async with engine.connect() as conn:
        customer_id = await conn.scalar(
            select(source_records.c.customer_id).where(
                source_records.c.source == source,
                source_records.c.external_id == external_id,
                source_records.c.deleted_at.is_(None),
            )
        )
        if customer_id is None:
            return None
        return await canonical_customer_id(conn, customer_id)
