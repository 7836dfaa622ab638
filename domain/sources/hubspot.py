"""HubSpot: a webhook body is a JSON array of contact events; contacts come from CRM v3.

Every property value in HubSpot is a string. ``occurredAt`` (epoch ms) orders a contact's
changes: it is the record version, so an older property change never overwrites a newer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.events import (
    ContactFetchNeeded,
    CustomerDeleted,
    CustomersMerged,
    CustomerUpserted,
    DomainEvent,
    Ignored,
)
from domain.identity import CustomerRecord
from domain.model import Source
from domain.sources.common import Node, ParseError, epoch_ms

SOURCE = Source.HUBSPOT

# HubSpot property → CustomerRecord field
FIELDS = {
    "email": "email",
    "firstname": "given_name",
    "lastname": "family_name",
    "phone": "phone",
    "mobilephone": "phone",
}
KEPT_ATTRIBUTES = ("lifecyclestage", "hs_marketable_status", "company", "city", "country")


@dataclass(frozen=True)
class Delivery:
    """One event of a HubSpot batch: its own id, type and raw JSON, and what it means."""

    event_id: str
    event_type: str
    raw: Any
    events: list[DomainEvent]


def parse_batch(payload: Any) -> list[Delivery]:
    """Map a HubSpot webhook body. Raises ParseError (naming the event's index)."""
    root = Node(payload)
    if not isinstance(payload, list):
        raise ParseError("", "expected a JSON array of events")
    return [_delivery(event) for event in root.children()]


def _delivery(event: Node) -> Delivery:
    event_id = event.get("eventId").text()
    kind = event.get("subscriptionType").text()
    return Delivery(event_id, kind, event.value, _events_for(kind, event))


def _events_for(kind: str, event: Node) -> list[DomainEvent]:
    if kind == "contact.creation":
        return [ContactFetchNeeded(SOURCE, event.get("objectId").text())]
    if kind == "contact.propertyChange":
        return _property_change(event)
    if kind == "contact.merge":
        winner = event.get("primaryObjectId").text()
        losers = tuple(
            i.text() for i in event.get("mergedObjectIds").children() if i.text() != winner
        )
        return [CustomersMerged(SOURCE, winner, losers)]
    if kind in {"contact.deletion", "contact.privacyDeletion"}:
        return [
            CustomerDeleted(
                SOURCE,
                event.get("objectId").text(),
                event.opt_timestamp("occurredAt"),
                erase=kind == "contact.privacyDeletion",
            )
        ]
    return [Ignored(f"unhandled HubSpot subscription type {kind}")]


def _property_change(event: Node) -> list[DomainEvent]:
    name = event.get("propertyName").text()
    value = event.opt("propertyValue")
    text = value.value if value is not None and isinstance(value.value, str) else None
    occurred = event.get("occurredAt").timestamp()
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    if name in FIELDS:
        fields[FIELDS[name]] = text or None
    else:
        attributes[name] = text
    record = CustomerRecord(
        source=SOURCE,
        external_id=event.get("objectId").text(),
        observed_at=occurred,
        version=epoch_ms(occurred),
        attributes=attributes,
        **fields,
    )
    return [CustomerUpserted(record, partial=True, changed=frozenset(fields))]


def parse_contact(contact: Any, *, path: str = "contact") -> CustomerRecord:
    """Map a CRM v3 contact ``{id, properties{...}, updatedAt}``."""
    node = Node(contact, path)
    props = node.get("properties")
    updated = node.opt("updatedAt") or props.opt("lastmodifieddate")
    updated_at = updated.timestamp() if updated else None
    return CustomerRecord(
        source=SOURCE,
        external_id=node.get("id").text(),
        given_name=props.opt_text("firstname"),
        family_name=props.opt_text("lastname"),
        email=props.opt_text("email"),
        phone=props.opt_text("phone") or props.opt_text("mobilephone"),
        observed_at=updated_at,
        version=epoch_ms(updated_at) if updated_at else None,
        attributes={k: props.get(k).value for k in KEPT_ATTRIBUTES if props.has(k)},
    )
