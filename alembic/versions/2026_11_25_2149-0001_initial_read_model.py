"""initial read model

Revision ID: 0001
Revises:
Create Date: 2026-11-25 21:49:32.241244+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # trigram indexes for customer search
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("previous_secret_hash", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "store_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
        sa.Column("rate_limit", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'support', 'partner', 'customer')", name=op.f("ck_api_clients_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "fields",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_actor_audit_log_at"), "audit_log", ["actor", "at"], unique=False
    )
    op.create_index(
        op.f("ix_audit_log_customer_id_audit_log_at"),
        "audit_log",
        ["customer_id", "at"],
        unique=False,
    )
    op.create_table(
        "change_feed",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("store_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_change_feed")),
    )
    op.create_index(
        op.f("ix_change_feed_customer_id_change_feed_seq"),
        "change_feed",
        ["customer_id", "seq"],
        unique=False,
    )
    op.create_index(
        op.f("ix_change_feed_order_id_change_feed_seq"),
        "change_feed",
        ["order_id", "seq"],
        unique=False,
    )
    op.create_index(
        op.f("ix_change_feed_store_id_change_feed_seq"),
        "change_feed",
        ["store_id", "seq"],
        unique=False,
    )
    op.create_index(
        op.f("ix_change_feed_topic_change_feed_seq"), "change_feed", ["topic", "seq"], unique=False
    )
    op.create_table(
        "change_feed_cursors",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_change_feed_cursors")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("given_name", sa.Text(), nullable=True),
        sa.Column("family_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("birthday", sa.Text(), nullable=True),
        sa.Column("merged_into", sa.BigInteger(), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "survivorship",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "search_text",
            sa.Text(),
            sa.Computed(
                "lower(coalesce(given_name, '') || ' ' || coalesce(family_name, '') || ' ' || coalesce(display_name, '') || ' ' || coalesce(email_normalized, '') || ' ' || coalesce(phone, ''))",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["merged_into"], ["customers.id"], name=op.f("fk_customers_merged_into_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index(
        op.f("ix_customers_email_normalized"), "customers", ["email_normalized"], unique=False
    )
    op.create_index(op.f("ix_customers_merged_into"), "customers", ["merged_into"], unique=False)
    op.create_index(op.f("ix_customers_phone"), "customers", ["phone"], unique=False)
    op.create_index(
        "ix_customers_search_text_trgm",
        "customers",
        ["search_text"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.create_table(
        "ingest_inbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "status IN ('applied', 'duplicate', 'rejected')", name=op.f("ck_ingest_inbox_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_inbox")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_ingest_inbox_source_event_id")),
    )
    op.create_index(
        op.f("ix_ingest_inbox_status_ingest_inbox_received_at"),
        "ingest_inbox",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "mutation_idempotency",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mutation_idempotency")),
    )
    op.create_table(
        "stores",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("country", sa.String(length=2), server_default="US", nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column(
            "usual_prep_minutes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('SQUARE', 'TOAST', 'HUBSPOT', 'SALESFORCE', 'CANONICAL')",
            name=op.f("ck_stores_source"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stores")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_stores_source_external_id")),
    )
    op.create_table(
        "customer_traits",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("order_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_spend_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "favorite_items",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("usual_order_hour", sa.SmallInteger(), nullable=True),
        sa.Column(
            "channel_mix",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "store_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_traits_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_traits")),
    )
    op.create_index(
        op.f("ix_customer_traits_last_order_at"), "customer_traits", ["last_order_at"], unique=False
    )
    op.create_index(
        "ix_customer_traits_store_ids",
        "customer_traits",
        ["store_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("program", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lifetime_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier", sa.Text(), nullable=True),
        sa.Column("allow_negative", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_loyalty_accounts_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_accounts")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_loyalty_accounts_source_external_id")
        ),
    )
    op.create_index(
        op.f("ix_loyalty_accounts_customer_id"), "loyalty_accounts", ["customer_id"], unique=False
    )
    op.create_table(
        "menu_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("is_available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("gtin ~ '^[0-9]{14}$'", name=op.f("ck_menu_items_gtin_14_digits")),
        sa.CheckConstraint(
            "source IN ('SQUARE', 'TOAST', 'HUBSPOT', 'SALESFORCE', 'CANONICAL')",
            name=op.f("ck_menu_items_source"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_menu_items_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_menu_items")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_menu_items_source_external_id")),
    )
    op.create_index(op.f("ix_menu_items_store_id"), "menu_items", ["store_id"], unique=False)
    op.create_table(
        "source_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("matched_by", sa.Text(), nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("source_version", sa.BigInteger(), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('SQUARE', 'TOAST', 'HUBSPOT', 'SALESFORCE', 'CANONICAL')",
            name=op.f("ck_source_records_source"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_source_records_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_records")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_source_records_source_external_id")
        ),
    )
    op.create_index(
        op.f("ix_source_records_customer_id"), "source_records", ["customer_id"], unique=False
    )
    op.create_table(
        "identifiers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("source_record_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('email', 'email_secondary', 'phone', 'loyalty_id')",
            name=op.f("ck_identifiers_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_identifiers_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_identifiers_source_record_id_source_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identifiers")),
        sa.UniqueConstraint(
            "source_record_id",
            "kind",
            "value",
            name=op.f("uq_identifiers_source_record_id_kind_value"),
        ),
    )
    op.create_index(
        op.f("ix_identifiers_customer_id"), "identifiers", ["customer_id"], unique=False
    )
    op.create_index(
        op.f("ix_identifiers_kind_identifiers_value"),
        "identifiers",
        ["kind", "value"],
        unique=False,
    )
    op.create_table(
        "identity_ledger",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("other_customer_id", sa.BigInteger(), nullable=True),
        sa.Column("source_record_id", sa.BigInteger(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('link', 'create', 'merge', 'split', 'unlink')",
            name=op.f("ck_identity_ledger_action"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_identity_ledger_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["other_customer_id"],
            ["customers.id"],
            name=op.f("fk_identity_ledger_other_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_identity_ledger_source_record_id_source_records"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_ledger")),
    )
    op.create_index(
        op.f("ix_identity_ledger_customer_id_identity_ledger_id"),
        "identity_ledger",
        ["customer_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_identity_ledger_other_customer_id"),
        "identity_ledger",
        ["other_customer_id"],
        unique=False,
    )
    op.create_table(
        "identity_separations",
        sa.Column("source_record_a", sa.BigInteger(), nullable=False),
        sa.Column("source_record_b", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source_record_a < source_record_b", name=op.f("ck_identity_separations_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_a"],
            ["source_records.id"],
            name=op.f("fk_identity_separations_source_record_a_source_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_record_b"],
            ["source_records.id"],
            name=op.f("fk_identity_separations_source_record_b_source_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source_record_a", "source_record_b", name=op.f("pk_identity_separations")
        ),
    )
    op.create_table(
        "marketing_consents",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_record_id", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('EMAIL', 'SMS', 'PUSH', 'PHONE')",
            name=op.f("ck_marketing_consents_channel"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_marketing_consents_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_marketing_consents_source_record_id_source_records"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("customer_id", "channel", name=op.f("pk_marketing_consents")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("store_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("source_record_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("fulfillment", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), server_default="UNKNOWN", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tax_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tip_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("discount_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("source_version", sa.BigInteger(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "fulfillment IN ('DELIVERY', 'PICKUP', 'DINE_IN')", name=op.f("ck_orders_fulfillment")
        ),
        sa.CheckConstraint(
            "source IN ('SQUARE', 'TOAST', 'HUBSPOT', 'SALESFORCE', 'CANONICAL')",
            name=op.f("ck_orders_source"),
        ),
        sa.CheckConstraint(
            "status IN ('PLACED', 'ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'COMPLETED', 'CANCELED')",
            name=op.f("ck_orders_status"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_orders_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_orders_source_record_id_source_records"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_orders_store_id_stores")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_orders_source_external_id")),
    )
    op.create_index(
        "ix_orders_customer_id_placed_at",
        "orders",
        ["customer_id", sa.literal_column("placed_at DESC"), "id"],
        unique=False,
    )
    op.create_index(
        "ix_orders_open_by_store",
        "orders",
        ["store_id", "placed_at"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('COMPLETED', 'CANCELED')"),
    )
    op.create_index(
        "ix_orders_placed_at", "orders", [sa.literal_column("placed_at DESC"), "id"], unique=False
    )
    op.create_index(
        op.f("ix_orders_source_record_id"), "orders", ["source_record_id"], unique=False
    )
    op.create_index(
        "ix_orders_store_id_placed_at",
        "orders",
        ["store_id", sa.literal_column("placed_at DESC")],
        unique=False,
    )
    op.create_table(
        "preferences",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "dietary",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "allergens",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "cuisines",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("source_record_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_preferences_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_preferences_source_record_id_source_records"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_preferences")),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("source_record_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_interactions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_interactions_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_interactions_source_record_id_source_records"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_interactions_idempotency_key")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_interactions_source_external_id")
        ),
    )
    op.create_index(
        "ix_interactions_customer_id_occurred_at",
        "interactions",
        ["customer_id", sa.literal_column("occurred_at DESC")],
        unique=False,
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
            name=op.f("fk_loyalty_ledger_account_id_loyalty_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_loyalty_ledger_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_loyalty_ledger_idempotency_key")),
    )
    op.create_index(
        op.f("ix_loyalty_ledger_account_id"),
        "loyalty_ledger",
        ["account_id", sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_table(
        "order_line_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("unit_price_amount", sa.BigInteger(), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("menu_item_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "modifiers",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["menu_item_id"],
            ["menu_items.id"],
            name=op.f("fk_order_line_items_menu_item_id_menu_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_line_items_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_line_items")),
        sa.UniqueConstraint(
            "order_id", "position", name=op.f("uq_order_line_items_order_id_position")
        ),
    )
    op.create_index(
        op.f("ix_order_line_items_menu_item_id"), "order_line_items", ["menu_item_id"], unique=False
    )
    op.create_table(
        "order_status_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("previous_status", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_version", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('PLACED', 'ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'COMPLETED', 'CANCELED')",
            name=op.f("ck_order_status_history_status"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_status_history_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_status_history")),
    )
    op.create_index(
        op.f("ix_order_status_history_order_id_order_status_history_at"),
        "order_status_history",
        ["order_id", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_order_status_history_order_id_order_status_history_at"),
        table_name="order_status_history",
    )
    op.drop_table("order_status_history")
    op.drop_index(op.f("ix_order_line_items_menu_item_id"), table_name="order_line_items")
    op.drop_table("order_line_items")
    op.drop_index(op.f("ix_loyalty_ledger_account_id"), table_name="loyalty_ledger")
    op.drop_table("loyalty_ledger")
    op.drop_index("ix_interactions_customer_id_occurred_at", table_name="interactions")
    op.drop_table("interactions")
    op.drop_table("preferences")
    op.drop_index("ix_orders_store_id_placed_at", table_name="orders")
    op.drop_index(op.f("ix_orders_source_record_id"), table_name="orders")
    op.drop_index("ix_orders_placed_at", table_name="orders")
    op.drop_index(
        "ix_orders_open_by_store",
        table_name="orders",
        postgresql_where=sa.text("status NOT IN ('COMPLETED', 'CANCELED')"),
    )
    op.drop_index("ix_orders_customer_id_placed_at", table_name="orders")
    op.drop_table("orders")
    op.drop_table("marketing_consents")
    op.drop_table("identity_separations")
    op.drop_index(op.f("ix_identity_ledger_other_customer_id"), table_name="identity_ledger")
    op.drop_index(
        op.f("ix_identity_ledger_customer_id_identity_ledger_id"), table_name="identity_ledger"
    )
    op.drop_table("identity_ledger")
    op.drop_index(op.f("ix_identifiers_kind_identifiers_value"), table_name="identifiers")
    op.drop_index(op.f("ix_identifiers_customer_id"), table_name="identifiers")
    op.drop_table("identifiers")
    op.drop_index(op.f("ix_source_records_customer_id"), table_name="source_records")
    op.drop_table("source_records")
    op.drop_index(op.f("ix_menu_items_store_id"), table_name="menu_items")
    op.drop_table("menu_items")
    op.drop_index(op.f("ix_loyalty_accounts_customer_id"), table_name="loyalty_accounts")
    op.drop_table("loyalty_accounts")
    op.drop_index(
        "ix_customer_traits_store_ids", table_name="customer_traits", postgresql_using="gin"
    )
    op.drop_index(op.f("ix_customer_traits_last_order_at"), table_name="customer_traits")
    op.drop_table("customer_traits")
    op.drop_table("stores")
    op.drop_table("mutation_idempotency")
    op.drop_index(
        op.f("ix_ingest_inbox_status_ingest_inbox_received_at"), table_name="ingest_inbox"
    )
    op.drop_table("ingest_inbox")
    op.drop_index(
        "ix_customers_search_text_trgm",
        table_name="customers",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.drop_index(op.f("ix_customers_phone"), table_name="customers")
    op.drop_index(op.f("ix_customers_merged_into"), table_name="customers")
    op.drop_index(op.f("ix_customers_email_normalized"), table_name="customers")
    op.drop_table("customers")
    op.drop_table("change_feed_cursors")
    op.drop_index(op.f("ix_change_feed_topic_change_feed_seq"), table_name="change_feed")
    op.drop_index(op.f("ix_change_feed_store_id_change_feed_seq"), table_name="change_feed")
    op.drop_index(op.f("ix_change_feed_order_id_change_feed_seq"), table_name="change_feed")
    op.drop_index(op.f("ix_change_feed_customer_id_change_feed_seq"), table_name="change_feed")
    op.drop_table("change_feed")
    op.drop_index(op.f("ix_audit_log_customer_id_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_clients")
