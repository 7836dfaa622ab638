from __future__ import annotations

import re
from datetime import datetime

import strawberry

from domain.normalize import email_key, phone_key
from readmodel import queries
from readmodel.queries import CustomerQuery
from resolvers.context import Info
from resolvers.customers.types import Customer
from resolvers.enums import Source
from resolvers.errors import UserInputError
from resolvers.node import db_id_of
from resolvers.pagination import Connection, build_connection, window_of
from resolvers.permissions import requires

CUSTOMER_CURSOR = "customers"
MIN_SEARCH_LENGTH = 3
MAX_SEARCH_LENGTH = 200
MAX_CONTACT_LENGTH = 320
MAX_FOUND = 50
DEFAULT_PHONE_REGION = "US"
_PHONE_LIKE = re.compile(r"^[\d\s()+.\-]+$")


@strawberry.type(description="A page of customers, oldest first.")
class CustomerConnection(Connection[Customer]):
    pass


@strawberry.input(description="Narrows a list of customers; every given condition must hold.")
class CustomerFilter:
    visited_store_id: strawberry.ID | None = strawberry.field(
        default=None, description="Has ordered at this store."
    )
    last_order_after: datetime | None = strawberry.field(
        default=None, description="Last ordered at or after this time."
    )
    last_order_before: datetime | None = strawberry.field(
        default=None, description="Last ordered before this time."
    )
    search: str | None = strawberry.field(
        default=None,
        description=(
            f"Text in the name, email or phone ({MIN_SEARCH_LENGTH}-{MAX_SEARCH_LENGTH} "
            "characters, case-insensitive; for a phone, digits are matched)."
        ),
    )

    def to_query(self) -> CustomerQuery:
        store_id = None
        if self.visited_store_id is not None:
            store_id = db_id_of(self.visited_store_id, "Store")
            if store_id is None:
                raise UserInputError("`filter.visitedStoreId` is not a store id", argument="filter")
        return CustomerQuery(
            visited_store_id=store_id,
            last_order_after=self.last_order_after,
            last_order_before=self.last_order_before,
            search=None if self.search is None else normalized_search(self.search),
        )


def normalized_search(text: str) -> str:
    """Lower-cased search text; a phone-like search keeps only its digits."""
    if len(text) > MAX_SEARCH_LENGTH:
        raise UserInputError(
            f"`filter.search` must be at most {MAX_SEARCH_LENGTH} characters", argument="filter"
        )
    text = " ".join(text.split()).lower()
    if _PHONE_LIKE.match(text) and any(c.isdigit() for c in text):
        text = "".join(c for c in text if c.isdigit())
    if len(text) < MIN_SEARCH_LENGTH:
        raise UserInputError(
            f"`filter.search` must be at least {MIN_SEARCH_LENGTH} characters", argument="filter"
        )
    return text


async def customer_by_db_id(info: Info, customer_id: int) -> Customer | None:
    row = await info.context.loaders.customer_by_id.load(customer_id)
    return None if row is None else Customer.from_row(row)


@strawberry.type
class CustomerQueries:
    @strawberry.field(
        description="A customer by global id (a merged-away id answers with the survivor); "
        "null if unknown or not visible.",
        extensions=[requires("customers:read")],
    )
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        customer_id = db_id_of(id, "Customer")
        return None if customer_id is None else await customer_by_db_id(info, customer_id)

    @strawberry.field(
        description="The customer a source record belongs to.",
        extensions=[requires("customers:read")],
    )
    async def customer_by_identity(
        self, info: Info, source: Source, external_id: str
    ) -> Customer | None:
        if len(external_id) > MAX_CONTACT_LENGTH:
            return None
        rows = await queries.customer_ids_by_identity(
            info.context.reader, source.value, external_id
        )
        return None if not rows else await customer_by_db_id(info, rows[0].customer_id)

    @strawberry.field(
        description="Customers with this email (case-insensitive) or phone (any format; "
        "US numbers may omit +1), golden or from any source record.",
        extensions=[requires("customers:read")],
    )
    async def find_customers(
        self, info: Info, email: str | None = None, phone: str | None = None
    ) -> list[Customer]:
        if email is None and phone is None:
            raise UserInputError("give `email` or `phone`")
        if len(email or "") > MAX_CONTACT_LENGTH or len(phone or "") > MAX_CONTACT_LENGTH:
            raise UserInputError(f"`email` and `phone` take at most {MAX_CONTACT_LENGTH} chars")
        e164 = phone_key(phone, DEFAULT_PHONE_REGION)
        normalized_email = email_key(email)
        if not normalized_email and not e164:
            return []
        ids = await queries.customer_ids_by_contact(
            info.context.reader, email=normalized_email, phone=e164
        )
        rows = await info.context.loaders.customer_by_id.load_many(ids[:MAX_FOUND])
        unique = {row.id: row for row in rows if row is not None}
        return [Customer.from_row(row) for row in unique.values()]

    @strawberry.field(
        description="Customers the caller may see, oldest first.",
        extensions=[requires("customers:read")],
    )
    async def customers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: CustomerFilter | None = None,
    ) -> CustomerConnection:
        window = window_of(
            CUSTOMER_CURSOR, (int,), first=first, after=after, last=last, before=before
        )
        query = CustomerQuery() if filter is None else filter.to_query()
        engine, scope = info.context.reader, info.context.store_scope
        rows = await queries.customer_page(engine, query, window, scope)

        async def count() -> int:
            return await queries.customer_count(engine, query, scope)

        return build_connection(
            CustomerConnection,
            rows,
            window,
            kind=CUSTOMER_CURSOR,
            key_of=lambda row: (row.id,),
            node_of=Customer.from_row,
            count=count,
        )

    @strawberry.field(description="The signed-in customer (customer tokens); null otherwise.")
    async def me(self, info: Info) -> Customer | None:
        customer_id = info.context.viewer.customer_id
        return None if customer_id is None else await customer_by_db_id(info, customer_id)
