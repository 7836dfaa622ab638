"""Square: webhook envelopes, full orders (from the Orders API), customers, loyalty.

Order webhooks are thin (ids, version, state): they map to ``OrderFetchNeeded``, plus an
``OrderStatusObserved`` for a fulfillment state change, which applies at once. Money is
already in minor units (``{amount, currency}``); quantities are strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.events import (
    CustomerDeleted,
    CustomerRef,
    CustomersMerged,
    CustomerUpserted,
    DomainEvent,
    Ignored,
    LoyaltyAccountLinked,
    LoyaltyPointsChanged,
    OrderFetchNeeded,
    OrderLine,
    OrderStatusObserved,
    OrderUpserted,
    StoreRef,
)
from domain.identity import CustomerRecord
from domain.model import FulfillmentType, Source
from domain.order_status import square_status
from domain.sources.common import Node, ParseError, currency_code

SOURCE = Source.SQUARE

FULFILLMENT_TYPES = {
    "PICKUP": FulfillmentType.PICKUP,
    "DELIVERY": FulfillmentType.DELIVERY,
    "SHIPMENT": FulfillmentType.DELIVERY,
}

# Ledger event type → sign of its points (None: the detail's points as sent).
LOYALTY_SIGNS: dict[str, int | None] = {
    "ACCUMULATE_POINTS": 1,
    "ACCUMULATE_PROMOTION_POINTS": 1,
    "CREATE_REWARD": -1,
    "DELETE_REWARD": 1,
    "REDEEM_REWARD": 0,
    "EXPIRE_POINTS": -1,
    "ADJUST_POINTS": None,
    "OTHER": None,
}


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    events: list[DomainEvent]


def parse_event(payload: Any) -> Envelope:
    """Map one Square webhook body (already JSON-decoded). Raises ParseError."""
    root = Node(payload)
    event_id = root.get("event_id").text()
    event_type = root.get("type").text()
    return Envelope(event_id, event_type, _events_for(event_type, root))


def _events_for(event_type: str, root: Node) -> list[DomainEvent]:
    if event_type in {"order.created", "order.updated", "order.fulfillment.updated"}:
        return _thin_order(root.get("data").get("object"))
    if event_type in {"customer.created", "customer.updated"}:
        return _customer_upserted(root.get("data").get("object"))
    if event_type == "customer.deleted":
        return _customer_deleted(root.get("data").get("object"))
    if event_type == "loyalty.event.created":
        return [_loyalty_event(root.get("data").get("object").get("loyalty_event"))]
    if event_type in {"loyalty.account.created", "loyalty.account.updated"}:
        account = root.get("data").get("object").get("loyalty_account")
        return [_loyalty_account(account)]
    return [Ignored(f"unhandled Square event type {event_type}")]


def _thin_order(obj: Node) -> list[DomainEvent]:
    body = next(
        (
            obj.opt(k)
            for k in ("order_fulfillment_updated", "order_updated", "order_created")
            if obj.has(k)
        ),
        None,
    )
    if body is None:
        raise ParseError(
            obj.path, "expected order_created, order_updated or order_fulfillment_updated"
        )
    order_id = body.get("order_id").text()
    version = body.opt("version")
    version_number = version.integer() if version else None
    events: list[DomainEvent] = [OrderFetchNeeded(SOURCE, order_id, version_number)]
    updates = body.array("fulfillment_update")
    if updates:
        state = body.get("state").text()
        at_node = body.opt("updated_at") or body.get("created_at")
        new_states = [u.get("new_state").text() for u in updates]
        events.append(
            OrderStatusObserved(
                SOURCE,
                order_id,
                square_status(state, new_states),
                at_node.timestamp(),
                version_number,
            )
        )
    return events


def parse_order(order: Any, *, path: str = "order") -> OrderUpserted:
    """Map a full Square ``Order`` (RetrieveOrder / BatchRetrieveOrders / an export row)."""
    node = Node(order, path)
    order_currency = node.get("total_money").get("currency")
    currency = currency_code(order_currency)

    def money(key: str, within: Node = node) -> int:
        # the usual shape first, read straight from the JSON; anything else (and every
        # error) takes the checked way below
        obj = within.value
        if type(obj) is dict:
            amounts = obj.get(key)
            if amounts is None:
                return 0
            if type(amounts) is dict:
                code, amount = amounts.get("currency"), amounts.get("amount")
                if type(amount) is int and (
                    code is None or (type(code) is str and code == order_currency.value)
                ):
                    return amount
        child = within.opt(key)
        if child is None:
            return 0
        code = child.opt("currency")
        # the order's own currency text, as checked above, needs no second look
        if (
            code is not None
            and not (type(code.value) is str and code.value == order_currency.value)
            and currency_code(code) != currency
        ):
            raise ParseError(child.path, f"currency differs from the order's {currency}")
        return child.get("amount").integer()

    fulfillments = node.array("fulfillments")
    status = square_status(node.get_text("state"), [f.get_text("state") for f in fulfillments])
    updated = node.opt("updated_at") or node.get("created_at")
    created = node.opt("created_at") or updated
    total_amount = money("total_money")
    tax, tip, discount = (
        money("total_tax_money"),
        money("total_tip_money"),
        money("total_discount_money"),
    )
    customer_id = node.opt("customer_id")
    source_name = node.opt("source")
    channel = source_name.get_text("name") if source_name and source_name.has("name") else "POS"
    return OrderUpserted(
        source=SOURCE,
        external_id=node.get_text("id"),
        store=StoreRef(SOURCE, node.get_text("location_id"), currency=currency),
        customer=CustomerRef(SOURCE, customer_id.text()) if customer_id else None,
        status=status,
        status_at=updated.timestamp(),
        fulfillment=_fulfillment_type(fulfillments),
        channel=channel.upper(),
        currency=currency,
        subtotal_amount=total_amount - tax - tip + discount,
        tax_amount=tax,
        tip_amount=tip,
        discount_amount=discount,
        total_amount=total_amount,
        placed_at=created.timestamp(),
        version=node.opt_int("version"),
        lines=tuple(_line(li, money) for li in node.array("line_items")),
        promised_at=_promised_at(fulfillments),
        raw=order,
    )


def _line(li: Node, money: Any) -> OrderLine:
    quantity = li.get("quantity").number()
    unit = money("base_price_money", li)
    line_total = money("total_money", li) if li.has("total_money") else int(unit * quantity)
    catalog = li.opt("catalog_object_id")
    return OrderLine(
        name=li.opt_text("name") or "Custom amount",
        quantity=quantity,
        unit_price_amount=unit,
        total_amount=line_total,
        external_id=li.opt_text("uid"),
        catalog_external_id=catalog.text() if catalog else None,
        modifiers=tuple(m.get_text("name") for m in li.array("modifiers") if m.has("name")),
    )


def _fulfillment_type(fulfillments: list[Node]) -> FulfillmentType:
    for f in fulfillments:
        kind = f.opt("type")
        if kind is not None:
            found = FULFILLMENT_TYPES.get(kind.text().upper())
            if found is not None:
                return found
    return FulfillmentType.DINE_IN


def _promised_at(fulfillments: list[Node]) -> Any:
    for f in fulfillments:
        for details, key in (("pickup_details", "pickup_at"), ("delivery_details", "deliver_at")):
            d = f.opt(details)
            if d is not None and d.has(key):
                return d.get(key).timestamp()
    return None


def parse_customer(customer: Any, *, path: str = "customer") -> CustomerRecord:
    """Map a full Square ``Customer``."""
    node = Node(customer, path)
    updated = node.opt("updated_at") or node.opt("created_at")
    preferences = node.opt("preferences")
    attributes: dict[str, Any] = {}
    for key in ("birthday", "reference_id", "creation_source", "nickname", "company_name"):
        if node.has(key):
            attributes[key] = node.get(key).value
    if preferences is not None and preferences.has("email_unsubscribed"):
        attributes["email_unsubscribed"] = preferences.get("email_unsubscribed").boolean()
    return CustomerRecord(
        source=SOURCE,
        external_id=node.get("id").text(),
        given_name=node.opt_text("given_name"),
        family_name=node.opt_text("family_name"),
        email=node.opt_text("email_address"),
        phone=node.opt_text("phone_number"),
        observed_at=updated.timestamp() if updated else None,
        version=node.opt_int("version"),
        attributes=attributes,
    )


def _merge(obj: Node) -> CustomersMerged | None:
    context = obj.opt("event_context")
    merge = context.opt("merge") if context else None
    if merge is None:
        return None
    winner = merge.get("to_customer_id").text()
    losers = tuple(
        i.text() for i in merge.get("from_customer_ids").children() if i.text() != winner
    )
    return CustomersMerged(SOURCE, winner, losers)


def _customer_upserted(obj: Node) -> list[DomainEvent]:
    events: list[DomainEvent] = [
        CustomerUpserted(parse_customer(obj.get("customer").value, path=f"{obj.path}.customer"))
    ]
    merged = _merge(obj)
    if merged is not None:
        events.append(merged)
    return events


def _customer_deleted(obj: Node) -> list[DomainEvent]:
    customer = obj.get("customer")
    merged = _merge(obj)
    updated = customer.opt("updated_at")
    events: list[DomainEvent] = [
        CustomerDeleted(
            SOURCE,
            customer.get("id").text(),
            updated.timestamp() if updated else None,
            merged_into=merged.winner_external_id if merged else None,
        )
    ]
    if merged is not None:
        events.append(merged)
    return events


def account_customer(account_id: str, customer_id: str | None, phone: str | None) -> CustomerRef:
    """Who a loyalty account belongs to: its Square customer when known; else a record
    keyed by the account (identity resolution can match it by phone / loyalty id)."""
    if customer_id:
        return CustomerRef(SOURCE, customer_id)
    external = f"loyalty-account:{account_id}"
    record = CustomerRecord(SOURCE, external, phone=phone, loyalty_id=account_id)
    return CustomerRef(SOURCE, external, record)


def _loyalty_account(account: Node) -> LoyaltyAccountLinked:
    account_id = account.get("id").text()
    mapping = account.opt("mapping")
    phone = mapping.get("phone_number").text() if mapping and mapping.has("phone_number") else None
    customer = account.opt("customer_id")
    return LoyaltyAccountLinked(
        SOURCE,
        account_id,
        account.opt_text("program_id") or "square",
        account_customer(account_id, customer.text() if customer else None, phone),
    )


def _loyalty_event(event: Node) -> LoyaltyPointsChanged:
    kind = event.get("type").text().upper()
    detail = event.opt(kind.lower())
    raw_points = detail.get("points").integer() if detail and detail.has("points") else 0
    sign = LOYALTY_SIGNS.get(kind)
    points = raw_points if sign is None else sign * abs(raw_points)
    program = "square"
    if detail is not None and detail.has("loyalty_program_id"):
        program = detail.get("loyalty_program_id").text()
    order = detail.opt("order_id") if detail else None
    reason = detail.opt("reason") if detail else None
    account_id = event.get("loyalty_account_id").text()
    created = event.opt("created_at")
    return LoyaltyPointsChanged(
        source=SOURCE,
        event_id=event.get("id").text(),
        account_external_id=account_id,
        program=program,
        points=points,
        kind=kind,
        occurred_at=created.timestamp() if created else None,
        customer=account_customer(account_id, None, None),
        reason=reason.text() if reason else None,
        order_external_id=order.text() if order else None,
    )


def quantity_text(value: Decimal) -> str:
    """Square's string form of a quantity."""
    return format(value.normalize(), "f")
