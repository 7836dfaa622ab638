"""identity: loyalty accounts remember the source record that brought them, ledger entries
the account they were posted to, so a split moves accounts and gives them their entries back

Revision ID: 0005_identity
Revises: 0004_ingest
Create Date: 2026-11-26 06:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_identity"
down_revision: str | None = "0004_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("loyalty_accounts", sa.Column("source_record_id", sa.BigInteger()))
    op.create_foreign_key(
        op.f("fk_loyalty_accounts_source_record_id_source_records"),
        "loyalty_accounts",
        "source_records",
        ["source_record_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("loyalty_ledger", sa.Column("posted_account_id", sa.BigInteger()))
    op.create_foreign_key(
        op.f("fk_loyalty_ledger_posted_account_id_loyalty_accounts"),
        "loyalty_ledger",
        "loyalty_accounts",
        ["posted_account_id"],
        ["id"],
    )
    # Entries a merge already re-homed cannot be told apart: they stay where they are.
    op.execute("UPDATE loyalty_ledger SET posted_account_id = account_id")


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_loyalty_ledger_posted_account_id_loyalty_accounts"),
        "loyalty_ledger",
        type_="foreignkey",
    )
    op.drop_column("loyalty_ledger", "posted_account_id")
    op.drop_constraint(
        op.f("fk_loyalty_accounts_source_record_id_source_records"),
        "loyalty_accounts",
        type_="foreignkey",
    )
    op.drop_column("loyalty_accounts", "source_record_id")
