"""The read model: every table guestgraph keeps in PostgreSQL.

Conventions:
- primary keys are ``bigint`` identities; the API shows them as opaque global ids;
- money is ``bigint`` minor units plus an ISO 4217 ``currency``; never floats;
- times are ``timestamptz`` in UTC;
- enumerations are ``text`` guarded by a CHECK constraint built from ``domain.model``,
  so adding a value is a one-line migration rather than an ``ALTER TYPE``.
- every (source, external id) pair is unique: that is how a replayed or reordered
  source event finds the row it already created.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from domain.model import (
    ConsentChannel,
    FulfillmentType,
    IdentifierKind,
    InboxStatus,
    OrderStatus,
    Role,
    Source,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _pk() -> Column[int]:
    return Column("id", BigInteger, Identity(always=False), primary_key=True)


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> Column[object]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _source(nullable: bool = False) -> Column[str]:
    return Column("source", Text, nullable=nullable)


SOURCES = [s.value for s in Source]
ORDER_STATUSES = [s.value for s in OrderStatus]

# --- stores and catalog -----------------------------------------------------------------

stores = Table(
    "stores",
    metadata,
    _pk(),
    _source(),
    Column("external_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("country", String(2), nullable=False, server_default="US"),
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("phone", Text),
    # typical minutes from ACCEPTED to READY per daypart, e.g. {"breakfast": 8, "lunch": 12}
    Column("usual_prep_minutes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created_at(),
    _updated_at(),
    UniqueConstraint("source", "external_id"),
    CheckConstraint(_one_of("source", SOURCES), name="source"),
)

menu_items = Table(
    "menu_items",
    metadata,
    _pk(),
    _source(),
    Column("external_id", Text, nullable=False),
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE")),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("price_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("is_available", Boolean, nullable=False, server_default=text("true")),
    Column("tags", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("gtin", String(14)),
    _created_at(),
    _updated_at(),
    UniqueConstraint("source", "external_id"),
    CheckConstraint(_one_of("source", SOURCES), name="source"),
    CheckConstraint("gtin ~ '^[0-9]{14}$'", name="gtin_14_digits"),
    Index(None, "store_id"),
)

# --- customers and identity -------------------------------------------------------------

customers = Table(
    "customers",
    metadata,
    _pk(),
    Column("display_name", Text),
    Column("given_name", Text),
    Column("family_name", Text),
    Column("email", Text),  # as the source sent it (trimmed); never rewritten by matching
    Column("email_normalized", Text),
    Column("phone", Text),  # E.164 when valid, else NULL (raw stays on the source record)
    Column("birthday", Text),
    Column("merged_into", BigInteger, ForeignKey("customers.id")),
    Column("merged_at", DateTime(timezone=True)),
    # where the golden name / email / phone came from, for survivorship
    Column("survivorship", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "search_text",
        Text,
        Computed(
            "lower(coalesce(given_name, '') || ' ' || coalesce(family_name, '') || ' ' || "
            "coalesce(display_name, '') || ' ' || coalesce(email_normalized, '') || ' ' || "
            "coalesce(phone, ''))",
            persisted=True,
        ),
    ),
    _created_at(),
    _updated_at(),
    Index(None, "merged_into"),
    Index(None, "email_normalized"),
    Index(None, "phone"),
    Index(
        "ix_customers_search_text_trgm",
        "search_text",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    ),
)

source_records = Table(
    "source_records",
    metadata,
    _pk(),
    _source(),
    Column("external_id", Text, nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    # identity: which rule linked this record to its customer, and on what evidence
    Column("matched_by", Text, nullable=False),
    Column("evidence", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("linked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the record's own latest attributes (names, raw email/phone, loyalty id, consent...)
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("source_version", BigInteger),
    Column("source_updated_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    UniqueConstraint("source", "external_id"),
    CheckConstraint(_one_of("source", SOURCES), name="source"),
    Index(None, "customer_id"),
)

identifiers = Table(
    "identifiers",
    metadata,
    _pk(),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column(
        "source_record_id",
        BigInteger,
        ForeignKey("source_records.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("verified", Boolean, nullable=False, server_default=text("false")),
    _created_at(),
    UniqueConstraint("source_record_id", "kind", "value"),
    CheckConstraint(_one_of("kind", [k.value for k in IdentifierKind]), name="kind"),
    Index(None, "kind", "value"),
    Index(None, "customer_id"),
)

identity_ledger = Table(
    "identity_ledger",
    metadata,
    _pk(),
    Column("action", Text, nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("other_customer_id", BigInteger, ForeignKey("customers.id")),
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    Column("rule", Text, nullable=False),
    Column("evidence", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("actor", Text, nullable=False),
    _created_at(),
    CheckConstraint(_one_of("action", ["link", "create", "merge", "split", "unlink"]), "action"),
    Index(None, "customer_id", "id"),
    Index(None, "other_customer_id"),
)

# Pairs of source records a person has said are different people (after a split): the same
# evidence must not merge them again. Stored with the smaller id first.
identity_separations = Table(
    "identity_separations",
    metadata,
    Column(
        "source_record_a",
        BigInteger,
        ForeignKey("source_records.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "source_record_b",
        BigInteger,
        ForeignKey("source_records.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("actor", Text, nullable=False),
    _created_at(),
    CheckConstraint("source_record_a < source_record_b", name="ordered_pair"),
)

# --- preferences and consent ------------------------------------------------------------

preferences = Table(
    "preferences",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
    Column("dietary", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("allergens", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("cuisines", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    _updated_at(),
)

marketing_consents = Table(
    "marketing_consents",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("granted", Boolean, nullable=False),
    _source(),
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    _updated_at(),
    CheckConstraint(_one_of("channel", [c.value for c in ConsentChannel]), name="channel"),
)

# --- orders -----------------------------------------------------------------------------

orders = Table(
    "orders",
    metadata,
    _pk(),
    _source(),
    Column("external_id", Text, nullable=False),
    Column("store_id", BigInteger, ForeignKey("stores.id"), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id")),
    # the source customer record that placed it: a split re-attributes by this
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    Column("status", Text, nullable=False),
    Column("fulfillment", Text, nullable=False),
    Column("channel", Text, nullable=False, server_default="UNKNOWN"),
    Column("currency", String(3), nullable=False),
    Column("subtotal_amount", BigInteger, nullable=False, server_default="0"),
    Column("tax_amount", BigInteger, nullable=False, server_default="0"),
    Column("tip_amount", BigInteger, nullable=False, server_default="0"),
    Column("discount_amount", BigInteger, nullable=False, server_default="0"),
    Column("total_amount", BigInteger, nullable=False, server_default="0"),
    Column("source_version", BigInteger),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("promised_at", DateTime(timezone=True)),
    Column("ready_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("raw", JSONB),
    _created_at(),
    _updated_at(),
    UniqueConstraint("source", "external_id"),
    CheckConstraint(_one_of("source", SOURCES), name="source"),
    CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
    CheckConstraint(_one_of("fulfillment", [f.value for f in FulfillmentType]), "fulfillment"),
    Index("ix_orders_customer_id_placed_at", "customer_id", text("placed_at DESC"), "id"),
    Index("ix_orders_store_id_placed_at", "store_id", text("placed_at DESC")),
    Index(
        "ix_orders_open_by_store",
        "store_id",
        "placed_at",
        postgresql_where=text("status NOT IN ('COMPLETED', 'CANCELED')"),
    ),
    Index("ix_orders_placed_at", text("placed_at DESC"), "id"),
    Index(None, "source_record_id"),
)

order_line_items = Table(
    "order_line_items",
    metadata,
    _pk(),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("position", SmallInteger, nullable=False),
    Column("external_id", Text),
    Column("name", Text, nullable=False),
    Column("quantity", Numeric(14, 4), nullable=False),
    Column("unit_price_amount", BigInteger, nullable=False),
    Column("total_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("menu_item_id", BigInteger, ForeignKey("menu_items.id", ondelete="SET NULL")),
    Column("modifiers", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    UniqueConstraint("order_id", "position"),
    Index(None, "menu_item_id"),
)

order_status_history = Table(
    "order_status_history",
    metadata,
    _pk(),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("status", Text, nullable=False),
    Column("previous_status", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    _source(),
    Column("source_version", BigInteger),
    _created_at(),
    CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
    Index(None, "order_id", "at"),
    # --- ingest: each reported status is kept once per source version ---
    UniqueConstraint("order_id", "status", "source_version"),
)

# --- loyalty ----------------------------------------------------------------------------

loyalty_accounts = Table(
    "loyalty_accounts",
    metadata,
    _pk(),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("program", Text, nullable=False),
    _source(),
    Column("external_id", Text, nullable=False),
    # the source record that brought the account (a split moves the account with it)
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("lifetime_points", BigInteger, nullable=False, server_default="0"),
    Column("tier", Text),
    Column("allow_negative", Boolean, nullable=False, server_default=text("false")),
    _created_at(),
    _updated_at(),
    UniqueConstraint("source", "external_id"),
    Index(None, "customer_id"),
)

# Append-only: a correction is a new entry, never an UPDATE.
loyalty_ledger = Table(
    "loyalty_ledger",
    metadata,
    _pk(),
    Column("account_id", BigInteger, ForeignKey("loyalty_accounts.id"), nullable=False),
    # the account the entry was posted to; a merge re-homes account_id, never this, so a
    # split can give an account its own entries back
    Column("posted_account_id", BigInteger, ForeignKey("loyalty_accounts.id")),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("reason", Text),
    Column("actor", Text, nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="SET NULL")),
    _source(),
    Column("external_id", Text),
    Column("idempotency_key", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _created_at(),
    UniqueConstraint("idempotency_key"),
    Index(None, "account_id", text("id DESC")),
)

# --- support interactions ---------------------------------------------------------------

interactions = Table(
    "interactions",
    metadata,
    _pk(),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    _source(),
    Column("external_id", Text),
    Column("source_record_id", BigInteger, ForeignKey("source_records.id", ondelete="SET NULL")),
    Column("channel", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("subject", Text),
    Column("body", Text),
    Column("actor", Text, nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="SET NULL")),
    Column("idempotency_key", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    _created_at(),
    UniqueConstraint("source", "external_id"),
    UniqueConstraint("idempotency_key"),
    Index("ix_interactions_customer_id_occurred_at", "customer_id", text("occurred_at DESC")),
)

# --- traits (maintained on ingest, read by insights) ------------------------------------

customer_traits = Table(
    "customer_traits",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
    Column("order_count", Integer, nullable=False, server_default="0"),
    Column("total_spend_amount", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3)),
    Column("first_order_at", DateTime(timezone=True)),
    Column("last_order_at", DateTime(timezone=True)),
    # [{"menu_item_id": 1, "name": "...", "quantity": 3.0, "orders": 2}, ...] best first
    Column("favorite_items", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("usual_order_hour", SmallInteger),
    Column("channel_mix", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("store_ids", ARRAY(BigInteger), nullable=False, server_default=text("'{}'::bigint[]")),
    _updated_at(),
    Index(None, "last_order_at"),
    Index("ix_customer_traits_store_ids", "store_ids", postgresql_using="gin"),
)

# --- traits owed: customers whose orders a running import changed, their traits not yet
# recomputed (an import recomputes them once at its end instead of after every batch;
# ``readmodel.traits.settle_owed``) ---
traits_owed = Table(
    "traits_owed",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
    Column("owed_since", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# --- ingestion and the change feed -------------------------------------------------------

ingest_inbox = Table(
    "ingest_inbox",
    metadata,
    _pk(),
    _source(),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("raw_body", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("processed_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="1"),
    # --- ingest: when the background fetcher next tries a pending (thin) event ---
    Column("next_attempt_at", DateTime(timezone=True)),
    # --- ingest: the stores a partner's events were limited to (NULL: no limit, e.g. a
    # signed webhook); ``guestgraph inbox replay`` applies the row under the same limit ---
    Column("store_scope", ARRAY(BigInteger)),
    UniqueConstraint("source", "event_id"),
    CheckConstraint(_one_of("status", [s.value for s in InboxStatus]), name="status"),
    Index(None, "status", "received_at"),
    Index(
        "ix_ingest_inbox_pending",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
)

# --- ingest: statuses reported for an order not stored yet (a thin event ahead of its
# order); moved into order_status_history when the order arrives ---
order_status_backlog = Table(
    "order_status_backlog",
    metadata,
    _source(),
    Column("order_external_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source_version", BigInteger, nullable=False),
    _created_at(),
    PrimaryKeyConstraint("source", "order_external_id", "status", "source_version"),
)

# --- ingest: how far `guestgraph import` got through each file (resume after a crash) ---
import_checkpoints = Table(
    "import_checkpoints",
    metadata,
    Column("file_key", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("position", BigInteger, nullable=False, server_default="0"),
    Column("rows_done", BigInteger, nullable=False, server_default="0"),
    _updated_at(),
)

# The transactional outbox. ``seq`` is assigned under a transaction-scoped advisory lock
# (see readmodel.changefeed), so sequence order is commit order and a reader that has
# seen ``seq = n`` committed can never later see a smaller one appear.
change_feed = Table(
    "change_feed",
    metadata,
    Column("seq", BigInteger, Identity(always=False), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("customer_id", BigInteger),
    Column("order_id", BigInteger),
    Column("store_id", BigInteger),
    Column("payload", JSONB, nullable=False),
    _created_at(),
    Index(None, "order_id", "seq"),
    Index(None, "customer_id", "seq"),
    Index(None, "store_id", "seq"),
    Index(None, "topic", "seq"),
)

# How far each relay has published the change feed to Redis.
change_feed_cursors = Table(
    "change_feed_cursors",
    metadata,
    Column("name", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    _updated_at(),
)

# --- API clients, idempotency and audit --------------------------------------------------

api_clients = Table(
    "api_clients",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("previous_secret_hash", Text),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("role", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("store_ids", ARRAY(BigInteger), nullable=False, server_default=text("'{}'::bigint[]")),
    Column("rate_limit", Text),
    Column("revoked_at", DateTime(timezone=True)),
    _created_at(),
    # true: the client may only run operations registered in trusted_documents for it
    Column("trusted_documents_only", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint(_one_of("role", [r.value for r in Role]), name="role"),
)

# A client's allow-list of operations (sha256 of the document text → the document).
trusted_documents = Table(
    "trusted_documents",
    metadata,
    Column("client_id", Text, ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("document", Text, nullable=False),
    Column("name", Text),
    _created_at(),
    CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
)

mutation_idempotency = Table(
    "mutation_idempotency",
    metadata,
    Column("key", Text, primary_key=True),
    Column("operation", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("response", JSONB, nullable=False),
    _created_at(),
)

audit_log = Table(
    "audit_log",
    metadata,
    _pk(),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("customer_id", BigInteger),
    Column("fields", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("request_id", Text),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index(None, "customer_id", "at"),
    Index(None, "actor", "at"),
)
