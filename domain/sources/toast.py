"""Toast: order webhooks carry the full order; money is a decimal number in the
restaurant's currency (converted to minor units half-even; the raw order is kept)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.events import CustomerRef, DomainEvent, Ignored, OrderLine, OrderUpserted, StoreRef
from domain.identity import CustomerRecord
from domain.model import FulfillmentType, Source
from domain.money import to_minor_units
from domain.order_status import toast_status
from domain.sources.common import Node, ParseError, epoch_ms

SOURCE = Source.TOAST
ORDER_EVENT_TYPES = {"order_updated", "channel_order_updated"}
PICKUP_SOURCES = {"ONLINE", "TOAST PICKUP APP", "API", "KIOSK"}


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    restaurant_guid: str | None
    events: list[DomainEvent]


def signed_timestamp(payload: Any) -> str:
    """The envelope ``timestamp`` that Toast appends to the body it signs."""
    return Node(payload).get("timestamp").text()


def restaurant_guid(payload: Any) -> str | None:
    details = Node(payload).opt("details")
    return details.opt_text("restaurantGuid") if details else None


def parse_event(payload: Any, *, currency: str = "USD") -> Envelope:
    """Map one Toast webhook body. ``currency``: the restaurant's (Toast omits it)."""
    root = Node(payload)
    event_id = root.get("guid").text()
    event_type = root.opt_text("eventType") or root.get("eventCategory").text()
    if event_type not in ORDER_EVENT_TYPES:
        return Envelope(
            event_id,
            event_type,
            restaurant_guid(payload),
            [Ignored(f"unhandled Toast event type {event_type}")],
        )
    details = root.get("details")
    restaurant = details.get("restaurantGuid").text()
    order = parse_order(
        details.get("order").value,
        restaurant_guid=restaurant,
        currency=currency,
        path="details.order",
    )
    return Envelope(event_id, event_type, restaurant, [order])


def parse_order(
    order: Any, *, restaurant_guid: str, currency: str = "USD", path: str = "order"
) -> OrderUpserted:
    """Map a full Toast ``Order`` (webhook ``details.order`` or an ordersBulk row)."""
    node = Node(order, path)
    checks = [c for c in node.array("checks") if not _flag(c, "voided") and not _flag(c, "deleted")]
    modified = node.opt("modifiedDate") or node.opt("closedDate") or node.get("openedDate")
    opened = node.opt("openedDate") or node.opt("createdDate") or modified
    modified_at = modified.timestamp()
    delivery = node.opt("deliveryInfo")
    delivery_state = delivery.opt_text("deliveryState") if delivery else None

    def minor(n: Node | None) -> int:
        return 0 if n is None else n.minor_units(currency)

    lines: list[OrderLine] = []
    selection_states: list[str] = []
    subtotal = tax = tip = discount = 0
    for check in checks:
        subtotal += minor(check.opt("amount"))
        tax += minor(check.opt("taxAmount"))
        for payment in check.array("payments"):
            if (payment.opt_text("paymentStatus") or "").upper() not in {"VOIDED", "DENIED"}:
                tip += minor(payment.opt("tipAmount"))
        for applied in check.array("appliedDiscounts"):
            discount += minor(applied.opt("discountAmount"))
        for sel in check.array("selections"):
            if _flag(sel, "voided"):
                continue
            lines.append(_line(sel, currency))
            selection_states.append(sel.opt_text("fulfillmentStatus") or "NEW")
            for applied in sel.array("appliedDiscounts"):
                discount += minor(applied.opt("discountAmount"))
    status = toast_status(
        voided=_flag(node, "voided"),
        deleted=_flag(node, "deleted"),
        approval_status=node.opt_text("approvalStatus"),
        check_payment_statuses=[c.opt_text("paymentStatus") or "OPEN" for c in checks],
        selection_statuses=selection_states,
        delivery_state=delivery_state,
    )
    source_name = node.opt_text("source") or "In Store"
    return OrderUpserted(
        source=SOURCE,
        external_id=node.get_text("guid"),
        store=StoreRef(SOURCE, restaurant_guid),
        customer=_customer(checks, modified_at),
        status=status,
        status_at=modified_at,
        fulfillment=_fulfillment(delivery, source_name),
        channel=source_name.upper().replace(" ", "_"),
        currency=currency,
        subtotal_amount=subtotal + discount,
        tax_amount=tax,
        tip_amount=tip,
        discount_amount=discount,
        total_amount=subtotal + tax + tip,
        placed_at=opened.timestamp(),
        version=epoch_ms(modified_at),
        lines=tuple(lines),
        promised_at=node.opt_timestamp("promisedDate"),
        raw=order,
    )


def _flag(node: Node, key: str) -> bool:
    value = node.value
    if type(value) is dict:  # the usual shape, read directly; anything else is checked
        flag = value.get(key)
        if flag is None or flag is False:
            return False
        if flag is True:
            return True
    child = node.opt(key)
    return child.boolean() if child is not None else False


def _line(sel: Node, currency: str) -> OrderLine:
    quantity_node = sel.opt("quantity")
    quantity = quantity_node.number() if quantity_node else Decimal(1)
    if quantity <= 0:
        raise ParseError(f"{sel.path}.quantity", "must be positive")
    gross = sel.opt("preDiscountPrice") or sel.opt("price")
    gross_amount = gross.number() if gross else Decimal(0)
    net = sel.opt("price")
    item = sel.opt("item")
    return OrderLine(
        name=sel.opt_text("displayName") or "Item",
        quantity=quantity,
        unit_price_amount=to_minor_units(gross_amount / quantity, currency),
        total_amount=net.minor_units(currency) if net else 0,
        external_id=sel.opt_text("guid"),
        catalog_external_id=item.opt_text("guid") if item else None,
        modifiers=tuple(m.opt_text("displayName") or "modifier" for m in sel.array("modifiers")),
    )


def _fulfillment(delivery: Node | None, source_name: str) -> FulfillmentType:
    if delivery is not None:
        return FulfillmentType.DELIVERY
    if source_name.upper() in PICKUP_SOURCES:
        return FulfillmentType.PICKUP
    return FulfillmentType.DINE_IN


def _customer(checks: list[Node], observed_at: Any) -> CustomerRef | None:
    for check in checks:
        guest = check.opt("customer")
        if guest is None:
            continue
        email = guest.opt_text("email")
        external = guest.opt_text("guid") or (email.lower() if email else None)
        if external is None:
            continue
        phone = guest.opt_text("phone")
        code = guest.opt_text("phoneCountryCode")
        if phone and code and not phone.startswith("+"):
            phone = f"+{code.lstrip('+')} {phone}"
        loyalty = check.opt("appliedLoyaltyInfo")
        record = CustomerRecord(
            source=SOURCE,
            external_id=external,
            given_name=guest.opt_text("firstName"),
            family_name=guest.opt_text("lastName"),
            email=email,
            phone=phone,
            loyalty_id=loyalty.opt_text("loyaltyIdentifier") if loyalty else None,
            observed_at=observed_at,
            version=epoch_ms(observed_at),
        )
        return CustomerRef(SOURCE, external, record)
    return None
