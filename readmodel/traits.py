"""Per-customer traits, maintained on ingest so insights never recompute per query."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger

FAVORITE_ITEMS_KEPT = 10

# One statement recomputes every trait of the given customers from their orders.
# Canceled orders are not spend. Spend sums the customer's most used currency only.
_RECOMPUTE = text(
    """
WITH ids AS (SELECT unnest(:ids) AS customer_id),
o AS (
    SELECT o.id, o.customer_id, o.store_id, o.channel, o.currency, o.total_amount, o.placed_at,
           extract(hour FROM o.placed_at AT TIME ZONE s.timezone)::int AS local_hour
    FROM orders o JOIN stores s ON s.id = o.store_id
    WHERE o.customer_id = ANY(:ids) AND o.status <> 'CANCELED'
),
cur AS (
    SELECT DISTINCT ON (customer_id) customer_id, currency
    FROM o GROUP BY customer_id, currency ORDER BY customer_id, count(*) DESC, currency
),
agg AS (
    SELECT o.customer_id,
           count(*) AS order_count,
           sum(o.total_amount) FILTER (WHERE o.currency = cur.currency) AS total_spend,
           min(o.placed_at) AS first_order_at,
           max(o.placed_at) AS last_order_at,
           array_agg(DISTINCT o.store_id) AS store_ids,
           mode() WITHIN GROUP (ORDER BY o.local_hour) AS usual_hour,
           max(cur.currency) AS currency
    FROM o JOIN cur USING (customer_id)
    GROUP BY o.customer_id
),
channels AS (
    SELECT customer_id, jsonb_object_agg(channel, n) AS mix
    FROM (SELECT customer_id, channel, count(*) AS n FROM o GROUP BY 1, 2) c
    GROUP BY customer_id
),
items AS (
    SELECT customer_id,
           jsonb_agg(jsonb_build_object(
               'menu_item_id', menu_item_id, 'name', name,
               'quantity', quantity, 'orders', orders) ORDER BY quantity DESC, orders DESC, name)
               AS favorites
    FROM (
        SELECT o.customer_id, li.menu_item_id, min(li.name) AS name,
               sum(li.quantity)::float8 AS quantity, count(DISTINCT o.id) AS orders,
               row_number() OVER (PARTITION BY o.customer_id
                                  ORDER BY sum(li.quantity) DESC, count(DISTINCT o.id) DESC,
                                           min(li.name)) AS rank
        FROM o JOIN order_line_items li ON li.order_id = o.id
        GROUP BY o.customer_id, li.menu_item_id, CASE WHEN li.menu_item_id IS NULL
                                                       THEN li.name END
    ) ranked
    WHERE rank <= :kept
    GROUP BY customer_id
)
INSERT INTO customer_traits AS t (
    customer_id, order_count, total_spend_amount, currency, first_order_at, last_order_at,
    favorite_items, usual_order_hour, channel_mix, store_ids, updated_at)
SELECT ids.customer_id,
       coalesce(agg.order_count, 0), coalesce(agg.total_spend, 0), agg.currency,
       agg.first_order_at, agg.last_order_at,
       coalesce(items.favorites, '[]'::jsonb), agg.usual_hour,
       coalesce(channels.mix, '{}'::jsonb), coalesce(agg.store_ids, '{}'::bigint[]), now()
FROM ids
JOIN customers c ON c.id = ids.customer_id
LEFT JOIN agg USING (customer_id)
LEFT JOIN channels USING (customer_id)
LEFT JOIN items USING (customer_id)
ON CONFLICT (customer_id) DO UPDATE SET
    order_count = excluded.order_count,
    total_spend_amount = excluded.total_spend_amount,
    currency = excluded.currency,
    first_order_at = excluded.first_order_at,
    last_order_at = excluded.last_order_at,
    favorite_items = excluded.favorite_items,
    usual_order_hour = excluded.usual_order_hour,
    channel_mix = excluded.channel_mix,
    store_ids = excluded.store_ids,
    updated_at = now()
"""
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def recompute_traits(conn: AsyncConnection, customer_ids: Iterable[int]) -> None:
    """Recompute every trait of ``customer_ids`` from their orders, in the caller's transaction."""
    ids = sorted(set(customer_ids))
    if ids:
        await conn.execute(_RECOMPUTE, {"ids": ids, "kept": FAVORITE_ITEMS_KEPT})


# --- traits owed -------------------------------------------------------------------------
# A backfill touches the same customers batch after batch; recomputing them after every
# batch re-reads their whole history each time. An import instead records the customers it
# touched (in each batch's transaction, so the debt is as durable as the orders) and settles
# the debt once at its end. An import that is interrupted leaves the debt in the table:
# the next import settles it, and so does the background worker of ``guestgraph serve``.

_OWE = text(
    "INSERT INTO traits_owed (customer_id) SELECT unnest(:ids) ORDER BY 1"
    " ON CONFLICT (customer_id) DO NOTHING"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))

_CLAIM = text(
    """
DELETE FROM traits_owed WHERE customer_id IN (
    SELECT customer_id FROM traits_owed ORDER BY customer_id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING customer_id
"""
)

SETTLE_CHUNK = 2000


async def owe_traits(conn: AsyncConnection, customer_ids: Iterable[int]) -> None:
    """Record that ``customer_ids``' traits are stale, in the caller's transaction."""
    ids = sorted(set(customer_ids))
    if ids:
        await conn.execute(_OWE, {"ids": ids})


async def settle_owed(conn: AsyncConnection, limit: int = SETTLE_CHUNK) -> int:
    """Recompute up to ``limit`` owed customers' traits and clear their debt, in the
    caller's transaction; the number settled (0: nothing owed, or all of it being settled
    by another transaction). Owed rows another transaction holds are skipped, not waited on."""
    rows = await conn.execute(_CLAIM, {"limit": limit})
    ids = [int(r[0]) for r in rows]
    await recompute_traits(conn, ids)
    return len(ids)
