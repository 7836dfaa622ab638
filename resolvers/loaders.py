"""Per-request DataLoaders, named by key; each batch is ONE statement on its own connection.

Created fresh for every GraphQL operation (``Context.loaders``) with the caller's row scope,
so a partner's batches carry its store ids into SQL. Loaders return read-model rows; the
types build objects from them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from readmodel import queries
from readmodel.identity import IdentityEvent
from readmodel.queries import OrderQuery, Rows, Scope, Window

Q = TypeVar("Q", bound=Hashable | None)
R = TypeVar("R")
MAX_MERGE_HOPS = 8

PageKey = tuple[int, Q, Window]
"""(parent id, filter, window): the key of a per-parent page loader."""


def _by_id(keys: Sequence[int], rows: Rows) -> list[Row[Any] | None]:
    found = {row.id: row for row in rows}
    return [found.get(key) for key in keys]


def _grouped(keys: Sequence[int], rows: Rows, attribute: str) -> list[Rows]:
    groups: dict[int, Rows] = defaultdict(list)
    for row in rows:
        groups[getattr(row, attribute)].append(row)
    return [groups.get(key, []) for key in keys]


def _paged(
    fetch: Callable[[Sequence[int], Q, Window], Awaitable[Rows]],
) -> Callable[[list[PageKey[Q]]], Awaitable[list[Rows]]]:
    """A batch function for per-parent pages: one statement per distinct (filter, window)."""

    async def load(keys: list[PageKey[Q]]) -> list[Rows]:
        parents_by_args: dict[tuple[Q, Window], list[int]] = defaultdict(list)
        for parent, query, window in keys:
            parents_by_args[(query, window)].append(parent)
        pages: dict[PageKey[Q], Rows] = {}
        for (query, window), parents in parents_by_args.items():
            unique = sorted(set(parents))
            grouped = _grouped(unique, await fetch(unique, query, window), "parent_id")
            for parent, rows in zip(unique, grouped, strict=True):
                pages[(parent, query, window)] = rows
        return [pages[key] for key in keys]

    return load


def _counted(
    fetch: Callable[[Sequence[int], Q], Awaitable[dict[int, int]]],
) -> Callable[[list[tuple[int, Q]]], Awaitable[list[int]]]:
    async def load(keys: list[tuple[int, Q]]) -> list[int]:
        parents_by_query: dict[Q, list[int]] = defaultdict(list)
        for parent, query in keys:
            parents_by_query[query].append(parent)
        counts: dict[tuple[int, Q], int] = {}
        for query, parents in parents_by_query.items():
            found = await fetch(sorted(set(parents)), query)
            for parent in parents:
                counts[(parent, query)] = found.get(parent, 0)
        return [counts[key] for key in keys]

    return load


class Loaders:
    """Every loader of one request. Attribute names say what they are keyed by."""

    def __init__(self, engine: AsyncEngine, scope: Scope) -> None:
        self.engine = engine
        self.scope = scope
        self.customer_by_id = DataLoader[int, Row[Any] | None](self._customers)
        self.order_by_id = DataLoader[int, Row[Any] | None](self._orders)
        self.store_by_id = DataLoader[int, Row[Any] | None](self._stores)
        self.menu_item_by_id = DataLoader[int, Row[Any] | None](self._menu_items)
        self.orders_by_customer_id = DataLoader[PageKey[OrderQuery], Rows](
            _paged(self._orders_of_customers)
        )
        self.order_count_by_customer_id = DataLoader[tuple[int, OrderQuery], int](
            _counted(self._order_counts)
        )
        self.line_items_by_order_id = DataLoader[int, Rows](self._line_items)
        self.status_history_by_order_id = DataLoader[int, Rows](self._status_history)
        self.ledger_by_account_id = DataLoader[PageKey[None], Rows](
            _paged(self._bind(queries.ledger_by_account_id))
        )
        self.ledger_count_by_account_id = DataLoader[tuple[int, None], int](
            _counted(self._bind(queries.ledger_counts_by_account_id))
        )
        self.interactions_by_customer_id = DataLoader[PageKey[None], Rows](
            _paged(self._bind(queries.interactions_by_customer_id))
        )
        self.interaction_count_by_customer_id = DataLoader[tuple[int, None], int](
            _counted(self._bind(queries.interaction_counts_by_customer_id))
        )
        self.interaction_by_id = DataLoader[int, Row[Any] | None](self._interactions)
        self.identity_history_by_customer_id = DataLoader[int, list[IdentityEvent]](
            self._identity_history
        )

    def _bind(self, fetch: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """``fetch`` with this request's engine as its first argument."""

        async def bound(*args: Any) -> R:
            return await fetch(self.engine, *args)

        return bound

    async def _identity_history(self, ids: list[int]) -> list[list[IdentityEvent]]:
        found = await queries.identity_history_by_customer_id(self.engine, ids)
        return [found.get(customer_id, []) for customer_id in ids]

    async def _interactions(self, ids: list[int]) -> list[Row[Any] | None]:
        rows = await queries.interactions_by_id(self.engine, ids)
        if self.scope is not None:  # visible only with a customer in scope
            customers = await self.customer_by_id.load_many([row.customer_id for row in rows])
            visible = {c.id for c in customers if c is not None}
            rows = [row for row in rows if row.customer_id in visible]
        return _by_id(ids, rows)

    async def _customers(self, ids: list[int]) -> list[Row[Any] | None]:
        """Profiles by id; a merged-away id answers with the customer it was merged into."""
        found = {row.id: row for row in await queries.customers_by_id(self.engine, ids, self.scope)}
        for _ in range(MAX_MERGE_HOPS):
            missing = {
                row.merged_into
                for row in found.values()
                if row.merged_into is not None and row.merged_into not in found
            }
            if not missing:
                break
            for row in await queries.customers_by_id(self.engine, sorted(missing), self.scope):
                found[row.id] = row

        def survivor(customer_id: int) -> Row[Any] | None:
            row = found.get(customer_id)
            for _ in range(MAX_MERGE_HOPS):
                if row is None or row.merged_into is None:
                    return row
                row = found.get(row.merged_into)
            return None

        return [survivor(customer_id) for customer_id in ids]

    async def _orders(self, ids: list[int]) -> list[Row[Any] | None]:
        return _by_id(ids, await queries.orders_by_id(self.engine, ids, self.scope))

    async def _stores(self, ids: list[int]) -> list[Row[Any] | None]:
        return _by_id(ids, await queries.stores_by_id(self.engine, ids, self.scope))

    async def _menu_items(self, ids: list[int]) -> list[Row[Any] | None]:
        return _by_id(ids, await queries.menu_items_by_id(self.engine, ids))

    async def _orders_of_customers(
        self, customer_ids: Sequence[int], query: OrderQuery, window: Window
    ) -> Rows:
        return await queries.orders_by_customer_id(
            self.engine, customer_ids, query, window, self.scope
        )

    async def _order_counts(self, customer_ids: Sequence[int], query: OrderQuery) -> dict[int, int]:
        return await queries.order_counts_by_customer_id(
            self.engine, customer_ids, query, self.scope
        )

    async def _line_items(self, order_ids: list[int]) -> list[Rows]:
        rows = await queries.line_items_by_order_id(self.engine, order_ids)
        return _grouped(order_ids, rows, "order_id")

    async def _status_history(self, order_ids: list[int]) -> list[Rows]:
        rows = await queries.status_history_by_order_id(self.engine, order_ids)
        return _grouped(order_ids, rows, "order_id")
