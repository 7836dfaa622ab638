"""Identity: the source records merged into a customer, and what identity resolution did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from domain import model
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
    def from_row(cls, row: Any) -> IdentityEvent:
        other = row.other_customer_id
        return cls(
            action=row.action,
            rule=row.rule,
            actor=row.actor,
            at=row.created_at,
            evidence=row.evidence,
            customer_id=to_global_id("Customer", row.customer_id),
            other_customer_id=None if other is None else to_global_id("Customer", other),
            source=None if row.record_source is None else model.Source(row.record_source),
            external_id=row.record_external_id,
        )
