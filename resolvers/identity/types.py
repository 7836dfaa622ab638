"""Identity: the source records merged into a customer, and what identity resolution did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from domain import model
from readmodel import identity
from resolvers.enums import Source
from resolvers.node import to_global_id


@strawberry.type(description="One source record (a POS customer, a CRM contact) of a customer.")
class Identity:
    source: Source
    external_id: str = strawberry.field(description="The record's id in its source.")
    matched_by: str = strawberry.field(
        description="The rule that linked it to this customer (new, email, phone, manual...)."
    )
    linked_at: datetime

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Identity:
        return cls(
            source=model.Source(item["source"]),
            external_id=item["external_id"],
            matched_by=item["matched_by"],
            linked_at=datetime.fromisoformat(item["linked_at"]),
        )


@strawberry.type(description="One step identity resolution took: create, link, merge, split.")
class IdentityEvent:
    action: str = strawberry.field(description="create, link, merge, split or unlink.")
    rule: str = strawberry.field(description="Why: the matching rule, or manual.")
    actor: str = strawberry.field(description="Who did it: ingest, or a support user.")
    at: datetime
    evidence: JSON = strawberry.field(description="What the rule matched on.")
    customer_id: strawberry.ID = strawberry.field(description="The customer acted on.")
    other_customer_id: strawberry.ID | None = strawberry.field(
        description="The other customer of a merge or split."
    )
    source: Source | None = strawberry.field(description="Source of the record involved.")
    external_id: str | None = strawberry.field(description="Id of the record involved.")

    @classmethod
    def from_event(cls, event: identity.IdentityEvent) -> IdentityEvent:
        other = event.other_customer_id
        return cls(
            action=event.action,
            rule=event.rule,
            actor=event.actor,
            at=event.at,
            evidence=event.evidence,  # type: ignore[arg-type]  # JSON scalar holds dicts
            customer_id=to_global_id("Customer", event.customer_id),
            other_customer_id=None if other is None else to_global_id("Customer", other),
            source=event.source,
            external_id=event.external_id,
        )
