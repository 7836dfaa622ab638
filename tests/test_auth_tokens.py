"""Bearer tokens: what is accepted, what is refused, and who the caller turns out to be."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import Authenticator, AuthError
from api.settings import Mode, Settings
from domain.model import Source
from domain.viewer import ANONYMOUS, DEVELOPMENT_ADMIN, Role
from readmodel import identity
from tests.factories import make_customer, make_store
from tests.security_support import AUDIENCE, ISSUER, SECRET, make_token, security_settings

# --- a real JWKS server on 127.0.0.1 ----------------------------------------------------


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(
        jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key())
    )
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def signed(private: Any, alg: str, kid: str | None, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "idp-user",
        "role": "support",
        "scope": "customers:read",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    headers = {"kid": kid} if kid else {}
    return jwt.encode(payload, private, algorithm=alg, headers=headers)


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture
async def authenticator(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str, jwks: JwksServer
) -> AsyncIterator[Authenticator]:
    settings = security_settings(database_url, redis_url, redis_prefix, jwks_url=jwks.url)
    auth = Authenticator(settings, engine)
    yield auth
    await auth.aclose()


async def rejected(auth: Authenticator, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(f"Bearer {token}")
    assert caught.value.status == 401
    return caught.value


# --- HS256 ---------------------------------------------------------------------------


async def test_a_valid_hs256_token_gives_its_role_and_scopes(authenticator: Authenticator) -> None:
    viewer = await authenticator.authenticate(
        "Bearer " + make_token(role="support", scope="customers:read pii:read", sub="sam")
    )
    assert viewer.role is Role.SUPPORT
    assert viewer.subject == "sam"
    assert viewer.scopes == {"customers:read", "pii:read"}
    assert viewer.store_ids is None


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"lifetime_s": -120}, "token expired"),
        ({"nbf": int(time.time()) + 600}, "token not yet valid"),
        ({"iss": "someone-else"}, "token has the wrong issuer"),
        ({"aud": "another-api"}, "token has the wrong audience"),
        ({"role": "superuser"}, "token has no valid role"),
        ({"role": "anonymous"}, "token has no valid role"),
        ({"secret": "a-different-secret-of-sufficient-length-000"}, "signature"),
        ({"scope": ["pii:read"]}, "scope must be a space-separated string"),
    ],
)
async def test_bad_hs256_tokens_are_refused(
    authenticator: Authenticator, claims: dict[str, Any], reason: str
) -> None:
    base: dict[str, Any] = {"role": "admin"}
    base.update(claims)
    error = await rejected(authenticator, make_token(**base))
    assert reason in error.description


async def test_a_token_without_exp_is_refused(authenticator: Authenticator) -> None:
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "role": "admin"}, SECRET, algorithm="HS256"
    )
    await rejected(authenticator, token)


async def test_alg_none_is_refused(authenticator: Authenticator) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "role": "admin", "exp": now + 60}
    token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    error = await rejected(authenticator, token)
    assert "algorithm" in error.description


async def test_a_tampered_payload_is_refused(authenticator: Authenticator) -> None:
    header, payload, signature = make_token(role="partner", stores=[1]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    await rejected(authenticator, f"{header}.{forged}.{signature}")


async def test_hs256_signed_with_the_jwks_public_key_is_refused(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    """Algorithm confusion: an attacker signs HS256 using the public key as the secret."""
    private = rsa_key()
    jwks.keys = [public_jwk(private, "k1", "RS256")]
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "role": "admin", "exp": now + 60}
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"k1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    await rejected(authenticator, token)


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc", "Bearer not.a.jwt", "Bearer ...."],
)
async def test_malformed_authorization_headers_are_refused(
    authenticator: Authenticator, header: str
) -> None:
    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate(header)
    assert caught.value.code == "invalid_token"


async def test_an_oversized_token_is_refused(authenticator: Authenticator) -> None:
    await rejected(authenticator, "a" * 10_000)


# --- JWKS (RS256 / ES256) ------------------------------------------------------------------


async def test_rs256_and_es256_tokens_verify_against_the_jwks(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    rsa_private = rsa_key()
    ec_private = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [public_jwk(rsa_private, "rsa-1", "RS256"), public_jwk(ec_private, "ec-1", "ES256")]
    for private, alg, kid in ((rsa_private, "RS256", "rsa-1"), (ec_private, "ES256", "ec-1")):
        viewer = await authenticator.authenticate("Bearer " + signed(private, alg, kid))
        assert viewer.role is Role.SUPPORT
        assert viewer.subject == "idp-user"


async def test_an_unknown_kid_refetches_the_jwks_once_then_caches(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    first = rsa_key()
    jwks.keys = [public_jwk(first, "old", "RS256")]
    await authenticator.authenticate("Bearer " + signed(first, "RS256", "old"))
    assert jwks.hits == 1
    await authenticator.authenticate("Bearer " + signed(first, "RS256", "old"))
    assert jwks.hits == 1  # cached
    # the provider rotates its key; the first token with the new kid triggers one refetch
    second = rsa_key()
    jwks.keys = [public_jwk(first, "old", "RS256"), public_jwk(second, "new", "RS256")]
    authenticator._jwks._fetched_at -= 60  # type: ignore[union-attr]  # past the refetch floor
    await authenticator.authenticate("Bearer " + signed(second, "RS256", "new"))
    assert jwks.hits == 2
    await authenticator.authenticate("Bearer " + signed(second, "RS256", "new"))
    assert jwks.hits == 2


async def test_a_kid_nobody_published_is_refused_without_hammering_the_jwks(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    private = rsa_key()
    jwks.keys = [public_jwk(private, "real", "RS256")]
    for _ in range(5):
        error = await rejected(authenticator, signed(private, "RS256", "invented"))
        assert "unknown signing key" in error.description
    assert jwks.hits == 1


async def test_a_jwks_key_used_with_the_wrong_algorithm_family_is_refused(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    rsa_private = rsa_key()
    ec_private = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [public_jwk(rsa_private, "k", "RS256")]
    # an ES256 token claiming the RSA key's kid
    await rejected(authenticator, signed(ec_private, "ES256", "k"))


async def test_an_rs256_token_signed_by_a_stranger_is_refused(
    authenticator: Authenticator, jwks: JwksServer
) -> None:
    jwks.keys = [public_jwk(rsa_key(), "k", "RS256")]
    await rejected(authenticator, signed(rsa_key(), "RS256", "k"))


# --- who the caller is ----------------------------------------------------------------------


async def test_no_token_is_anonymous_in_production_and_admin_in_development(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    production = security_settings(database_url, redis_url, redis_prefix)
    development = security_settings(database_url, redis_url, redis_prefix, mode=Mode.DEVELOPMENT)
    for settings, expected in ((production, ANONYMOUS), (development, DEVELOPMENT_ADMIN)):
        auth = Authenticator(settings, engine)
        assert await auth.authenticate(None) == expected
        await auth.aclose()


async def test_partner_stores_resolve_from_api_ids_and_source_external_ids(
    authenticator: Authenticator, engine: AsyncEngine
) -> None:
    north = await make_store(engine, name="North", external_id="L-NORTH")
    south = await make_store(engine, name="South", source=Source.TOAST, external_id="T-SOUTH")
    await make_store(engine, name="Elsewhere", external_id="L-OTHER")
    token = make_token(
        role="partner",
        scope="orders:read",
        stores=[str(north), "TOAST:T-SOUTH", "L-UNKNOWN", 99999],
    )
    viewer = await authenticator.authenticate(f"Bearer {token}")
    assert viewer.store_ids == {north, south}


async def test_a_partner_token_without_stores_sees_no_store(authenticator: Authenticator) -> None:
    viewer = await authenticator.authenticate("Bearer " + make_token(role="partner"))
    assert viewer.store_ids == frozenset()


async def test_a_customer_token_resolves_to_the_golden_customer_even_after_a_merge(
    authenticator: Authenticator, engine: AsyncEngine
) -> None:
    dana = await make_customer(engine, source=Source.SQUARE, external_id="7Y4E2KQ9")
    viewer = await authenticator.authenticate(
        "Bearer " + make_token(role="customer", sub="SQUARE:7Y4E2KQ9")
    )
    assert viewer.role is Role.CUSTOMER
    assert viewer.customer_id == dana
    survivor = await make_customer(engine, source=Source.HUBSPOT, external_id="hs-1")
    async with engine.begin() as conn:
        await conn.execute(
            identity.customers.update()
            .where(identity.customers.c.id == dana)
            .values(merged_into=survivor)
        )
    fresh = Authenticator(authenticator.settings, engine)
    viewer = await fresh.authenticate(
        "Bearer " + make_token(role="customer", sub="square:7Y4E2KQ9")
    )
    await fresh.aclose()
    assert viewer.customer_id == survivor


async def test_a_customer_token_with_an_unknown_identity_sees_nobody(
    authenticator: Authenticator,
) -> None:
    viewer = await authenticator.authenticate(
        "Bearer " + make_token(role="customer", sub="SQUARE:nobody")
    )
    assert viewer.customer_id is None
    await rejected(authenticator, make_token(role="customer", sub="not-a-source-identity"))


async def test_require_answers_401_without_a_token_and_403_without_the_scope(
    authenticator: Authenticator,
) -> None:
    with pytest.raises(AuthError) as missing:
        await authenticator.require(None, "ingest:write")
    assert missing.value.status == 401
    with pytest.raises(AuthError) as lacking:
        await authenticator.require(
            "Bearer " + make_token(role="partner", scope="orders:read"), "ingest:write"
        )
    assert lacking.value.status == 403
    assert lacking.value.code == "insufficient_scope"
    assert 'scope="ingest:write"' in lacking.value.www_authenticate()
    viewer = await authenticator.require(
        "Bearer " + make_token(role="partner", scope="ingest:write"), "ingest:write"
    )
    assert viewer.has_scope("ingest:write")


def test_a_short_jwt_secret_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(jwt_secret="short")


async def test_graphql_answers_401_with_www_authenticate_for_a_bad_token(
    engine: AsyncEngine, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    from tests.security_support import app_client

    settings = security_settings(database_url, redis_url, redis_prefix)
    async with app_client(settings) as client:
        response = await client.post(
            "/graphql",
            json={"query": "{ ping }"},
            headers={"Authorization": "Bearer " + make_token(role="admin", lifetime_s=-300)},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="guestgraph"')
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
