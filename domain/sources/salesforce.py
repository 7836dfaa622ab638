"""Salesforce change data capture for ``Contact``, relayed by the customer's middleware.

A merge arrives as a DELETE of the losing records whose ``MasterRecordId`` is the winner.
``commitTimestamp`` (epoch ms) is the record version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.events import CustomerDeleted, CustomersMerged, CustomerUpserted, DomainEvent, Ignored
from domain.identity import CustomerRecord
from domain.model import Source
from domain.sources.common import Node, epoch_ms

SOURCE = Source.SALESFORCE

FIELDS = {
    "FirstName": "given_name",
    "LastName": "family_name",
    "Email": "email",
    "Phone": "phone",
    "MobilePhone": "phone",
}
KEPT_ATTRIBUTES = ("HasOptedOutOfEmail", "AccountId", "MailingCountry")


@dataclass(frozen=True)
class Envelope:
    event_id: str | None
    event_type: str
    events: list[DomainEvent]


def parse_event(payload: Any) -> Envelope:
    """Map one relayed change event. The event id is ``transactionKey:sequenceNumber``
    when the header carries them (else None: the caller uses the delivery id)."""
    root = Node(payload)
    header = root.get("ChangeEventHeader")
    change = header.get("changeType").text().upper()
    entity = header.get("entityName").text()
    key, seq = header.opt_text("transactionKey"), header.opt_text("sequenceNumber")
    event_id = f"{key}:{seq}" if key and seq else None
    event_type = f"{entity}.{change}"
    if entity != "Contact":
        return Envelope(event_id, event_type, [Ignored(f"unhandled entity {entity}")])
    ids = [i.text() for i in header.get("recordIds").children()]
    committed = header.get("commitTimestamp").timestamp()
    if change in {"CREATE", "UPDATE", "UNDELETE"}:
        # nulledFields: fields the change set to null (absent from the body)
        nulled = {n.text() for n in header.array("nulledFields")}
        touched = frozenset(f for sf, f in FIELDS.items() if root.has(sf) or sf in nulled)
        events: list[DomainEvent] = [
            CustomerUpserted(
                _record(root, rid, committed), partial=change != "CREATE", changed=touched
            )
            for rid in ids
        ]
        return Envelope(event_id, event_type, events)
    if change == "DELETE":
        master = root.opt_text("MasterRecordId")
        events = [CustomerDeleted(SOURCE, rid, committed, merged_into=master) for rid in ids]
        if master:
            losers = tuple(rid for rid in ids if rid != master)
            events.append(CustomersMerged(SOURCE, master, losers))
        return Envelope(event_id, event_type, events)
    return Envelope(event_id, event_type, [Ignored(f"unhandled change type {change}")])


def _record(root: Node, record_id: str, committed: Any) -> CustomerRecord:
    fields: dict[str, Any] = {}
    for sf_name, field_name in FIELDS.items():
        if root.has(sf_name) and field_name not in fields:
            fields[field_name] = root.opt_text(sf_name)
    return CustomerRecord(
        source=SOURCE,
        external_id=record_id,
        observed_at=committed,
        version=epoch_ms(committed),
        attributes={k: root.get(k).value for k in KEPT_ATTRIBUTES if root.has(k)},
        **fields,
    )
