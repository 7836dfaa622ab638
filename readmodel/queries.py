"""Batched reads for the GraphQL layer: SQLAlchemy Core, only the columns a type needs.

Every function here is one SQL statement on a short connection of its own (sibling GraphQL
fields resolve concurrently, and one connection must not run two statements at once).
Each type's columns, filters and row-scope predicates are declared once, here, so a later
compiled path (one SQL statement per known operation) can reuse them.

``scope`` is the caller's row scope (``Viewer.store_ids``): ``None`` means every store; a
set limits every read to rows of those stores, in SQL. A customer is in scope when they
have ordered at one of the stores (``customer_traits.store_ids``).

Per-parent pages ("each customer's newest 5 orders") are one statement: the parent ids are
unnested and each parent's rows come from a ``LATERAL`` subquery ordered by the index, so a
customer with 500 orders costs the same 6 index entries as one with 6 (a ``ROW_NUMBER()``
window would read all 500).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    Text,
    and_,
    bindparam,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import BigInteger, NullType

from readmodel import identity
from readmodel.tables import (
    customer_traits,
    customers,
    identifiers,
    interactions,
    loyalty_accounts,
    loyalty_ledger,
    marketing_consents,
    menu_items,
    order_line_items,
    order_status_history,
    orders,
    preferences,
    source_records,
    stores,
)

Scope = frozenset[int] | None
Rows = list[Row[Any]]


async def _fetch(
    engine: AsyncEngine, stmt: Select[Any], params: dict[str, Any] | None = None
) -> Rows:
    async with engine.connect() as conn:
        return list((await conn.execute(stmt, params)).all())


async def _scalar_int(engine: AsyncEngine, stmt: Select[Any]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


def _as_driver_returns(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` as asyncpg decodes it: a text[] is already a list of str, and SQLAlchemy's
    ARRAY result processing would walk every element again (~30 µs a row)."""
    return type_coerce(column, NullType()).label(column.key)


def _ids(values: Sequence[int]) -> ColumnElement[Any]:
    return literal(list(values), ARRAY(BigInteger))


def _keys_table(ids: Sequence[int], name: str) -> Any:
    """``unnest(:ids) AS k(key)``: the parents of a per-parent page."""
    return func.unnest(_ids(ids)).table_valued("key").render_derived(name=name)


# --- keyset windows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One keyset page: up to ``limit`` rows after ``after`` and before ``before``.

    Keys are the values of the sort columns of a row (see each query). ``backward`` takes
    the rows nearest ``before`` (Relay's ``last``). Queries return up to ``limit + 1`` rows,
    nearest the cursor first (a backward window comes in reverse connection order), so the
    caller can tell whether there is another page.
    """

    limit: int
    after: tuple[Any, ...] | None = None
    before: tuple[Any, ...] | None = None
    backward: bool = False


def _windowed(
    stmt: Select[Any], keys: Sequence[ColumnElement[Any]], window: Window, *, descending: bool
) -> Select[Any]:
    key = tuple_(*keys) if len(keys) > 1 else keys[0]

    def bound(values: tuple[Any, ...]) -> ColumnElement[Any]:
        return tuple_(*(literal(v) for v in values)) if len(keys) > 1 else literal(values[0])

    if window.after is not None:
        after = bound(window.after)
        stmt = stmt.where(key < after if descending else key > after)
    if window.before is not None:
        before = bound(window.before)
        stmt = stmt.where(key > before if descending else key < before)
    reverse = descending != window.backward
    order = [k.desc() if reverse else k.asc() for k in keys]
    return stmt.order_by(*order).limit(window.limit + 1)


# --- stores and menu ------------------------------------------------------------------------

STORE_COLUMNS = (
    stores.c.id,
    stores.c.source,
    stores.c.external_id,
    stores.c.name,
    stores.c.timezone,
    stores.c.country,
    stores.c.currency,
)


def _store_scope(scope: Scope) -> ColumnElement[bool]:
    return true() if scope is None else stores.c.id == func.any(_ids(sorted(scope)))


async def all_stores(engine: AsyncEngine, scope: Scope = None) -> Rows:
    stmt = select(*STORE_COLUMNS).where(_store_scope(scope)).order_by(stores.c.name, stores.c.id)
    return await _fetch(engine, stmt)


async def stores_by_id(engine: AsyncEngine, ids: Sequence[int], scope: Scope) -> Rows:
    stmt = select(*STORE_COLUMNS).where(stores.c.id == func.any(_ids(ids)), _store_scope(scope))
    return await _fetch(engine, stmt)


MENU_ITEM_COLUMNS = (
    menu_items.c.id,
    menu_items.c.name,
    menu_items.c.description,
    menu_items.c.price_amount,
    menu_items.c.currency,
    menu_items.c.is_available,
    menu_items.c.tags,
)


async def menu_items_by_id(engine: AsyncEngine, ids: Sequence[int]) -> Rows:
    stmt = select(*MENU_ITEM_COLUMNS).where(menu_items.c.id == func.any(_ids(ids)))
    return await _fetch(engine, stmt)


# --- customers ------------------------------------------------------------------------------

_primary_account = (
    select(
        loyalty_accounts.c.id,
        loyalty_accounts.c.program,
        loyalty_accounts.c.balance,
        loyalty_accounts.c.lifetime_points,
        loyalty_accounts.c.tier,
        loyalty_accounts.c.allow_negative,
    )
    .where(loyalty_accounts.c.customer_id == customers.c.id)
    .order_by(loyalty_accounts.c.lifetime_points.desc(), loyalty_accounts.c.id)
    .limit(1)
    .lateral("la")
)

_identities = type_coerce(
    select(
        func.coalesce(
            func.jsonb_agg(
                aggregate_order_by(
                    func.jsonb_build_object(
                        "source",
                        source_records.c.source,
                        "external_id",
                        source_records.c.external_id,
                        "matched_by",
                        source_records.c.matched_by,
                        "linked_at",
                        source_records.c.linked_at,
                    ),
                    source_records.c.linked_at,
                    source_records.c.id,
                )
            ),
            text("'[]'::jsonb"),
        )
    )
    .where(source_records.c.customer_id == customers.c.id, source_records.c.deleted_at.is_(None))
    .scalar_subquery(),
    JSONB,
)

_consents = type_coerce(
    select(
        func.coalesce(
            func.jsonb_object_agg(marketing_consents.c.channel, marketing_consents.c.granted),
            text("'{}'::jsonb"),
        )
    )
    .where(marketing_consents.c.customer_id == customers.c.id)
    .scalar_subquery(),
    JSONB,
)

# A customer's profile with everything that is one-per-customer (traits, primary loyalty
# account, preferences) and its identities: one statement answers profile, insights,
# loyalty, preferences and identities of a whole batch of customers.
CUSTOMER_COLUMNS: tuple[ColumnElement[Any], ...] = (
    customers.c.id,
    customers.c.display_name,
    customers.c.given_name,
    customers.c.family_name,
    customers.c.email,
    customers.c.phone,
    customers.c.created_at,
    customers.c.merged_into,
    customer_traits.c.order_count,
    customer_traits.c.total_spend_amount,
    customer_traits.c.currency.label("spend_currency"),
    customer_traits.c.first_order_at,
    customer_traits.c.last_order_at,
    customer_traits.c.favorite_items,
    customer_traits.c.usual_order_hour,
    customer_traits.c.channel_mix,
    _primary_account.c.id.label("loyalty_account_id"),
    _primary_account.c.program.label("loyalty_program"),
    _primary_account.c.balance.label("loyalty_balance"),
    _primary_account.c.lifetime_points.label("loyalty_lifetime_points"),
    _primary_account.c.tier.label("loyalty_tier"),
    preferences.c.dietary,
    preferences.c.allergens,
    preferences.c.cuisines,
    _consents.label("consents"),
    _identities.label("identities"),
)

_CUSTOMER_FROM = (
    customers.outerjoin(customer_traits, customer_traits.c.customer_id == customers.c.id)
    .outerjoin(preferences, preferences.c.customer_id == customers.c.id)
    .outerjoin(_primary_account, true())
)


def customer_scope(scope: Scope) -> ColumnElement[bool]:
    """A customer is visible to a store-scoped caller once they ordered at one of its stores."""
    if scope is None:
        return true()
    if not scope:
        return false()
    overlaps: ColumnElement[bool] = customer_traits.c.store_ids.overlap(_ids(sorted(scope)))
    return overlaps


def _customer_select() -> Select[Any]:
    return select(*CUSTOMER_COLUMNS).select_from(_CUSTOMER_FROM)


# The hottest statements are built once per shape, with bound parameters: building a
# statement and its cache key costs more Python time than PostgreSQL spends answering it.
_ID_LIST = bindparam("ids", type_=ARRAY(BigInteger))
_SCOPE_LIST = bindparam("scope", type_=ARRAY(BigInteger))


def _scope_kind(scope: Scope) -> str:
    return "all" if scope is None else ("some" if scope else "none")


def _scope_params(scope: Scope) -> dict[str, Any]:
    return {"scope": sorted(scope)} if scope else {}


@functools.cache
def _customers_by_id_statement(scope_kind: str) -> Select[Any]:
    visible: ColumnElement[bool] = {
        "all": true(),
        "none": false(),
        "some": customer_traits.c.store_ids.overlap(_SCOPE_LIST),
    }[scope_kind]
    return _customer_select().where(customers.c.id == func.any(_ID_LIST), visible)


async def customers_by_id(engine: AsyncEngine, ids: Sequence[int], scope: Scope) -> Rows:
    """Profiles of ``ids`` (merged-away customers included: see ``merged_into``)."""
    stmt = _customers_by_id_statement(_scope_kind(scope))
    return await _fetch(engine, stmt, {"ids": list(ids), **_scope_params(scope)})


@dataclass(frozen=True)
class CustomerQuery:
    """The ``customers(filter:)`` of the API. ``search`` is already lower-cased."""

    visited_store_id: int | None = None
    last_order_after: datetime | None = None
    last_order_before: datetime | None = None
    search: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _customer_filter(query: CustomerQuery, scope: Scope) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [customers.c.merged_into.is_(None), customer_scope(scope)]
    if query.visited_store_id is not None:
        where.append(customer_traits.c.store_ids.contains(_ids([query.visited_store_id])))
    if query.last_order_after is not None:
        where.append(customer_traits.c.last_order_at >= query.last_order_after)
    if query.last_order_before is not None:
        where.append(customer_traits.c.last_order_at < query.last_order_before)
    if query.search:
        # ILIKE '%...%' is answered by the pg_trgm GIN index ix_customers_search_text_trgm
        # (three characters or more give trigrams to look up). The matches are materialized
        # first: otherwise, with ORDER BY id LIMIT n, the planner may walk the primary key
        # filtering every row, i.e. scan the table.
        pattern = f"%{_escape_like(query.search)}%"
        matches = (
            select(customers.c.id)
            .where(customers.c.search_text.ilike(pattern, escape="\\"))
            .cte("search_matches")
            .prefix_with("MATERIALIZED")
        )
        matching_ids = select(func.array_agg(matches.c.id)).scalar_subquery()
        no_ids = text("'{}'::bigint[]")
        where.append(customers.c.id == func.any(func.coalesce(matching_ids, no_ids)))
    return where


def customer_page_statement(query: CustomerQuery, window: Window, scope: Scope) -> Select[Any]:
    stmt = _customer_select().where(*_customer_filter(query, scope))
    return _windowed(stmt, [customers.c.id], window, descending=False)


async def customer_page(
    engine: AsyncEngine, query: CustomerQuery, window: Window, scope: Scope
) -> Rows:
    """Golden customers (never merged-away ones) matching ``query``, oldest first; key (id,)."""
    return await _fetch(engine, customer_page_statement(query, window, scope))


async def customer_count(engine: AsyncEngine, query: CustomerQuery, scope: Scope) -> int:
    stmt = (
        select(func.count())
        .select_from(
            customers.outerjoin(customer_traits, customer_traits.c.customer_id == customers.c.id)
        )
        .where(*_customer_filter(query, scope))
    )
    return await _scalar_int(engine, stmt)


async def customer_ids_by_identity(engine: AsyncEngine, source: str, external_id: str) -> Rows:
    stmt = select(source_records.c.customer_id).where(
        source_records.c.source == source,
        source_records.c.external_id == external_id,
        source_records.c.deleted_at.is_(None),
    )
    return await _fetch(engine, stmt)


async def customer_ids_by_contact(
    engine: AsyncEngine, *, email: str | None, phone: str | None
) -> list[int]:
    """Customers whose normalized email or E.164 phone (golden or any source's) matches."""
    matches: list[ColumnElement[bool]] = []
    keys: list[ColumnElement[bool]] = []
    if email:
        matches.append(customers.c.email_normalized == email)
        keys.append(
            and_(identifiers.c.kind.in_(["email", "email_secondary"]), identifiers.c.value == email)
        )
    if phone:
        matches.append(customers.c.phone == phone)
        keys.append(and_(identifiers.c.kind == "phone", identifiers.c.value == phone))
    if not matches:
        return []
    golden = select(customers.c.id.label("customer_id")).where(or_(*matches))
    linked = select(identifiers.c.customer_id).where(or_(*keys))
    union = golden.union(linked).subquery()
    stmt = select(union.c.customer_id).order_by(union.c.customer_id)
    return [row.customer_id for row in await _fetch(engine, stmt)]


# --- orders ---------------------------------------------------------------------------------

ORDER_COLUMNS: tuple[ColumnElement[Any], ...] = (
    orders.c.id,
    orders.c.source,
    orders.c.external_id,
    orders.c.store_id,
    orders.c.customer_id,
    orders.c.status,
    orders.c.fulfillment,
    orders.c.channel,
    orders.c.currency,
    orders.c.subtotal_amount,
    orders.c.tax_amount,
    orders.c.tip_amount,
    orders.c.discount_amount,
    orders.c.total_amount,
    orders.c.placed_at,
    orders.c.accepted_at,
    orders.c.promised_at,
    orders.c.ready_at,
    orders.c.completed_at,
    # for isDelayed: the store's clock and its usual preparation times
    stores.c.timezone.label("store_timezone"),
    stores.c.usual_prep_minutes.label("store_usual_prep_minutes"),
)
ORDER_KEYS = (orders.c.placed_at, orders.c.id)
"""The order of every order connection: newest first (``placed_at DESC, id DESC``)."""

_ORDER_FROM = orders.join(stores, stores.c.id == orders.c.store_id)


@dataclass(frozen=True)
class OrderQuery:
    """The ``OrderFilter`` of the API, with ids already decoded."""

    statuses: tuple[str, ...] | None = None
    store_ids: tuple[int, ...] | None = None
    fulfillments: tuple[str, ...] | None = None
    placed_after: datetime | None = None
    placed_before: datetime | None = None


def order_scope(scope: Scope) -> ColumnElement[bool]:
    return true() if scope is None else orders.c.store_id == func.any(_ids(sorted(scope)))


def _order_filter(query: OrderQuery, scope: Scope) -> list[ColumnElement[bool]]:
    where = [order_scope(scope)]
    if query.statuses is not None:
        where.append(orders.c.status.in_(query.statuses))
    if query.store_ids is not None:
        where.append(orders.c.store_id.in_(query.store_ids))
    if query.fulfillments is not None:
        where.append(orders.c.fulfillment.in_(query.fulfillments))
    if query.placed_after is not None:
        where.append(orders.c.placed_at >= query.placed_after)
    if query.placed_before is not None:
        where.append(orders.c.placed_at < query.placed_before)
    return where


def _order_select() -> Select[Any]:
    return select(*ORDER_COLUMNS).select_from(_ORDER_FROM)


async def orders_by_id(engine: AsyncEngine, ids: Sequence[int], scope: Scope) -> Rows:
    stmt = _order_select().where(orders.c.id == func.any(_ids(ids)), order_scope(scope))
    return await _fetch(engine, stmt)


async def order_id_by_external_id(
    engine: AsyncEngine, source: str, external_id: str, scope: Scope
) -> int | None:
    stmt = select(orders.c.id).where(
        orders.c.source == source, orders.c.external_id == external_id, order_scope(scope)
    )
    rows = await _fetch(engine, stmt)
    return int(rows[0].id) if rows else None


async def order_page(engine: AsyncEngine, query: OrderQuery, window: Window, scope: Scope) -> Rows:
    """Orders matching ``query``, newest first; key (placed_at, id)."""
    stmt = _order_select().where(*_order_filter(query, scope))
    stmt = _windowed(stmt, ORDER_KEYS, window, descending=True)
    return await _fetch(engine, stmt)


async def order_count(engine: AsyncEngine, query: OrderQuery, scope: Scope) -> int:
    stmt = select(func.count()).select_from(orders).where(*_order_filter(query, scope))
    return await _scalar_int(engine, stmt)


async def orders_by_customer_id(
    engine: AsyncEngine,
    customer_ids: Sequence[int],
    query: OrderQuery,
    window: Window,
    scope: Scope,
) -> Rows:
    """Each customer's page of orders, one statement; rows carry ``parent_id``.

    Rows of one parent come in window order (see ``Window``).
    """
    shape = (
        query.statuses is not None,
        query.store_ids is not None,
        query.fulfillments is not None,
        query.placed_after is not None,
        query.placed_before is not None,
        window.after is not None,
        window.before is not None,
        window.backward,
        _scope_kind(scope),
    )
    params: dict[str, Any] = {
        "ids": list(customer_ids),
        "limit": window.limit + 1,
        "statuses": list(query.statuses or ()),
        "store_ids": list(query.store_ids or ()),
        "fulfillments": list(query.fulfillments or ()),
        "placed_after": query.placed_after,
        "placed_before": query.placed_before,
        **_scope_params(scope),
    }
    if window.after is not None:
        params["after_at"], params["after_id"] = window.after
    if window.before is not None:
        params["before_at"], params["before_id"] = window.before
    return await _fetch(engine, _orders_by_customer_id_statement(shape), params)


_ORDER_COLUMNS_ONLY = tuple(c for c in ORDER_COLUMNS if c.table is orders)


@functools.lru_cache(maxsize=512)
def _orders_by_customer_id_statement(shape: tuple[Any, ...]) -> Select[Any]:
    """Per-customer order pages for one shape of filter and window, all values bound.

    The LATERAL reads only orders, so each customer's rows come straight off the
    ``(customer_id, placed_at DESC, id)`` index; the store's columns are joined afterwards.
    """
    statuses, store_ids, fulfillments, after_at, before_at, after, before, backward, scope = shape
    keys = func.unnest(_ID_LIST).table_valued("key").render_derived(name="k")
    where: list[ColumnElement[bool]] = [orders.c.customer_id == keys.c.key]
    if statuses:
        where.append(orders.c.status == func.any(bindparam("statuses", type_=ARRAY(Text))))
    if store_ids:
        where.append(orders.c.store_id == func.any(bindparam("store_ids", type_=ARRAY(BigInteger))))
    if fulfillments:
        where.append(orders.c.fulfillment == func.any(bindparam("fulfillments", type_=ARRAY(Text))))
    if after_at:
        where.append(orders.c.placed_at >= bindparam("placed_after", type_=DateTime(timezone=True)))
    if before_at:
        where.append(orders.c.placed_at < bindparam("placed_before", type_=DateTime(timezone=True)))
    if scope != "all":
        where.append(orders.c.store_id == func.any(_SCOPE_LIST) if scope == "some" else false())
    key = tuple_(orders.c.placed_at, orders.c.id)
    at_type = DateTime(timezone=True)
    if after:
        where.append(key < tuple_(bindparam("after_at", type_=at_type), bindparam("after_id")))
    if before:
        where.append(key > tuple_(bindparam("before_at", type_=at_type), bindparam("before_id")))
    order = [k.asc() if backward else k.desc() for k in ORDER_KEYS]
    page = (
        select(*_ORDER_COLUMNS_ONLY)
        .where(*where)
        .order_by(*order)
        .limit(bindparam("limit"))
        .lateral("o")
    )
    return select(
        keys.c.key.label("parent_id"),
        page,
        stores.c.timezone.label("store_timezone"),
        stores.c.usual_prep_minutes.label("store_usual_prep_minutes"),
    ).select_from(keys.join(page, true()).join(stores, stores.c.id == page.c.store_id))


async def order_counts_by_customer_id(
    engine: AsyncEngine, customer_ids: Sequence[int], query: OrderQuery, scope: Scope
) -> dict[int, int]:
    stmt = (
        select(orders.c.customer_id.label("parent_id"), func.count().label("n"))
        .where(orders.c.customer_id == func.any(_ids(customer_ids)), *_order_filter(query, scope))
        .group_by(orders.c.customer_id)
    )
    return {row.parent_id: int(row.n) for row in await _fetch(engine, stmt)}


LINE_ITEM_COLUMNS: tuple[ColumnElement[Any], ...] = (
    order_line_items.c.order_id,
    order_line_items.c.id,
    order_line_items.c.name,
    order_line_items.c.quantity,
    order_line_items.c.unit_price_amount,
    order_line_items.c.total_amount,
    order_line_items.c.currency,
    _as_driver_returns(order_line_items.c.modifiers),
    # the menu item rides along: a line item's menuItem costs no extra statement
    menu_items.c.id.label("menu_item_id"),
    menu_items.c.name.label("menu_item_name"),
    menu_items.c.description.label("menu_item_description"),
    menu_items.c.price_amount.label("menu_item_price_amount"),
    menu_items.c.currency.label("menu_item_currency"),
    menu_items.c.is_available.label("menu_item_is_available"),
    _as_driver_returns(menu_items.c.tags).label("menu_item_tags"),
)


_LINE_ITEMS_BY_ORDER_ID = (
    select(*LINE_ITEM_COLUMNS)
    .select_from(
        order_line_items.outerjoin(menu_items, menu_items.c.id == order_line_items.c.menu_item_id)
    )
    .where(order_line_items.c.order_id == func.any(_ID_LIST))
    .order_by(order_line_items.c.order_id, order_line_items.c.position)
)


async def line_items_by_order_id(engine: AsyncEngine, order_ids: Sequence[int]) -> Rows:
    """Line items of ``order_ids`` with their menu items, in ticket order."""
    return await _fetch(engine, _LINE_ITEMS_BY_ORDER_ID, {"ids": list(order_ids)})


async def status_history_by_order_id(engine: AsyncEngine, order_ids: Sequence[int]) -> Rows:
    stmt = (
        select(
            order_status_history.c.order_id,
            order_status_history.c.status,
            order_status_history.c.at,
            order_status_history.c.source,
        )
        .where(order_status_history.c.order_id == func.any(_ids(order_ids)))
        .order_by(
            order_status_history.c.order_id, order_status_history.c.at, order_status_history.c.id
        )
    )
    return await _fetch(engine, stmt)


# --- loyalty ----------------------------------------------------------------------------------

LEDGER_COLUMNS: tuple[ColumnElement[Any], ...] = (
    loyalty_ledger.c.id,
    loyalty_ledger.c.account_id,
    loyalty_ledger.c.kind,
    loyalty_ledger.c.points,
    loyalty_ledger.c.reason,
    loyalty_ledger.c.actor,
    loyalty_ledger.c.source,
    loyalty_ledger.c.order_id,
    loyalty_ledger.c.occurred_at,
)


async def ledger_by_account_id(
    engine: AsyncEngine, account_ids: Sequence[int], query: None, window: Window
) -> Rows:
    """Each account's page of ledger entries, newest first; key (id,); rows carry parent_id."""
    keys = _keys_table(account_ids, "k")
    inner = select(*LEDGER_COLUMNS).where(loyalty_ledger.c.account_id == keys.c.key)
    page = _windowed(inner, [loyalty_ledger.c.id], window, descending=True).lateral("e")
    stmt = select(keys.c.key.label("parent_id"), page).select_from(keys.join(page, true()))
    return await _fetch(engine, stmt)


async def ledger_counts_by_account_id(
    engine: AsyncEngine, account_ids: Sequence[int], query: None
) -> dict[int, int]:
    stmt = (
        select(loyalty_ledger.c.account_id.label("parent_id"), func.count().label("n"))
        .where(loyalty_ledger.c.account_id == func.any(_ids(account_ids)))
        .group_by(loyalty_ledger.c.account_id)
    )
    return {row.parent_id: int(row.n) for row in await _fetch(engine, stmt)}


# --- interactions -------------------------------------------------------------------------------

INTERACTION_COLUMNS: tuple[ColumnElement[Any], ...] = (
    interactions.c.id,
    interactions.c.customer_id,
    interactions.c.source,
    interactions.c.channel,
    interactions.c.kind,
    interactions.c.subject,
    interactions.c.body,
    interactions.c.actor,
    interactions.c.order_id,
    interactions.c.occurred_at,
)
INTERACTION_KEYS = (interactions.c.occurred_at, interactions.c.id)


async def interactions_by_customer_id(
    engine: AsyncEngine, customer_ids: Sequence[int], query: None, window: Window
) -> Rows:
    """Each customer's page of interactions, newest first; key (occurred_at, id)."""
    keys = _keys_table(customer_ids, "k")
    inner = select(*INTERACTION_COLUMNS).where(interactions.c.customer_id == keys.c.key)
    page = _windowed(inner, INTERACTION_KEYS, window, descending=True).lateral("i")
    stmt = select(keys.c.key.label("parent_id"), page).select_from(keys.join(page, true()))
    return await _fetch(engine, stmt)


async def interaction_counts_by_customer_id(
    engine: AsyncEngine, customer_ids: Sequence[int], query: None
) -> dict[int, int]:
    stmt = (
        select(interactions.c.customer_id.label("parent_id"), func.count().label("n"))
        .where(interactions.c.customer_id == func.any(_ids(customer_ids)))
        .group_by(interactions.c.customer_id)
    )
    return {row.parent_id: int(row.n) for row in await _fetch(engine, stmt)}


async def interactions_by_id(engine: AsyncEngine, ids: Sequence[int]) -> Rows:
    stmt = select(*INTERACTION_COLUMNS).where(interactions.c.id == func.any(_ids(ids)))
    return await _fetch(engine, stmt)


# --- identity history -----------------------------------------------------------------------------


async def identity_history_by_customer_id(
    engine: AsyncEngine, customer_ids: Sequence[int]
) -> dict[int, list[identity.IdentityEvent]]:
    """What identity resolution did to each customer, oldest first (one statement)."""
    async with engine.connect() as conn:
        return await identity.identity_history_by_customer_ids(conn, customer_ids)


async def ledger_entries_by_id(engine: AsyncEngine, ids: Sequence[int]) -> Rows:
    stmt = select(*LEDGER_COLUMNS).where(loyalty_ledger.c.id == func.any(_ids(ids)))
    return await _fetch(engine, stmt)
