"""The one schema: every domain's queries, mutations and subscriptions merged."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from resolvers.customers.mutations import CustomerMutations
from resolvers.customers.queries import CustomerQueries
from resolvers.descriptions import describe_fields
from resolvers.errors import MaskUnexpectedErrors
from resolvers.execution import LeanExecutor, mark_lean_fields
from resolvers.identity.mutations import IdentityMutations
from resolvers.interactions.mutations import InteractionMutations
from resolvers.live.subscriptions import LiveSubscriptions
from resolvers.loyalty.mutations import LoyaltyMutations
from resolvers.node_query import NodeQueries
from resolvers.orders.queries import OrderQueries
from resolvers.stores.queries import StoreQueries

DOCUMENT_CACHE_SIZE = 512


@strawberry.type
class Query(NodeQueries, CustomerQueries, OrderQueries, StoreQueries):
    pass


@strawberry.type
class Mutation(CustomerMutations, InteractionMutations, LoyaltyMutations, IdentityMutations):
    pass


@strawberry.type
class Subscription(LiveSubscriptions):
    pass


def build_schema() -> strawberry.Schema:
    built = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=LeanExecutor,
        extensions=[
            MaskUnexpectedErrors,
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        ],
    )
    describe_fields(built._schema)
    mark_lean_fields(built._schema)
    return built


schema = build_schema()


def export_schema() -> str:
    """The SDL that ``schema.graphql`` in the repo must equal."""
    return schema.as_str() + "\n"
