"""The vocabulary every layer shares: sources, order statuses, fulfillment types."""

from __future__ import annotations

import enum


class Source(enum.StrEnum):
    """Where a fact came from."""

    SQUARE = "SQUARE"
    TOAST = "TOAST"
    HUBSPOT = "HUBSPOT"
    SALESFORCE = "SALESFORCE"
    CANONICAL = "CANONICAL"


class OrderStatus(enum.StrEnum):
    """guestgraph's normalized order status, in the order an order normally moves."""

    PLACED = "PLACED"
    ACCEPTED = "ACCEPTED"
    PREPARING = "PREPARING"
    READY = "READY"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.COMPLETED, OrderStatus.CANCELED)


OPEN_ORDER_STATUSES: tuple[OrderStatus, ...] = tuple(s for s in OrderStatus if not s.is_terminal)


class FulfillmentType(enum.StrEnum):
    DELIVERY = "DELIVERY"
    PICKUP = "PICKUP"
    DINE_IN = "DINE_IN"


class InboxStatus(enum.StrEnum):
    """What became of one received source event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    # --- ingest: accepted and durable, waiting for the background fetcher (thin events) ---
    PENDING = "pending"


class ConsentChannel(enum.StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    PUSH = "PUSH"
    PHONE = "PHONE"


class IdentifierKind(enum.StrEnum):
    """Normalized keys that identity resolution matches on."""

    EMAIL = "email"
    EMAIL_SECONDARY = "email_secondary"
    PHONE = "phone"
    LOYALTY_ID = "loyalty_id"


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPPORT = "support"
    PARTNER = "partner"
    CUSTOMER = "customer"
