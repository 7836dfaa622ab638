"""The one schema: every domain's queries, mutations and subscriptions merged."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers.live.subscriptions import LiveSubscriptions
from resolvers.stores.queries import StoreQueries


@strawberry.type
class Query(StoreQueries):
    pass


@strawberry.type
class Subscription(LiveSubscriptions):
    pass


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True),
    )


schema = build_schema()


def export_schema() -> str:
    """The SDL that ``schema.graphql`` in the repo must equal."""
    return schema.as_str() + "\n"
