"""``updatePreferences``, and what every customer mutation shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import ConsentChannel
from readmodel import commands
from resolvers.context import Info
from resolvers.customers.types import Customer
from resolvers.errors import CustomerNotFound, InvalidInput, Rejected, UserError
from resolvers.idempotency import in_transaction
from resolvers.node import db_id_of
from resolvers.permissions import requires

MAX_LIST_ITEMS = 50
MAX_ITEM_LENGTH = 64


async def customer_for_update(conn: AsyncConnection, info: Info, global_id: str, field: str) -> int:
    """The (surviving) customer's database id, locked; raises Rejected when there is none."""
    customer_id = db_id_of(global_id, "Customer")
    if customer_id is None:
        raise Rejected(InvalidInput(field=field, message=f"{field} is not a customer id"))
    found = await commands.visible_customer_id(conn, customer_id, info.context.store_scope)
    if found is None:
        raise Rejected(
            CustomerNotFound(customer_id=strawberry.ID(global_id), message="customer not found")
        )
    return found


async def fresh_customer(info: Info, customer_id: int) -> Customer:
    """The customer as committed now (not as this request's loaders cached it)."""
    info.context.reset_loaders()
    row = await info.context.loaders.customer_by_id.load(customer_id)
    if row is None:
        raise LookupError(f"customer {customer_id} vanished after a committed mutation")
    return Customer.from_row(row)


def text_value(value: str, field: str, *, max_length: int) -> str:
    """``value`` trimmed; Rejected when blank or longer than ``max_length``."""
    trimmed = value.strip()
    if not trimmed or len(trimmed) > max_length:
        raise Rejected(
            InvalidInput(field=field, message=f"{field} must be 1 to {max_length} characters")
        )
    return trimmed


def optional_text(value: str | None, field: str, *, max_length: int) -> str | None:
    return (
        None
        if value is None or not value.strip()
        else text_value(value, field, max_length=max_length)
    )


def tag_list(values: list[str] | None, field: str) -> list[str] | None:
    if values is None:
        return None
    if len(values) > MAX_LIST_ITEMS:
        raise Rejected(
            InvalidInput(field=field, message=f"{field} takes at most {MAX_LIST_ITEMS} items")
        )
    cleaned = [text_value(v, field, max_length=MAX_ITEM_LENGTH).lower() for v in values]
    return sorted(set(cleaned))


@strawberry.input(description="A marketing consent to record.")
class MarketingConsentInput:
    channel: ConsentChannel
    granted: bool


@strawberry.input(description="Preferences to change; an omitted list stays as it is.")
class UpdatePreferencesInput:
    customer_id: strawberry.ID
    dietary: list[str] | None = None
    allergens: list[str] | None = None
    cuisines: list[str] | None = None
    marketing_consent: list[MarketingConsentInput] | None = None


@strawberry.type(description="The preferences were saved.")
class UpdatePreferencesSuccess:
    customer: Customer


UpdatePreferencesPayload = Annotated[
    UpdatePreferencesSuccess | CustomerNotFound | InvalidInput,
    strawberry.union("UpdatePreferencesPayload"),
]


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(
        description="Replace the given preference lists and record marketing consents. "
        "Idempotent by nature: repeating it changes nothing more.",
        extensions=[requires("customers:write")],
    )
    async def update_preferences(
        self, info: Info, input: UpdatePreferencesInput
    ) -> UpdatePreferencesPayload:
        async def effect(conn: AsyncConnection) -> dict[str, Any]:
            customer_id = await customer_for_update(conn, info, input.customer_id, "customerId")
            consents = input.marketing_consent or []
            if len({c.channel for c in consents}) != len(consents):
                raise Rejected(
                    InvalidInput(field="marketingConsent", message="one entry per channel")
                )
            await commands.update_preferences(
                conn,
                customer_id,
                dietary=tag_list(input.dietary, "dietary"),
                allergens=tag_list(input.allergens, "allergens"),
                cuisines=tag_list(input.cuisines, "cuisines"),
                consents=[(c.channel.value, c.granted) for c in consents],
                actor=info.context.viewer.subject,
                now=datetime.now(UTC),
            )
            return {"customer_id": customer_id}

        outcome = await in_transaction(info, effect)
        if isinstance(outcome, UserError):
            return outcome  # type: ignore[return-value]
        customer = await fresh_customer(info, outcome["customer_id"])
        return UpdatePreferencesSuccess(customer=customer)
