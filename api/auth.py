"""Authentication: bearer JWTs → a ``Viewer`` (who is asking, with which rights and rows).

Accepted tokens:
- HS256 signed with ``GUESTGRAPH_JWT_SECRET`` (what ``/oauth/token`` issues);
- RS256 / ES256 signed by a key from ``GUESTGRAPH_JWKS_URL`` (an external identity
  provider), fetched and cached, refetched when a token names an unknown ``kid``.

``iss``, ``aud``, ``exp`` and ``nbf`` are checked. The algorithm is chosen by which key
verifies it, never by the token alone: ``alg: none``, HS256 with a public key as secret
(algorithm confusion) and any other algorithm are rejected.

Claims: ``sub``, ``role``, ``scope`` (space-separated), ``stores`` for partners (API ids or
``SOURCE:external_id``), ``client_id`` for tokens of registered clients (revocation is
honoured). A ``customer`` token's ``sub`` is ``SOURCE:external_id`` of one of the person's
source records and resolves to the golden customer.

With no token: ``DEVELOPMENT_ADMIN`` in development mode, ``ANONYMOUS`` in production.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from api.settings import Settings
from domain.model import Source
from domain.viewer import ANONYMOUS, DEVELOPMENT_ADMIN, Role, Viewer
from readmodel import clients as client_store
from readmodel import scoping

log = logging.getLogger("guestgraph.auth")

MAX_TOKEN_BYTES = 8192
LEEWAY_S = 30
ASYMMETRIC_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
JWKS_MIN_REFRESH_S = 10.0  # an unknown kid refetches the JWKS at most this often
SCOPE_CACHE_S = 30.0  # store references and customer identities
VERIFIED_CACHE_S = 60.0
VERIFIED_CACHE_ENTRIES = 10_000
WEBSOCKET_REJECTED = 4403


class AuthError(Exception):
    """The caller is not authenticated (401) or lacks a scope (403). Carries no HTTP
    semantics beyond the status the transports use to translate it."""

    def __init__(self, code: str, description: str, *, status: int = 401, scope: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status
        self.scope = scope

    def www_authenticate(self) -> str:
        value = f'Bearer realm="guestgraph", error="{self.code}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


def invalid_token(description: str) -> AuthError:
    return AuthError("invalid_token", description)


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A small in-process cache with a lifetime per entry and a size bound."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await load()
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


class JwksKeys:
    """Signing keys from a JWKS URL: cached, refetched on an unknown ``kid`` (rate-bounded)."""

    def __init__(self, url: str, *, cache_s: float, http: httpx.AsyncClient) -> None:
        self._url = url
        self._cache_s = cache_s
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            jwk_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self._url, type(exc).__name__)
            self._fetched_at = time.monotonic()
            return
        self._keys = {key.key_id: key for key in jwk_set.keys if key.key_id}
        self._fetched_at = time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``, fetching the set when stale or when ``kid`` is new."""
        age = time.monotonic() - self._fetched_at
        if kid in self._keys and age < self._cache_s:
            return self._keys[kid]
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age >= self._cache_s
            unknown_and_may_refresh = kid not in self._keys and age >= JWKS_MIN_REFRESH_S
            if stale or unknown_and_may_refresh:
                await self._fetch()
        return self._keys.get(kid)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


class Authenticator:
    """Turns an ``Authorization`` header into a ``Viewer``; issues tokens for clients."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None
        self._jwks = (
            JwksKeys(str(settings.jwks_url), cache_s=settings.jwks_cache_s, http=self._http)
            if settings.jwks_url
            else None
        )
        self._clients: TtlCache[str, client_store.ApiClient | None] = TtlCache(
            settings.client_cache_s
        )
        self._stores: TtlCache[tuple[str, ...], frozenset[int]] = TtlCache(SCOPE_CACHE_S)
        self._customers: TtlCache[str, int | None] = TtlCache(SCOPE_CACHE_S)
        # verified claims by token: a client reuses one token for many requests
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- verifying ---------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Viewer:
        """The caller for this header. Raises AuthError (401) for a bad token."""
        if authorization is None or authorization.strip() == "":
            return DEVELOPMENT_ADMIN if self.settings.is_development else ANONYMOUS
        token = bearer_token(authorization)
        claims = await self.verify(token)
        return await self.viewer_from_claims(claims)

    async def require(self, authorization: str | None, scope: str) -> Viewer:
        """The caller, who must hold ``scope``. Raises AuthError: 401 without a valid
        token, 403 (``insufficient_scope``) with one that lacks the scope."""
        viewer = await self.authenticate(authorization)
        if viewer.is_anonymous:
            raise AuthError("invalid_token", "a bearer token is required", scope=scope)
        if not viewer.has_scope(scope):
            raise AuthError(
                "insufficient_scope", f"the token lacks scope {scope}", status=403, scope=scope
            )
        return viewer

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (remembered until it expires, at most
        ``VERIFIED_CACHE_S``). Raises AuthError (401)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise invalid_token("token too large")
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        claims = await self._verify(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._verified) >= VERIFIED_CACHE_ENTRIES:
                self._verified.clear()
            self._verified[token] = (min(float(exp), now + VERIFIED_CACHE_S), claims)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("malformed token") from None
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.settings.jwt_secret:
            key = self.settings.jwt_secret
        elif isinstance(alg, str) and alg in ASYMMETRIC_KEY_TYPES and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise invalid_token("token names no key (kid)")
            jwk = await self._jwks.key(kid)
            if jwk is None:
                raise invalid_token("unknown signing key")
            if jwk.key_type != ASYMMETRIC_KEY_TYPES[alg]:
                raise invalid_token("key type does not match the token's algorithm")
            key = jwk.key
        else:
            raise invalid_token("unsupported token algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("token expired") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("token has the wrong issuer") from None
        except jwt.PyJWTError:
            raise invalid_token("token signature or claims invalid") from None
        return claims

    async def viewer_from_claims(self, claims: Mapping[str, Any]) -> Viewer:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise invalid_token("token has no usable subject")
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise invalid_token("token has no valid role") from None
        if role is Role.ANONYMOUS:
            raise invalid_token("token has no valid role")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise invalid_token("scope must be a space-separated string")
        scopes = frozenset(scope.split())
        client_id = claims.get("client_id")
        if client_id is not None:
            if not isinstance(client_id, str):
                raise invalid_token("client_id must be a string")
            client = await self.client(client_id)
            if client is None or client.is_revoked:
                raise invalid_token("client unknown or revoked")
        store_ids: frozenset[int] | None = None
        customer_id: int | None = None
        if role is Role.PARTNER:
            store_ids = await self._store_ids(claims.get("stores"))
        elif role is Role.CUSTOMER:
            customer_id = await self._customer_id(subject)
        return Viewer(
            subject=subject,
            role=role,
            scopes=scopes,
            store_ids=store_ids,
            customer_id=customer_id,
            client_id=client_id,
        )

    async def client(self, client_id: str) -> client_store.ApiClient | None:
        """The registered client (cached briefly: revocation applies within seconds)."""
        if not is_plain_text(client_id, 128):
            return None
        return await self._clients.get_or_load(
            client_id, lambda: client_store.client_by_id(self.engine, client_id)
        )

    async def _store_ids(self, refs: object) -> frozenset[int]:
        if refs is None:
            return frozenset()
        if not isinstance(refs, list) or len(refs) > 1000:
            raise invalid_token("stores must be a list")
        if not all(isinstance(r, str | int) and not isinstance(r, bool) for r in refs):
            raise invalid_token("stores must hold ids")
        if not all(is_plain_text(str(r), 200) for r in refs):
            raise invalid_token("stores must hold ids")
        key = tuple(sorted(str(r) for r in refs))
        return await self._stores.get_or_load(
            key, lambda: scoping.resolve_store_refs(self.engine, refs)
        )

    async def _customer_id(self, subject: str) -> int | None:
        source, sep, external_id = subject.partition(":")
        if not is_plain_text(subject, 256):
            raise invalid_token("a customer token's subject must be SOURCE:external_id")
        if not sep or not external_id or source.upper() not in {s.value for s in Source}:
            raise invalid_token("a customer token's subject must be SOURCE:external_id")
        return await self._customers.get_or_load(
            subject,
            lambda: scoping.customer_for_source_identity(self.engine, source.upper(), external_id),
        )

    # --- issuing ------------------------------------------------------------------------

    def issue(
        self, client: client_store.ApiClient, scopes: frozenset[str] | None = None
    ) -> IssuedToken:
        """A short-lived HS256 token for a registered client. Raises RuntimeError if no
        ``GUESTGRAPH_JWT_SECRET`` is configured."""
        secret = self.settings.jwt_secret
        if not secret:
            raise RuntimeError("GUESTGRAPH_JWT_SECRET is not set: cannot issue tokens")
        granted = scopes if scopes is not None else frozenset(client.scopes)
        now = int(time.time())
        ttl = self.settings.access_token_ttl_s
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": client.id,
            "client_id": client.id,
            "role": client.role.value,
            "scope": " ".join(sorted(granted)),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(12),
        }
        if client.role is Role.PARTNER:
            claims["stores"] = [str(s) for s in client.store_ids]
        token = jwt.encode(claims, secret, algorithm="HS256")
        return IssuedToken(access_token=token, expires_in=ttl, scope=claims["scope"])


def is_plain_text(value: str, max_length: int) -> bool:
    """Printable, bounded: safe to use as a database key (PostgreSQL text refuses NUL)."""
    return 0 < len(value) <= max_length and value.isprintable()


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header. Raises AuthError."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise invalid_token("expected 'Authorization: Bearer <token>'")
    return token


def authenticator_of(connection: HTTPConnection) -> Authenticator:
    """The app's authenticator (created in the lifespan by api.graphql_http)."""
    found: Authenticator = connection.app.state.authenticator
    return found


async def require(connection: HTTPConnection, scope: str) -> Viewer:
    """For any endpoint: the caller of this request, who must hold ``scope``.

    Raises AuthError; turn it into a response with ``auth_error_response``."""
    return await authenticator_of(connection).require(
        connection.headers.get("authorization"), scope
    )


def auth_error_response(error: AuthError, request_id: str) -> JSONResponse:
    """401/403 with ``WWW-Authenticate`` (RFC 6750 §3) and a typed JSON body."""
    return JSONResponse(
        {
            "errors": [
                {
                    "message": error.description,
                    "extensions": {
                        "code": "UNAUTHENTICATED" if error.status == 401 else "FORBIDDEN",
                        "reason": error.code,
                        "requestId": request_id,
                    },
                }
            ]
        },
        status_code=error.status,
        headers={"WWW-Authenticate": error.www_authenticate(), "X-Request-Id": request_id},
    )


# --- websockets --------------------------------------------------------------------------


class ConnectionRejected(Exception):
    """A websocket connection may not proceed; close it with ``close_code``."""

    close_code = WEBSOCKET_REJECTED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def origin_allowed(websocket: HTTPConnection, allowed: list[str]) -> bool:
    """No ``Origin`` (not a browser), the server's own origin, or one in the allow-list."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    host = websocket.headers.get("host")
    parts = urlsplit(origin)
    return host is not None and parts.netloc == host


async def authorize_connection(payload: object, websocket: WebSocket) -> Viewer:
    """The caller of a websocket, from ``Authorization`` in the ``connection_init`` payload.

    Raises ConnectionRejected (close 4403) for a foreign origin or a bad token."""
    settings: Settings = authenticator_of(websocket).settings
    if not origin_allowed(websocket, settings.allowed_origins):
        raise ConnectionRejected("origin not allowed")
    authorization: object = None
    if isinstance(payload, Mapping):
        authorization = payload.get("Authorization", payload.get("authorization"))
    if authorization is not None and not isinstance(authorization, str):
        raise ConnectionRejected("Authorization must be a string")
    try:
        return await authenticator_of(websocket).authenticate(authorization)
    except AuthError as exc:
        raise ConnectionRejected(exc.description) from None
