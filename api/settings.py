"""Configuration: one pydantic-settings class, read once at start-up from ``GUESTGRAPH_*``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.matching import MatchPolicy  # identity
from domain.normalize import (  # identity
    DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS,
    DEFAULT_BLOCKED_EMAILS,
    phone_key,
)

ENV_PREFIX = "GUESTGRAPH_"


class Mode(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("guestgraph"))


class Settings(BaseSettings):
    """Every setting guestgraph reads. Names are the contract in API.md (with the prefix)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, description="plain postgresql:// URL; unset: embedded PostgreSQL"
    )
    # set by the CLI for its worker processes when it started the embedded server
    database_is_embedded: bool = False
    redis_url: str | None = Field(default=None, description="unset: in-process fan-out")
    redis_prefix: str = Field(default="guestgraph:", description="prefix of every Redis key")
    mode: Mode = Mode.PRODUCTION
    log_level: LogLevel = LogLevel.INFO
    data_dir: Path = Field(default_factory=default_data_dir)

    jwt_secret: str | None = None
    jwks_url: AnyHttpUrl | None = None
    jwt_issuer: str = "guestgraph"
    jwt_audience: str = "guestgraph"
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    square_signature_key: str | None = None
    square_notification_url: str | None = None
    square_access_token: str | None = None
    square_api_base_url: AnyHttpUrl = AnyHttpUrl("https://connect.squareup.com")
    toast_webhook_secret: str | None = None
    hubspot_client_secret: str | None = None
    hubspot_access_token: str | None = None
    hubspot_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.hubapi.com")
    salesforce_webhook_secret: str | None = None

    statement_timeout_ms: int = Field(default=5000, ge=100)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    webhook_max_body_bytes: int = Field(default=2_097_152, ge=1024)

    # --- auth (api/auth.py, api/oauth.py, api/graphql_http.py, api/ratelimit.py) ---
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    jwks_cache_s: int = Field(default=300, ge=1)
    client_secret_grace_s: int = Field(default=86_400, ge=0)
    client_cache_s: float = Field(default=10.0, ge=0, description="revocation takes effect within")
    rate_limit_client: str = Field(default="1200/minute", description="per client, default")
    rate_limit_anonymous: str = Field(default="120/minute", description="per IP, no token")
    rate_limit_token_endpoint: str = Field(default="30/minute", description="per IP")
    operation_timeout_ms: int = Field(default=10_000, ge=100)
    max_query_depth: int = Field(default=8, ge=1)
    max_query_aliases: int = Field(default=15, ge=0)
    max_query_tokens: int = Field(default=2000, ge=10)
    max_directives_per_field: int = Field(default=3, ge=0)
    max_query_cost: int = Field(default=20_000, ge=1)
    apq_ttl_s: int = Field(default=86_400, ge=1)
    # --- ingest ---
    # the URL HubSpot calls, exactly as configured in the app (signature v3 signs it);
    # unset: the URL of the request as this server sees it
    hubspot_webhook_url: str | None = None
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    fetch_concurrency: int = Field(default=8, ge=1, le=128)
    fetch_poll_interval_s: float = Field(default=5.0, gt=0)
    fetch_retry_base_s: float = Field(default=30.0, gt=0)
    # 1, 2, 4 ... minutes capped at an hour: 80 attempts cover Square's 72-hour window
    fetch_max_attempts: int = Field(default=80, ge=1)
    # --- live (subscriptions, hub, relay; docs/live.md) ---
    live_poll_interval_ms: int = Field(default=250, ge=10, description="polling without Redis")
    live_safety_poll_ms: int = Field(default=1000, ge=50, description="re-read when quiet")
    live_queue_size: int = Field(default=1000, ge=1, description="events per subscriber")
    ws_max_subscriptions: int = Field(default=20, ge=1, description="per connection")
    ws_init_timeout_s: float = Field(default=10.0, gt=0, description="connection_init wait")
    ws_keep_alive_s: float = Field(default=15.0, gt=0, description="server ping interval")
    ws_max_frame_bytes: int = Field(default=262_144, ge=1024, description="bigger: close 1009")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value.encode()) < 32:
            raise ValueError("must be at least 32 bytes (HS256 key)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def is_development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    # --- identity ---
    # An identifier held by more than this many distinct customers is shared: it matches
    # no one on its own (households, offices, staff cards). See docs/identity.md.
    identity_phone_max_customers: int = Field(default=3, ge=1)
    identity_email_max_customers: int = Field(default=2, ge=1)
    identity_loyalty_max_customers: int = Field(default=2, ge=1)
    # rule 7: a shared phone still links the one holder with the exact full name, when it has
    # at most this many customers (0: a shared phone links no one at all)
    identity_shared_phone_name_max_customers: int = Field(default=8, ge=0)
    # Comma-separated, added to the built-in lists: full addresses, or "local@" for a local
    # part blocked at every domain; phone numbers in any format (parsed with the region).
    identity_blocked_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    identity_blocked_phones: Annotated[list[str], NoDecode] = Field(default_factory=list)
    identity_phone_region: str = Field(default="US", min_length=2, max_length=2)

    @field_validator("identity_blocked_emails", "identity_blocked_phones", mode="before")
    @classmethod
    def _identity_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def match_policy(self) -> MatchPolicy:
        """The identity-matching guardrails these settings describe."""
        emails = {e.strip().lower() for e in self.identity_blocked_emails}
        local_parts = {e.removesuffix("@") for e in emails if e.endswith("@")}
        phones = {phone_key(p, self.identity_phone_region) for p in self.identity_blocked_phones}
        return MatchPolicy(
            phone_max_customers=self.identity_phone_max_customers,
            email_max_customers=self.identity_email_max_customers,
            loyalty_max_customers=self.identity_loyalty_max_customers,
            shared_phone_name_max_customers=self.identity_shared_phone_name_max_customers,
            blocked_emails=DEFAULT_BLOCKED_EMAILS | {e for e in emails if not e.endswith("@")},
            blocked_email_local_parts=DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS | local_parts,
            blocked_phones=frozenset(p for p in phones if p is not None),
        )


class SettingsError(Exception):
    """A setting is invalid. ``str()`` is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise SettingsError with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}: {message}") from None
