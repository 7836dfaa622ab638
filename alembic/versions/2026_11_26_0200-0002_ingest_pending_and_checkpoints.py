"""ingest: pending inbox rows, status backlog, import checkpoints

Revision ID: 0002_ingest
Revises: 0001
Create Date: 2026-11-26 02:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ingest"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_ingest_inbox_status"), "ingest_inbox", type_="check")
    op.create_check_constraint(
        "status", "ingest_inbox", "status IN ('applied', 'duplicate', 'rejected', 'pending')"
    )
    op.add_column(
        "ingest_inbox", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_ingest_inbox_pending",
        "ingest_inbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "order_status_backlog",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("order_external_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "source",
            "order_external_id",
            "status",
            "source_version",
            name=op.f("pk_order_status_backlog"),
        ),
    )
    op.create_table(
        "import_checkpoints",
        sa.Column("file_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("file_key", name=op.f("pk_import_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("import_checkpoints")
    op.drop_table("order_status_backlog")
    op.drop_index("ix_ingest_inbox_pending", table_name="ingest_inbox")
    op.drop_column("ingest_inbox", "next_attempt_at")
    op.drop_constraint(op.f("ck_ingest_inbox_status"), "ingest_inbox", type_="check")
    op.create_check_constraint(
        "status", "ingest_inbox", "status IN ('applied', 'duplicate', 'rejected')"
    )
