"""ingest: each reported order status is kept once per source version

Revision ID: 0004_ingest
Revises: 0003_auth
Create Date: 2026-11-26 02:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_ingest"
down_revision: str | None = "0003_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_order_status_history_order_id_status_source_version"),
        "order_status_history",
        ["order_id", "status", "source_version"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_order_status_history_order_id_status_source_version"),
        "order_status_history",
        type_="unique",
    )
