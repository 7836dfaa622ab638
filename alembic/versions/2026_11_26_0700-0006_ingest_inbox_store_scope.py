"""ingest: an inbox row keeps the store scope its events were limited to, so a replay
applies them under the same limit

Revision ID: 0006_ingest
Revises: 0005_identity
Create Date: 2026-11-26 07:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_ingest"
down_revision: str | None = "0005_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingest_inbox", sa.Column("store_scope", postgresql.ARRAY(sa.BigInteger())))


def downgrade() -> None:
    op.drop_column("ingest_inbox", "store_scope")
