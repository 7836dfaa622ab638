"""The GraphQL schema: strawberry types, queries, mutations, subscriptions, loaders."""
