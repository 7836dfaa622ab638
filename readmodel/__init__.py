"""PostgreSQL and the change feed: tables, the projector, batched queries, fan-out."""
