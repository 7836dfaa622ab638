from __future__ import annotations

from typing import Any

import strawberry


@strawberry.type(description="A store (location) guestgraph has seen orders from.")
class Store:
    id: strawberry.ID
    name: str
    timezone: str = strawberry.field(description="IANA time zone, e.g. America/New_York")
    country: str
    currency: str

    @classmethod
    def from_row(cls, row: Any) -> Store:
        return cls(
            id=strawberry.ID(str(row["id"])),
            name=row["name"],
            timezone=row["timezone"],
            country=row["country"],
            currency=row["currency"],
        )
