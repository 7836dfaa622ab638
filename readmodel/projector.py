"""The projector: applies domain events to the read model inside the caller's transaction.

One ``Projector`` per transaction (a webhook delivery, an ingest batch, an import batch).
Every write is idempotent and version-guarded, so a replayed or reordered delivery ends
in the same state:

- an order's content (totals, lines, customer) is replaced only by a newer source version;
- every reported status is kept in ``order_status_history`` once (per status and version);
  the current status is ``domain.order_status.resolve_status`` over that history;
- loyalty entries are keyed by the source's ledger event id;
- change-feed rows and trait recomputation happen once, in ``finish``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, exists, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import (
    ContactFetchNeeded,
    CustomerDeleted,
    CustomerRef,
    CustomersMerged,
    CustomerUpserted,
    DomainEvent,
    Ignored,
    InteractionRecorded,
    LoyaltyAccountLinked,
    LoyaltyPointsChanged,
    MenuItemUpserted,
    OrderFetchNeeded,
    OrderLine,
    OrderStatusObserved,
    OrderUpserted,
    StoreRef,
    StoreUpserted,
)
from domain.identity import CustomerRecord
from domain.matching import MatchPolicy
from domain.model import OrderStatus, Source
from domain.order_status import RANK, StatusObservation, resolve_status
from domain.sources.common import epoch_ms
from readmodel import changefeed, identity, loyalty, traits
from readmodel.changefeed import Change
from readmodel.tables import (
    interactions,
    loyalty_accounts,
    menu_items,
    order_line_items,
    order_status_backlog,
    order_status_history,
    orders,
    source_records,
    stores,
)

CORE_FIELDS = ("given_name", "family_name", "display_name", "email", "phone", "loyalty_id")


class ProjectionError(Exception):
    """An event that is well-formed but cannot be applied. ``reason`` is user-facing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreOutOfScope(ProjectionError):
    def __init__(self, store_external_id: str) -> None:
        super().__init__(f"store {store_external_id!r} is outside this client's store scope")
        self.store_external_id = store_external_id


class UnknownOrder(ProjectionError):
    def __init__(self, order_external_id: str) -> None:
        super().__init__(f"order {order_external_id!r} is not known")
        self.order_external_id = order_external_id


@dataclasses.dataclass(frozen=True)
class _OrderRow:
    id: int
    store_id: int
    customer_id: int | None
    status: OrderStatus
    source_version: int | None


class Projector:
    """Applies events in ``conn``'s transaction. Call ``finish`` once, before commit."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        actor: str,
        store_scope: frozenset[int] | None = None,
        policy: MatchPolicy | None = None,
        defer_traits: bool = False,
    ) -> None:
        self.conn = conn
        # True (imports): ``finish`` records the touched customers as owing their traits
        # (``traits.owe_traits``) instead of recomputing them; the caller settles the debt
        self.defer_traits = defer_traits
        self.actor = actor
        self.store_scope = store_scope
        self.policy = policy  # identity matching rules (GUESTGRAPH_IDENTITY_*); None = defaults
        self._changes: list[Change] = []
        self._trait_customers: set[int] = set()
        self.pending_fetches: list[OrderFetchNeeded | ContactFetchNeeded] = []
        self.ignored: list[str] = []
        # per-transaction caches; forgotten when a savepoint rolls back (``rolled_back``)
        self._stores: dict[tuple[str, str], int] = {}
        self._backlog_may_hold: bool | None = None
        # records linked ahead by ``link_customers``: (record as linked, where it landed)
        self._linked: dict[tuple[str, str], tuple[CustomerRecord, identity.Linked]] = {}

    def touch_customer(self, customer_id: int | None) -> None:
        """Recompute this customer's traits in ``finish``."""
        if customer_id is not None:
            self._trait_customers.add(customer_id)

    def add_change(self, change: Change) -> None:
        self._changes.append(change)

    def mark(self) -> int:
        """A point to return to if the caller's savepoint rolls back (see ``rolled_back``)."""
        return len(self._changes)

    def rolled_back(self, mark: int) -> None:
        """The savepoint since ``mark`` rolled back: drop its feed rows and the caches."""
        del self._changes[mark:]
        self._stores.clear()
        self._backlog_may_hold = None
        self._linked.clear()

    async def apply(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            await self._apply_one(event)

    async def finish(self) -> None:
        """Recompute traits of every customer whose orders changed; append the changes."""
        if self._trait_customers and self.defer_traits:
            await traits.owe_traits(self.conn, self._trait_customers)
        elif self._trait_customers:
            await traits.recompute_traits(self.conn, self._trait_customers)
        if self._changes:
            await changefeed.append_changes(self.conn, self._changes)
        self._trait_customers.clear()
        self._changes.clear()

    async def _apply_one(self, event: DomainEvent) -> None:
        if isinstance(event, CustomerUpserted | CustomerDeleted | CustomersMerged):
            self._linked.clear()  # identity moves: what was linked ahead may be stale
        match event:
            case OrderUpserted():
                await self._order_upserted(event)
            case OrderStatusObserved():
                await self._status_observed(event)
            case CustomerUpserted():
                await self._customer_upserted(event)
            case CustomerDeleted():
                await self._customer_deleted(event)
            case CustomersMerged():
                await self._customers_merged(event)
            case StoreUpserted():
                await self.store_id(event.store, update_details=True)
            case MenuItemUpserted():
                await self._menu_item_upserted(event)
            case LoyaltyAccountLinked():
                await self._loyalty_account_linked(event)
            case LoyaltyPointsChanged():
                await self._loyalty_points_changed(event)
            case InteractionRecorded():
                await self._interaction_recorded(event)
            case OrderFetchNeeded() | ContactFetchNeeded():
                self.pending_fetches.append(event)
            case Ignored():
                self.ignored.append(event.reason)

    # --- stores and catalog ---------------------------------------------------------------

    async def store_id(self, ref: StoreRef, *, update_details: bool = False) -> int:
        """The store's id, created on first sight. Raises StoreOutOfScope."""
        cached = self._stores.get((ref.source.value, ref.external_id))
        if cached is not None and not update_details:
            self._check_scope(cached, ref)
            return cached
        store_id = await self._upsert_store(ref, update_details=update_details)
        self._stores[(ref.source.value, ref.external_id)] = store_id
        self._check_scope(store_id, ref)
        return store_id

    async def prime_stores(self, refs: Iterable[StoreRef]) -> None:
        """Read the ids of the known stores among ``refs`` in one query, so ``store_id``
        answers them without SQL (unknown stores are still created there)."""
        wanted = {(r.source.value, r.external_id) for r in refs} - self._stores.keys()
        if not wanted:
            return
        rows = await self.conn.execute(
            select(stores.c.source, stores.c.external_id, stores.c.id).where(
                tuple_(stores.c.source, stores.c.external_id).in_(sorted(wanted))
            )
        )
        for r in rows:
            self._stores[(r.source, r.external_id)] = int(r.id)

    async def store_currencies(self, source: Source, external_ids: Iterable[str]) -> dict[str, str]:
        """The currency of each known store among ``external_ids``; their ids are kept for
        ``store_id`` (one query answers both)."""
        rows = await self.conn.execute(
            select(stores.c.external_id, stores.c.id, stores.c.currency)
            .where(stores.c.source == source.value)
            .where(stores.c.external_id.in_(sorted(set(external_ids))))
        )
        currencies = {}
        for r in rows:
            self._stores[(source.value, r.external_id)] = int(r.id)
            currencies[r.external_id] = str(r.currency)
        return currencies

    def _check_scope(self, store_id: int, ref: StoreRef) -> None:
        if self.store_scope is not None and store_id not in self.store_scope:
            raise StoreOutOfScope(ref.external_id)

    async def _upsert_store(self, ref: StoreRef, *, update_details: bool) -> int:
        details = {
            k: v
            for k, v in {
                "name": ref.name,
                "timezone": ref.timezone,
                "country": ref.country,
                "currency": ref.currency,
            }.items()
            if v is not None
        }
        insert_values = {
            "source": ref.source.value,
            "external_id": ref.external_id,
            "name": f"{ref.source.value.title()} {ref.external_id}",
            **details,
        }
        stmt = pg_insert(stores).values(**insert_values)
        if update_details and details:
            stmt = stmt.on_conflict_do_update(
                index_elements=["source", "external_id"],
                set_={**details, "updated_at": func.now()},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["source", "external_id"])
        found = (await self.conn.execute(stmt.returning(stores.c.id))).scalar_one_or_none()
        if found is None:
            found = (
                await self.conn.execute(
                    select(stores.c.id)
                    .where(stores.c.source == ref.source.value)
                    .where(stores.c.external_id == ref.external_id)
                )
            ).scalar_one()
        return int(found)

    async def _menu_item_upserted(self, event: MenuItemUpserted) -> None:
        store_id = await self.store_id(event.store) if event.store else None
        values = {
            "store_id": store_id,
            "name": event.name,
            "description": event.description,
            "price_amount": event.price_amount,
            "currency": event.currency,
            "tags": list(event.tags),
            "gtin": event.gtin,
            "is_available": event.is_available,
        }
        await self.conn.execute(
            pg_insert(menu_items)
            .values(source=event.source.value, external_id=event.external_id, **values)
            .on_conflict_do_update(
                index_elements=["source", "external_id"],
                set_={**values, "updated_at": func.now()},
            )
        )

    # --- customers --------------------------------------------------------------------------

    async def link_customers(self, refs: Iterable[CustomerRef | None]) -> None:
        """Link the simple customer records among ``refs`` at once (``identity.link_records``:
        repeat guests whose fields did not change, new people nobody else holds a key of);
        ``customer`` then answers those without SQL and links the rest one by one.

        Only for a batch that commits or rolls back as a whole: the links are written now,
        whatever becomes of the events that carry them."""
        records = [r.record for r in refs if r is not None and r.record is not None]
        if not records:
            return
        linked = await identity.link_records(
            self.conn, records, actor=self.actor, policy=self.policy
        )
        for record in records:
            key = (record.source.value, record.external_id)
            if key in linked:
                self._linked[key] = (record, linked[key])

    async def customer(self, ref: CustomerRef | None) -> tuple[int | None, int | None]:
        """(golden customer id, source record id) for a reference, linking it if new.

        A bare reference (no record) never overwrites what the source record already says.
        """
        if ref is None:
            return None, None
        ahead = self._linked.get((ref.source.value, ref.external_id))
        if ahead is not None and ref.record is not None and ahead[0] == ref.record:
            return ahead[1].customer_id, ahead[1].source_record_id
        if ref.record is None:
            row = (
                await self.conn.execute(
                    select(source_records.c.id, source_records.c.customer_id)
                    .where(source_records.c.source == ref.source.value)
                    .where(source_records.c.external_id == ref.external_id)
                )
            ).first()
            if row is not None:
                canonical = await identity.canonical_customer_id(self.conn, row.customer_id)
                return canonical or row.customer_id, row.id
        record = ref.record or CustomerRecord(ref.source, ref.external_id)
        linked = await identity.link_record(
            self.conn, record, actor=self.actor, policy=self.policy, changes=self._changes
        )
        if linked.merged_customer_ids:
            self._linked.clear()  # customers linked ahead may have merged away
        return linked.customer_id, linked.source_record_id

    async def _customer_upserted(self, event: CustomerUpserted) -> None:
        record = event.record
        if event.partial:
            record = await self._merged_with_stored(event)
        await identity.link_record(
            self.conn, record, actor=self.actor, policy=self.policy, changes=self._changes
        )

    async def _merged_with_stored(self, event: CustomerUpserted) -> CustomerRecord:
        record = event.record
        stored = (
            await self.conn.execute(
                select(source_records.c.attributes)
                .where(source_records.c.source == record.source.value)
                .where(source_records.c.external_id == record.external_id)
            )
        ).scalar_one_or_none()
        base: dict[str, Any] = dict(stored or {})
        core = {k: base.pop(k, None) for k in CORE_FIELDS}
        for name in event.changed:
            core[name] = getattr(record, name)
        return dataclasses.replace(record, **core, attributes={**base, **record.attributes})

    async def _customer_deleted(self, event: CustomerDeleted) -> None:
        values: dict[str, Any] = {"deleted_at": event.at or datetime.now(UTC)}
        if event.erase:
            values["attributes"] = {}
        row = (
            await self.conn.execute(
                update(source_records)
                .where(source_records.c.source == event.source.value)
                .where(source_records.c.external_id == event.external_id)
                .values(**values)
                .returning(source_records.c.customer_id)
            )
        ).first()
        if row is not None:
            if event.erase:
                # a privacy deletion: the record's email/phone/loyalty keys must never match
                # anyone again, and the golden profile forgets what only it contributed
                await identity.forget_record_keys(
                    self.conn, event.source, event.external_id, actor=self.actor
                )
            else:
                await identity.refresh_golden_fields(self.conn, [row.customer_id])
            self._changes.append(
                Change(
                    changefeed.CUSTOMER_UPDATED,
                    f"customer:{row.customer_id}",
                    {"customer_id": row.customer_id, "deleted_record": event.external_id},
                    customer_id=row.customer_id,
                )
            )

    async def _customers_merged(self, event: CustomersMerged) -> None:
        survivor = await identity.apply_source_merge(
            self.conn,
            event.source,
            event.winner_external_id,
            event.loser_external_ids,
            actor=self.actor,
            changes=self._changes,
        )
        if survivor is not None:
            self._trait_customers.add(survivor)

    # --- orders -----------------------------------------------------------------------------

    async def _order_row(self, source: Source, external_id: str) -> _OrderRow | None:
        row = (
            await self.conn.execute(
                select(
                    orders.c.id,
                    orders.c.store_id,
                    orders.c.customer_id,
                    orders.c.status,
                    orders.c.source_version,
                )
                .where(orders.c.source == source.value)
                .where(orders.c.external_id == external_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        return _OrderRow(
            row.id, row.store_id, row.customer_id, OrderStatus(row.status), row.source_version
        )

    async def _order_upserted(self, event: OrderUpserted) -> None:
        store_id = await self.store_id(event.store)
        customer_id, record_id = await self.customer(event.customer)
        values: dict[str, Any] = {
            "store_id": store_id,
            "customer_id": customer_id,
            "source_record_id": record_id,
            "fulfillment": event.fulfillment.value,
            "channel": event.channel,
            "currency": event.currency,
            "subtotal_amount": event.subtotal_amount,
            "tax_amount": event.tax_amount,
            "tip_amount": event.tip_amount,
            "discount_amount": event.discount_amount,
            "total_amount": event.total_amount,
            "source_version": event.version,
            "placed_at": event.placed_at,
            "promised_at": event.promised_at,
            "raw": dict(event.raw),
        }
        existing = await self._order_row(event.source, event.external_id)
        if existing is None:
            inserted = (
                await self.conn.execute(
                    pg_insert(orders)
                    .values(
                        source=event.source.value,
                        external_id=event.external_id,
                        status=event.status.value,
                        **values,
                        **_milestones(event.status, event.status_at),
                    )
                    .on_conflict_do_nothing(index_elements=["source", "external_id"])
                    .returning(orders.c.id)
                )
            ).scalar_one_or_none()
            if inserted is None:  # a concurrent delivery created it: take the update path
                existing = await self._order_row(event.source, event.external_id)
            else:
                order = _OrderRow(inserted, store_id, customer_id, event.status, event.version)
                await self._insert_lines(order.id, event)
                self.order_changed(order, event.source)
                self._changes.append(self.status_change(order, None, event.status_at))
                await self._observe(
                    order, event.status, event.status_at, event.version, event, fresh=True
                )
                for early in await self._backlog(event):
                    order = await self._order_row(event.source, event.external_id) or order
                    await self._observe(order, early.status, early.at, early.version, early)
                return
        assert existing is not None
        if _is_newer(event.version, existing.source_version):
            if existing.customer_id is not None and existing.customer_id != customer_id:
                self._trait_customers.add(existing.customer_id)
            await self.conn.execute(
                update(orders)
                .where(orders.c.id == existing.id)
                .values(**values, updated_at=func.now())
            )
            await self.conn.execute(
                delete(order_line_items).where(order_line_items.c.order_id == existing.id)
            )
            await self._insert_lines(existing.id, event)
            existing = dataclasses.replace(
                existing,
                store_id=store_id,
                customer_id=customer_id,
                source_version=event.version,
            )
            self.order_changed(existing, event.source)
        await self._observe(existing, event.status, event.status_at, event.version, event)

    async def _backlog(self, event: OrderUpserted) -> list[OrderStatusObserved]:
        """Statuses reported before the order existed (taken out of the backlog)."""
        if self._backlog_may_hold is None:
            self._backlog_may_hold = bool(
                (
                    await self.conn.execute(select(exists().select_from(order_status_backlog)))
                ).scalar_one()
            )
        if not self._backlog_may_hold:
            return []
        rows = await self.conn.execute(
            delete(order_status_backlog)
            .where(order_status_backlog.c.source == event.source.value)
            .where(order_status_backlog.c.order_external_id == event.external_id)
            .returning(
                order_status_backlog.c.status,
                order_status_backlog.c.at,
                order_status_backlog.c.source_version,
            )
        )
        return [
            OrderStatusObserved(
                event.source, event.external_id, OrderStatus(r.status), r.at, r.source_version
            )
            for r in rows
        ]

    async def _insert_lines(self, order_id: int, event: OrderUpserted) -> None:
        if not event.lines:
            return
        menu = await self._menu_item_ids(event.source, event.lines)
        await self.conn.execute(
            insert(order_line_items),
            [
                {
                    "order_id": order_id,
                    "position": i,
                    "external_id": line.external_id,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price_amount": line.unit_price_amount,
                    "total_amount": line.total_amount,
                    "currency": event.currency,
                    "menu_item_id": menu.get(line.catalog_external_id or ""),
                    "modifiers": list(line.modifiers),
                }
                for i, line in enumerate(event.lines)
            ],
        )

    async def _menu_item_ids(self, source: Source, lines: Sequence[OrderLine]) -> dict[str, int]:
        wanted = sorted({ln.catalog_external_id for ln in lines if ln.catalog_external_id})
        if not wanted:
            return {}
        rows = await self.conn.execute(
            select(menu_items.c.external_id, menu_items.c.id)
            .where(menu_items.c.source == source.value)
            .where(menu_items.c.external_id.in_(wanted))
        )
        return {r.external_id: r.id for r in rows}

    def order_changed(self, order: _OrderRow, source: Source) -> None:
        if order.customer_id is not None:
            self._trait_customers.add(order.customer_id)
        self._changes.append(
            Change(
                changefeed.ORDER_UPSERTED,
                f"order:{order.id}",
                {
                    "order_id": order.id,
                    "customer_id": order.customer_id,
                    "store_id": order.store_id,
                    "status": order.status.value,
                    "source": source.value,
                },
                customer_id=order.customer_id,
                order_id=order.id,
                store_id=order.store_id,
            )
        )

    def status_change(self, order: _OrderRow, previous: OrderStatus | None, at: datetime) -> Change:
        return Change(
            changefeed.ORDER_STATUS_CHANGED,
            f"order:{order.id}",
            {
                "order_id": order.id,
                "customer_id": order.customer_id,
                "store_id": order.store_id,
                "status": order.status.value,
                "previous_status": previous.value if previous else None,
                "at": at.isoformat(),
            },
            customer_id=order.customer_id,
            order_id=order.id,
            store_id=order.store_id,
        )

    async def _status_observed(self, event: OrderStatusObserved) -> None:
        order = await self._order_row(event.source, event.order_external_id)
        if order is None:
            if event.source is Source.CANONICAL:
                raise UnknownOrder(event.order_external_id)
            # a thin event ahead of its order: keep the status until the order arrives
            self._backlog_may_hold = True
            await self.conn.execute(
                pg_insert(order_status_backlog)
                .values(
                    source=event.source.value,
                    order_external_id=event.order_external_id,
                    status=event.status.value,
                    at=event.at,
                    source_version=_seen_version(event.version, event.at),
                )
                .on_conflict_do_nothing()
            )
            return
        if self.store_scope is not None and order.store_id not in self.store_scope:
            raise StoreOutOfScope(event.order_external_id)
        await self._observe(order, event.status, event.at, event.version, event)

    async def _observe(
        self,
        order: _OrderRow,
        status: OrderStatus,
        at: datetime,
        version: int | None,
        event: OrderUpserted | OrderStatusObserved,
        *,
        fresh: bool = False,
    ) -> None:
        """Record one observed status (once per status and version); re-resolve the current.

        ``fresh``: the order was just inserted with this status and its milestones."""
        seen_version = _seen_version(version, at)
        inserted = (
            await self.conn.execute(
                pg_insert(order_status_history)
                .values(
                    order_id=order.id,
                    status=status.value,
                    previous_status=order.status.value,
                    at=at,
                    source=event.source.value,
                    source_version=seen_version,
                )
                .on_conflict_do_nothing(index_elements=["order_id", "status", "source_version"])
                .returning(order_status_history.c.id)
            )
        ).scalar_one_or_none()
        if inserted is None or fresh:
            return  # seen before; or the first observation of a new order (set at insert)
        history = await self.conn.execute(
            select(
                order_status_history.c.source_version,
                order_status_history.c.at,
                order_status_history.c.status,
            ).where(order_status_history.c.order_id == order.id)
        )
        resolved = resolve_status(
            StatusObservation(r.source_version or 0, r.at, OrderStatus(r.status)) for r in history
        )
        assert resolved is not None
        await self.conn.execute(_SET_STATUS, {"id": order.id, "status": resolved.status.value})
        if resolved.status is not order.status:
            if order.customer_id is not None:
                self._trait_customers.add(order.customer_id)
            moved = dataclasses.replace(order, status=resolved.status)
            self._changes.append(self.status_change(moved, order.status, resolved.at))

    # --- loyalty and interactions -----------------------------------------------------------

    async def _id_by_source_key(
        self, table: Table, source: Source, external_id: str | None
    ) -> int | None:
        """The database id of a source's row (an order, a loyalty account), if known."""
        if not external_id:
            return None
        found = (
            await self.conn.execute(
                select(table.c.id)
                .where(table.c.source == source.value)
                .where(table.c.external_id == external_id)
            )
        ).scalar_one_or_none()
        return None if found is None else int(found)

    async def _loyalty_account_linked(self, event: LoyaltyAccountLinked) -> None:
        customer_id, record_id = await self.customer(event.customer)
        assert customer_id is not None
        account_id = await loyalty.ensure_account(
            self.conn,
            customer_id=customer_id,
            program=event.program,
            source=event.source.value,
            external_id=event.account_external_id,
            source_record_id=record_id,
        )
        if event.customer.record is None:  # a real source customer: the account is theirs
            await self.conn.execute(
                update(loyalty_accounts)
                .where(loyalty_accounts.c.id == account_id)
                .values(
                    customer_id=customer_id,
                    program=event.program,
                    source_record_id=record_id,
                    updated_at=func.now(),
                )
            )

    async def _loyalty_points_changed(self, event: LoyaltyPointsChanged) -> None:
        account_id = await self._id_by_source_key(
            loyalty_accounts, event.source, event.account_external_id
        )
        if account_id is None:
            customer_id, record_id = await self.customer(event.customer)
            assert customer_id is not None
            account_id = await loyalty.ensure_account(
                self.conn,
                customer_id=customer_id,
                program=event.program,
                source=event.source.value,
                external_id=event.account_external_id,
                source_record_id=record_id,
            )
        order_id = await self._id_by_source_key(orders, event.source, event.order_external_id)
        try:
            result = await loyalty.append_entry(
                self.conn,
                account_id=account_id,
                points=event.points,
                kind=event.kind,
                actor=self.actor,
                idempotency_key=f"{event.source.value}:{event.event_id}",
                source=event.source.value,
                reason=event.reason,
                order_id=order_id,
                external_id=event.event_id,
                occurred_at=event.occurred_at,
                # the POS is the authority on its own ledger: Square balances may go negative
                enforce_balance=event.source is Source.CANONICAL,
            )
        except loyalty.InsufficientPoints as exc:
            raise ProjectionError(str(exc)) from None
        if not result.duplicate:
            owner = (
                await self.conn.execute(
                    select(loyalty_accounts.c.customer_id).where(
                        loyalty_accounts.c.id == account_id
                    )
                )
            ).scalar_one()
            self._changes.append(
                Change(
                    changefeed.LOYALTY_CHANGED,
                    f"loyalty:{account_id}",
                    {
                        "account_id": account_id,
                        "customer_id": owner,
                        "points": event.points,
                        "balance": result.balance,
                    },
                    customer_id=owner,
                )
            )

    async def _interaction_recorded(self, event: InteractionRecorded) -> None:
        customer_id, record_id = await self.customer(event.customer)
        order_id = await self._id_by_source_key(orders, event.source, event.order_external_id)
        inserted = (
            await self.conn.execute(
                pg_insert(interactions)
                .values(
                    customer_id=customer_id,
                    source=event.source.value,
                    external_id=event.external_id,
                    source_record_id=record_id,
                    channel=event.channel,
                    kind=event.kind,
                    subject=event.subject,
                    body=event.body,
                    actor=self.actor,
                    order_id=order_id,
                    occurred_at=event.occurred_at,
                )
                .on_conflict_do_nothing(index_elements=["source", "external_id"])
                .returning(interactions.c.id)
            )
        ).scalar_one_or_none()
        if inserted is not None:
            self._changes.append(
                Change(
                    changefeed.INTERACTION_RECORDED,
                    f"interaction:{inserted}",
                    {"interaction_id": inserted, "customer_id": customer_id},
                    customer_id=customer_id,
                    order_id=order_id,
                )
            )


def _milestones(status: OrderStatus, at: datetime) -> dict[str, datetime | None]:
    """accepted/ready/completed times of an order first seen in ``status`` (as _SET_STATUS)."""
    rank = RANK[status]
    return {
        "accepted_at": at
        if RANK[OrderStatus.ACCEPTED] <= rank <= RANK[OrderStatus.COMPLETED]
        else None,
        "ready_at": at if RANK[OrderStatus.READY] <= rank <= RANK[OrderStatus.COMPLETED] else None,
        "completed_at": at if status is OrderStatus.COMPLETED else None,
    }


def _seen_version(version: int | None, at: datetime) -> int:
    return version if version is not None else epoch_ms(at)


def _is_newer(incoming: int | None, stored: int | None) -> bool:
    """Content is replaced only by a strictly newer version (unversioned: last write wins)."""
    if incoming is None or stored is None:
        return True
    return incoming > stored


# The current status plus the first time each milestone was reached, from the history.
_SET_STATUS = text(
    """
UPDATE orders SET
    status = :status,
    accepted_at = (SELECT min(at) FROM order_status_history h WHERE h.order_id = :id
                   AND h.status IN ('ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY',
                                    'COMPLETED')),
    ready_at = (SELECT min(at) FROM order_status_history h WHERE h.order_id = :id
                AND h.status IN ('READY', 'OUT_FOR_DELIVERY', 'COMPLETED')),
    completed_at = CASE WHEN :status = 'COMPLETED' THEN
                       (SELECT min(at) FROM order_status_history h WHERE h.order_id = :id
                        AND h.status = 'COMPLETED') END,
    updated_at = now()
WHERE id = :id
"""
)


async def apply_events(
    conn: AsyncConnection,
    events: Sequence[DomainEvent],
    *,
    actor: str,
    store_scope: frozenset[int] | None = None,
    policy: MatchPolicy | None = None,
) -> Projector:
    """Apply ``events`` and finish, in the caller's transaction. Returns the projector
    (its ``pending_fetches`` and ``ignored`` say what was left for later or skipped)."""
    projector = Projector(conn, actor=actor, store_scope=store_scope, policy=policy)
    await projector.apply(events)
    await projector.finish()
    return projector


async def store_currency(conn: AsyncConnection, source: Source, external_id: str) -> str | None:
    """The currency of a known store (Toast payloads do not carry one)."""
    return (await store_currencies(conn, source, [external_id])).get(external_id)


async def store_currencies(
    conn: AsyncConnection, source: Source, external_ids: Iterable[str]
) -> dict[str, str]:
    """The currency of each known store among ``external_ids`` (unknown ones are absent)."""
    rows = await conn.execute(
        select(stores.c.external_id, stores.c.currency)
        .where(stores.c.source == source.value)
        .where(stores.c.external_id.in_(sorted(set(external_ids))))
    )
    return {r.external_id: str(r.currency) for r in rows if r.currency is not None}
