"""POST /oauth/token (client credentials) and the `guestgraph clients` commands."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from api.cli import app as cli_app
from api.settings import Settings
from domain.viewer import Role
from readmodel import clients as client_store
from tests.factories import make_store
from tests.security_support import SECRET, app_client, bearer, security_settings

FAST = 2**10  # a cheap scrypt cost for clients created in tests


@pytest.fixture
def auth_settings(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return security_settings(database_url, redis_url, redis_prefix, client_cache_s=0)


@pytest.fixture
async def http(engine: AsyncEngine, auth_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(auth_settings) as client:
        yield client


async def partner(engine: AsyncEngine, **kwargs: object) -> client_store.CreatedClient:
    store = await make_store(engine, name="North")
    return await client_store.create_client(
        engine,
        name="Acme delivery",
        role=Role.PARTNER,
        scopes=["orders:read", "customers:read"],
        store_ids=[store],
        secret_cost=FAST,
        **kwargs,  # type: ignore[arg-type]
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


FORM = {"grant_type": "client_credentials"}


async def test_client_secret_basic_gets_a_short_lived_token_with_role_scopes_and_stores(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    response = await http.post(
        "/oauth/token", data=FORM, headers=basic(created.client.id, created.secret)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "customers:read orders:read"
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="guestgraph")
    assert claims["role"] == "partner"
    assert claims["client_id"] == created.client.id
    assert claims["stores"] == [str(s) for s in created.client.store_ids]
    assert claims["exp"] - claims["iat"] == 900


async def test_client_secret_post_works_and_the_token_opens_graphql(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    response = await http.post(
        "/oauth/token",
        data={**FORM, "client_id": created.client.id, "client_secret": created.secret},
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    answer = await http.post("/graphql", json={"query": "{ ping }"}, headers=bearer(token))
    assert answer.json() == {"data": {"ping": "pong"}}


@pytest.mark.parametrize("how", ["wrong-secret", "unknown-client", "garbage-basic"])
async def test_bad_credentials_are_401_invalid_client_with_www_authenticate(
    engine: AsyncEngine, http: httpx.AsyncClient, how: str
) -> None:
    created = await partner(engine)
    headers = {
        "wrong-secret": basic(created.client.id, "ggs_wrong"),
        "unknown-client": basic("ggc_nobody", created.secret),
        "garbage-basic": {"Authorization": "Basic !!!not-base64"},
    }[how]
    response = await http.post("/oauth/token", data=FORM, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert "access_token" not in response.json()


async def test_a_revoked_client_gets_no_token_and_its_tokens_stop_working(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    token = (
        await http.post("/oauth/token", data=FORM, headers=basic(created.client.id, created.secret))
    ).json()["access_token"]
    await client_store.revoke_client(engine, created.client.id)
    refused = await http.post(
        "/oauth/token", data=FORM, headers=basic(created.client.id, created.secret)
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    answer = await http.post("/graphql", json={"query": "{ ping }"}, headers=bearer(token))
    assert answer.status_code == 401


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    rotated = await client_store.rotate_secret(
        engine, created.client.id, grace=timedelta(hours=1), secret_cost=FAST
    )
    for secret in (created.secret, rotated.secret):
        ok = await http.post("/oauth/token", data=FORM, headers=basic(created.client.id, secret))
        assert ok.status_code == 200
    again = await client_store.rotate_secret(
        engine, created.client.id, grace=timedelta(0), secret_cost=FAST
    )
    for secret in (created.secret, rotated.secret):
        old = await http.post("/oauth/token", data=FORM, headers=basic(created.client.id, secret))
        assert old.status_code == 401
    new = await http.post("/oauth/token", data=FORM, headers=basic(created.client.id, again.secret))
    assert new.status_code == 200


async def test_a_narrower_scope_may_be_requested_but_never_a_wider_one(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    auth = basic(created.client.id, created.secret)
    narrow = await http.post("/oauth/token", data={**FORM, "scope": "orders:read"}, headers=auth)
    assert narrow.json()["scope"] == "orders:read"
    wide = await http.post("/oauth/token", data={**FORM, "scope": "pii:read"}, headers=auth)
    assert wide.status_code == 400
    assert wide.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "error"),
    [
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type"),
        ({}, None, 400, "invalid_request"),
        (None, "application/json", 400, "invalid_request"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            None,
            400,
            "invalid_request",
        ),
    ],
)
async def test_malformed_token_requests_get_rfc_6749_errors(
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    data: object,
    content_type: str | None,
    status: int,
    error: str,
) -> None:
    created = await partner(engine)
    headers = basic(created.client.id, created.secret)
    if content_type is not None:
        response = await http.post(
            "/oauth/token",
            content=b'{"grant_type":"client_credentials"}',
            headers={**headers, "Content-Type": content_type},
        )
    elif isinstance(data, str):
        response = await http.post(
            "/oauth/token",
            content=data.encode(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        response = await http.post("/oauth/token", data=data, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_both_authentication_methods_at_once_are_refused(
    engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    created = await partner(engine)
    response = await http.post(
        "/oauth/token",
        data={**FORM, "client_id": created.client.id, "client_secret": created.secret},
        headers=basic(created.client.id, created.secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_secrets_are_stored_as_scrypt_hashes() -> None:
    stored = client_store.hash_secret("ggs_example", n=FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert "ggs_example" not in stored
    assert client_store.verify_secret("ggs_example", stored)
    assert not client_store.verify_secret("ggs_other", stored)
    assert not client_store.verify_secret("ggs_example", "md5$whatever")


def test_the_clients_cli_creates_lists_rotates_and_revokes(
    engine: AsyncEngine, database_url: str
) -> None:
    runner = CliRunner()
    env = {"GUESTGRAPH_DATABASE_URL": database_url, "COLUMNS": "200"}
    created = runner.invoke(
        cli_app,
        [
            "clients",
            "create",
            "Support desk",
            "--role",
            "support",
            "--scope",
            "customers:read",
            "--scope",
            "pii:read",
            "--json",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    ids = json.loads(created.output)
    assert ids["client_id"].startswith("ggc_") and ids["client_secret"].startswith("ggs_")
    listed = runner.invoke(cli_app, ["clients", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["scopes"] == ["customers:read", "pii:read"]
    assert ids["client_secret"] not in listed.output
    table = runner.invoke(cli_app, ["clients", "list"], env=env)
    assert "Support desk" in table.output
    rotated = runner.invoke(cli_app, ["clients", "rotate", ids["client_id"], "--json"], env=env)
    assert json.loads(rotated.output)["client_secret"] != ids["client_secret"]
    revoked = runner.invoke(cli_app, ["clients", "revoke", ids["client_id"]], env=env)
    assert revoked.exit_code == 0
    listed = runner.invoke(cli_app, ["clients", "list", "--json"], env=env)
    assert json.loads(listed.output)[0]["revoked"] is True
    bad = runner.invoke(cli_app, ["clients", "create", "x", "--role", "root"], env=env)
    assert bad.exit_code == 2
    missing = runner.invoke(cli_app, ["clients", "revoke", "ggc_nope"], env=env)
    assert missing.exit_code == 2
