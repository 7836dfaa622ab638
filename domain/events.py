"""Canonical domain events: what a source payload means, independent of its vendor shape.

The mappers in ``domain.sources`` produce these; ``readmodel.projector`` applies them.
Money is integer minor units; every event keeps enough of the source's identity (source +
external id) for a replay or a reordered delivery to find the row it already wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.identity import CustomerRecord
from domain.model import FulfillmentType, OrderStatus, Source


@dataclass(frozen=True)
class StoreRef:
    """A store as an event names it; the projector creates it on first sight."""

    source: Source
    external_id: str
    name: str | None = None
    timezone: str | None = None
    country: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class CustomerRef:
    """A pointer to a source customer record, with what the event knows about the person.

    ``record`` is None when the event names the customer only by id (a Square order's
    ``customer_id``): the projector then links an empty record only if it is new, so a bare
    reference never overwrites what the customer event said.
    """

    source: Source
    external_id: str
    record: CustomerRecord | None = None


@dataclass(frozen=True)
class StoreUpserted:
    store: StoreRef


@dataclass(frozen=True)
class MenuItemUpserted:
    source: Source
    external_id: str
    store: StoreRef | None
    name: str
    price_amount: int
    currency: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    gtin: str | None = None
    is_available: bool = True


@dataclass(frozen=True)
class CustomerUpserted:
    """A source's view of one person. ``partial``: only the fields set here changed (CRM
    property changes, Salesforce CDC): the projector merges them into the stored record."""

    record: CustomerRecord
    partial: bool = False
    # for a partial event: the CustomerRecord fields it sets (possibly to None)
    changed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CustomerDeleted:
    source: Source
    external_id: str
    at: datetime | None
    merged_into: str | None = None
    erase: bool = False  # a privacy deletion: forget the record's attributes too


@dataclass(frozen=True)
class CustomersMerged:
    """The source merged records itself: the losers' golden customers join the winner's."""

    source: Source
    winner_external_id: str
    loser_external_ids: tuple[str, ...]


@dataclass(frozen=True)
class OrderLine:
    name: str
    quantity: Decimal
    unit_price_amount: int
    total_amount: int
    external_id: str | None = None
    catalog_external_id: str | None = None
    modifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderUpserted:
    """The full order as the source knows it at ``version``."""

    source: Source
    external_id: str
    store: StoreRef
    customer: CustomerRef | None
    status: OrderStatus
    status_at: datetime
    fulfillment: FulfillmentType
    channel: str
    currency: str
    subtotal_amount: int
    tax_amount: int
    tip_amount: int
    discount_amount: int
    total_amount: int
    placed_at: datetime
    version: int | None
    lines: tuple[OrderLine, ...] = ()
    promised_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderStatusObserved:
    """A status the source reported for an order at ``at`` (and ``version``), without the
    rest of the order: a Square fulfillment update, a canonical status change."""

    source: Source
    order_external_id: str
    status: OrderStatus
    at: datetime
    version: int | None


@dataclass(frozen=True)
class OrderFetchNeeded:
    """A thin source event: the full order must be fetched from the source's API."""

    source: Source
    order_external_id: str
    version: int | None


@dataclass(frozen=True)
class ContactFetchNeeded:
    """A thin CRM event: the full contact must be fetched from the source's API."""

    source: Source
    external_id: str


@dataclass(frozen=True)
class LoyaltyAccountLinked:
    source: Source
    account_external_id: str
    program: str
    customer: CustomerRef


@dataclass(frozen=True)
class LoyaltyPointsChanged:
    """One ledger entry. ``event_id`` is the source's ledger event id: the idempotency key."""

    source: Source
    event_id: str
    account_external_id: str
    program: str
    points: int
    kind: str
    occurred_at: datetime | None
    customer: CustomerRef
    reason: str | None = None
    order_external_id: str | None = None


@dataclass(frozen=True)
class InteractionRecorded:
    source: Source
    external_id: str
    customer: CustomerRef
    channel: str
    kind: str
    occurred_at: datetime
    subject: str | None = None
    body: str | None = None
    order_external_id: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A well-formed event guestgraph does not use (an unknown type): stored, answered 200."""

    reason: str


DomainEvent = (
    StoreUpserted
    | MenuItemUpserted
    | CustomerUpserted
    | CustomerDeleted
    | CustomersMerged
    | OrderUpserted
    | OrderStatusObserved
    | OrderFetchNeeded
    | ContactFetchNeeded
    | LoyaltyAccountLinked
    | LoyaltyPointsChanged
    | InteractionRecorded
    | Ignored
)
