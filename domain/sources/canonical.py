"""guestgraph's own event format (docs/canonical-events.schema.json).

A batch is ``{"events": [{"id", "type", "occurred_at"?, "data": {...}}, ...]}`` with at
most 500 events. Money is integer minor units with an ISO 4217 currency; store, customer,
order and catalog ids are the partner's own (source CANONICAL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from domain.events import (
    CustomerRef,
    CustomerUpserted,
    DomainEvent,
    InteractionRecorded,
    LoyaltyPointsChanged,
    MenuItemUpserted,
    OrderLine,
    OrderStatusObserved,
    OrderUpserted,
    StoreRef,
    StoreUpserted,
)
from domain.identity import CustomerRecord
from domain.model import FulfillmentType, OrderStatus, Source
from domain.sources.common import Node, ParseError, currency_code, epoch_ms

SOURCE = Source.CANONICAL
MAX_BATCH = 500
EVENT_TYPES = (
    "store.upserted",
    "catalog_item.upserted",
    "customer.upserted",
    "order.upserted",
    "order.status_changed",
    "loyalty.points_changed",
    "interaction.recorded",
)


@dataclass(frozen=True)
class CanonicalEvent:
    event_id: str
    event_type: str
    raw: Any
    events: list[DomainEvent]


def batch_items(payload: Any) -> list[Node]:
    """The events of a batch (not yet mapped). Raises ParseError for a bad envelope."""
    root = Node(payload)
    items = root.get("events").children()
    if not items:
        raise ParseError("events", "must hold at least one event")
    if len(items) > MAX_BATCH:
        raise ParseError("events", f"holds {len(items)} events; at most {MAX_BATCH} per batch")
    return items


def parse_event(item: Node) -> CanonicalEvent:
    """Map one canonical event. Raises ParseError with the field path."""
    event_id = item.get("id").text()
    kind = item.get("type").text()
    data = item.get("data")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ParseError(f"{item.path}.type", f"unknown event type {kind!r}")
    event = parser(data)
    if isinstance(event, LoyaltyPointsChanged):
        event = replace(event, event_id=event_id)
    return CanonicalEvent(event_id, kind, item.value, [event])


def _store(data: Node) -> StoreUpserted:
    currency = data.opt("currency")
    return StoreUpserted(
        StoreRef(
            SOURCE,
            data.get("id").text(),
            name=data.get("name").text(),
            timezone=data.opt_text("timezone"),
            country=(data.opt_text("country") or "").upper() or None,
            currency=currency_code(currency) if currency else None,
        )
    )


def _catalog_item(data: Node) -> MenuItemUpserted:
    price = data.get("price")
    store = data.opt_text("store_id")
    return MenuItemUpserted(
        source=SOURCE,
        external_id=data.get("id").text(),
        store=StoreRef(SOURCE, store) if store else None,
        name=data.get("name").text(),
        price_amount=price.get("amount").integer(),
        currency=currency_code(price.get("currency")),
        description=data.opt_text("description"),
        tags=tuple(t.text().lower() for t in data.array("tags")),
        gtin=data.opt_text("gtin"),
        is_available=data.get("available").boolean() if data.has("available") else True,
    )


def _customer_record(data: Node) -> CustomerRecord:
    updated = data.opt_timestamp("updated_at")
    version = data.opt_int("version")
    attributes = data.opt("attributes")
    if attributes is not None and not isinstance(attributes.value, dict):
        raise ParseError(attributes.path, "expected an object")
    return CustomerRecord(
        source=SOURCE,
        external_id=data.get("id").text(),
        given_name=data.opt_text("given_name"),
        family_name=data.opt_text("family_name"),
        display_name=data.opt_text("display_name"),
        email=data.opt_text("email"),
        phone=data.opt_text("phone"),
        loyalty_id=data.opt_text("loyalty_id"),
        default_region=(data.opt_text("country") or "US").upper(),
        observed_at=updated,
        version=version if version is not None else (epoch_ms(updated) if updated else None),
        attributes=dict(attributes.value) if attributes else {},
    )


def _customer(data: Node) -> CustomerUpserted:
    return CustomerUpserted(_customer_record(data))


def _enum(node: Node, enum: type[OrderStatus] | type[FulfillmentType]) -> Any:
    value = node.text().upper()
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ParseError(node.path, f"must be one of {allowed}") from None


def _order(data: Node) -> OrderUpserted:
    currency = currency_code(data.get("currency"))
    lines = []
    for li in data.get("line_items").children():
        quantity = li.get("quantity").number()
        if quantity <= 0:
            raise ParseError(f"{li.path}.quantity", "must be positive")
        unit = li.get("unit_price").integer()
        total = li.opt_int("total")
        lines.append(
            OrderLine(
                name=li.get("name").text(),
                quantity=quantity,
                unit_price_amount=unit,
                total_amount=total if total is not None else int(unit * quantity),
                external_id=li.opt_text("id"),
                catalog_external_id=li.opt_text("catalog_item_id"),
                modifiers=tuple(m.text() for m in li.array("modifiers")),
            )
        )
    subtotal = data.opt_int("subtotal")
    if subtotal is None:
        subtotal = sum(line.total_amount for line in lines)
    tax, tip = data.opt_int("tax") or 0, data.opt_int("tip") or 0
    discount = data.opt_int("discount") or 0
    total = data.opt_int("total")
    placed = data.get("placed_at").timestamp()
    updated = data.opt_timestamp("updated_at") or placed
    customer = data.opt("customer")
    customer_id = data.opt_text("customer_id")
    ref = None
    if customer is not None:
        record = _customer_record(customer)
        ref = CustomerRef(SOURCE, record.external_id, record)
    elif customer_id:
        ref = CustomerRef(SOURCE, customer_id)
    version = data.opt_int("version")
    return OrderUpserted(
        source=SOURCE,
        external_id=data.get("id").text(),
        store=StoreRef(SOURCE, data.get("store_id").text()),
        customer=ref,
        status=_enum(data.get("status"), OrderStatus),
        status_at=updated,
        fulfillment=_enum(data.get("fulfillment"), FulfillmentType),
        channel=(data.opt_text("channel") or "PARTNER").upper(),
        currency=currency,
        subtotal_amount=subtotal,
        tax_amount=tax,
        tip_amount=tip,
        discount_amount=discount,
        total_amount=total if total is not None else subtotal + tax + tip - discount,
        placed_at=placed,
        version=version if version is not None else epoch_ms(updated),
        lines=tuple(lines),
        promised_at=data.opt_timestamp("promised_at"),
        raw=data.value,
    )


def _status_changed(data: Node) -> OrderStatusObserved:
    at = data.get("at").timestamp()
    version = data.opt_int("version")
    return OrderStatusObserved(
        SOURCE,
        data.get("order_id").text(),
        _enum(data.get("status"), OrderStatus),
        at,
        version if version is not None else epoch_ms(at),
    )


def _loyalty(data: Node) -> LoyaltyPointsChanged:
    account = data.get("account_id").text()
    return LoyaltyPointsChanged(
        source=SOURCE,
        event_id="",  # filled in by parse_event's caller from the event id
        account_external_id=account,
        program=data.opt_text("program") or "default",
        points=data.get("points").integer(),
        kind=(data.opt_text("kind") or "ADJUST").upper(),
        occurred_at=data.opt_timestamp("at"),
        customer=CustomerRef(SOURCE, data.get("customer_id").text()),
        reason=data.opt_text("reason"),
        order_external_id=data.opt_text("order_id"),
    )


def _interaction(data: Node) -> InteractionRecorded:
    return InteractionRecorded(
        source=SOURCE,
        external_id=data.get("id").text(),
        customer=CustomerRef(SOURCE, data.get("customer_id").text()),
        channel=data.get("channel").text().upper(),
        kind=data.get("kind").text().upper(),
        occurred_at=data.get("at").timestamp(),
        subject=data.opt_text("subject"),
        body=data.opt_text("body"),
        order_external_id=data.opt_text("order_id"),
    )


_PARSERS: dict[str, Any] = {
    "store.upserted": _store,
    "catalog_item.upserted": _catalog_item,
    "customer.upserted": _customer,
    "order.upserted": _order,
    "order.status_changed": _status_changed,
    "loyalty.points_changed": _loyalty,
    "interaction.recorded": _interaction,
}
