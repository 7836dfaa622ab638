"""traits: customers whose traits an import owes (recomputed once at the import's end)

Revision ID: 0007_traits
Revises: 0006_ingest
Create Date: 2026-11-26 08:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_traits"
down_revision: str | None = "0006_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "traits_owed",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "owed_since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_traits_owed_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_traits_owed")),
    )


def downgrade() -> None:
    op.drop_table("traits_owed")
