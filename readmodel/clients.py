"""Registered API clients: who may ask ``/oauth/token`` for a token, and with what rights.

Secrets are generated here, shown once, and stored only as a scrypt hash (a slow,
memory-hard KDF: a stolen table does not give usable secrets). Rotation moves the current
hash to ``previous_secret_hash`` with an expiry, so both secrets work during a grace period.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.viewer import Role
from readmodel.tables import api_clients, trusted_documents

# scrypt cost: 2**14 x 8 x 128 bytes = 16 MiB and tens of milliseconds per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
CLIENT_ID_PREFIX = "ggc_"
SECRET_PREFIX = "ggs_"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$n$r$p$salt$hash``: a self-describing hash, so the cost can rise later."""
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(derived)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a ``hash_secret`` value; False if malformed."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = hashlib.scrypt(
            secret.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, _unb64(expected))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_hex(8)


@dataclass(frozen=True)
class ApiClient:
    """A registered client as the token endpoint and the rate limiter need it."""

    id: str
    name: str
    role: Role
    scopes: tuple[str, ...]
    store_ids: tuple[int, ...]
    rate_limit: str | None
    revoked_at: datetime | None
    created_at: datetime
    trusted_documents_only: bool
    secret_hash: str
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def secret_hashes(self, now: datetime) -> list[str]:
        """The hashes a presented secret may match now (the previous one during its grace)."""
        hashes = [self.secret_hash]
        expires = self.previous_secret_expires_at
        if self.previous_secret_hash and expires is not None and expires > now:
            hashes.append(self.previous_secret_hash)
        return hashes


@dataclass(frozen=True)
class CreatedClient:
    client: ApiClient
    secret: str
    """Shown once to whoever created or rotated the client; never stored."""


_COLUMNS = (
    api_clients.c.id,
    api_clients.c.name,
    api_clients.c.role,
    api_clients.c.scopes,
    api_clients.c.store_ids,
    api_clients.c.rate_limit,
    api_clients.c.revoked_at,
    api_clients.c.created_at,
    api_clients.c.trusted_documents_only,
    api_clients.c.secret_hash,
    api_clients.c.previous_secret_hash,
    api_clients.c.previous_secret_expires_at,
)


def _client(row: object) -> ApiClient:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiClient(
        id=m["id"],
        name=m["name"],
        role=Role(m["role"]),
        scopes=tuple(m["scopes"]),
        store_ids=tuple(m["store_ids"]),
        rate_limit=m["rate_limit"],
        revoked_at=m["revoked_at"],
        created_at=m["created_at"],
        trusted_documents_only=m["trusted_documents_only"],
        secret_hash=m["secret_hash"],
        previous_secret_hash=m["previous_secret_hash"],
        previous_secret_expires_at=m["previous_secret_expires_at"],
    )


class ClientNotFound(Exception):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"no API client {client_id!r}")
        self.client_id = client_id


async def create_client(
    engine: AsyncEngine,
    *,
    name: str,
    role: Role,
    scopes: Sequence[str] = (),
    store_ids: Sequence[int] = (),
    rate_limit: str | None = None,
    trusted_documents_only: bool = False,
    secret_cost: int = SCRYPT_N,
) -> CreatedClient:
    """Register a client; the returned secret is the only copy there will ever be."""
    if role is Role.ANONYMOUS:
        raise ValueError("an API client cannot be anonymous")
    secret = new_secret()
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                insert(api_clients)
                .values(
                    id=new_client_id(),
                    name=name,
                    role=role.value,
                    scopes=sorted(set(scopes)),
                    store_ids=sorted(set(store_ids)),
                    rate_limit=rate_limit,
                    trusted_documents_only=trusted_documents_only,
                    secret_hash=hash_secret(secret, n=secret_cost),
                )
                .returning(*_COLUMNS)
            )
        ).one()
    return CreatedClient(client=_client(row), secret=secret)


async def client_by_id(engine: AsyncEngine, client_id: str) -> ApiClient | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_COLUMNS).where(api_clients.c.id == client_id))).first()
    return _client(row) if row is not None else None


async def list_clients(engine: AsyncEngine) -> list[ApiClient]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(*_COLUMNS).order_by(api_clients.c.created_at))
        return [_client(row) for row in rows]


async def revoke_client(engine: AsyncEngine, client_id: str) -> ApiClient:
    """Revoke now; its tokens stop working within the auth layer's client cache lifetime."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                update(api_clients)
                .where(api_clients.c.id == client_id)
                .values(revoked_at=datetime.now(UTC))
                .returning(*_COLUMNS)
            )
        ).first()
    if row is None:
        raise ClientNotFound(client_id)
    return _client(row)


async def rotate_secret(
    engine: AsyncEngine,
    client_id: str,
    *,
    grace: timedelta,
    secret_cost: int = SCRYPT_N,
) -> CreatedClient:
    """A new secret; the current one keeps working for ``grace`` (zero: not at all)."""
    secret = new_secret()
    async with engine.begin() as conn:
        current = (
            await conn.execute(
                select(api_clients.c.secret_hash)
                .where(api_clients.c.id == client_id)
                .with_for_update()
            )
        ).first()
        if current is None:
            raise ClientNotFound(client_id)
        row = (
            await conn.execute(
                update(api_clients)
                .where(api_clients.c.id == client_id)
                .values(
                    secret_hash=hash_secret(secret, n=secret_cost),
                    previous_secret_hash=current.secret_hash if grace > timedelta(0) else None,
                    previous_secret_expires_at=datetime.now(UTC) + grace,
                )
                .returning(*_COLUMNS)
            )
        ).one()
    return CreatedClient(client=_client(row), secret=secret)


def document_sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


async def trust_document(
    engine: AsyncEngine, client_id: str, document: str, *, name: str | None = None
) -> str:
    """Add ``document`` to the client's allow-list; returns its sha256 (idempotent)."""
    digest = document_sha256(document)
    async with engine.begin() as conn:
        exists = await conn.scalar(select(api_clients.c.id).where(api_clients.c.id == client_id))
        if exists is None:
            raise ClientNotFound(client_id)
        await conn.execute(
            delete(trusted_documents).where(
                trusted_documents.c.client_id == client_id, trusted_documents.c.sha256 == digest
            )
        )
        await conn.execute(
            insert(trusted_documents).values(
                client_id=client_id, sha256=digest, document=document, name=name
            )
        )
    return digest


async def trusted_document(engine: AsyncEngine, client_id: str, sha256: str) -> str | None:
    """The registered document with this hash for this client, or None."""
    async with engine.connect() as conn:
        document: str | None = await conn.scalar(
            select(trusted_documents.c.document).where(
                trusted_documents.c.client_id == client_id, trusted_documents.c.sha256 == sha256
            )
        )
    return document
