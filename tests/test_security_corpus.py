"""The bad-input corpus (tests/corpus/cases.json) against a live server on a real socket.

For every case: the documented status and typed error, never a 5xx, no stack trace or SQL
in the body, and the request id in every GraphQL and token-endpoint error. At the end the
server still answers a normal query.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.app import create_app
from domain import signatures
from tests.security_support import (
    PARTNER_SCOPES,
    SUPPORT_SCOPES,
    make_token,
    security_settings,
)
from tests.services import free_port

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "corpus" / "cases.json").read_text()
)
LEAKS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "psycopg", "SELECT ", "INSERT ")
SQUARE_KEY = "square-signature-key-for-tests"
TOAST_SECRET = "toast-secret-for-tests-000000000000"
HUBSPOT_SECRET = "hubspot-secret-for-tests-0000000000"
SALESFORCE_SECRET = "whsec_" + base64.b64encode(b"salesforce-secret-for-tests-0000").decode()


class LiveServer:
    def __init__(self, settings_kwargs: dict[str, Any]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        settings = security_settings(
            **settings_kwargs,
            square_signature_key=SQUARE_KEY,
            square_notification_url=f"{self.base}/webhooks/square",
            toast_webhook_secret=TOAST_SECRET,
            hubspot_client_secret=HUBSPOT_SECRET,
            hubspot_webhook_url=f"{self.base}/webhooks/hubspot",
            salesforce_webhook_secret=SALESFORCE_SECRET,
            rate_limit_anonymous="100000/minute",
            rate_limit_client="100000/minute",
            rate_limit_token_endpoint="100000/minute",
        )
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level=os.environ.get("GG_LIVE_LOG", "critical"),
            lifespan="on",
            ws_max_size=1_048_576,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def live(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer(
        {"database_url": database_url, "redis_url": redis_url, "redis_prefix": "gg-corpus:"}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=30) as client:
        yield client


def authorization(mode: str) -> dict[str, str]:
    now = int(time.time())
    good = {
        "iss": "guestgraph",
        "aud": "guestgraph",
        "sub": "c",
        "role": "support",
        "exp": now + 60,
    }
    tokens = {
        "support": make_token(role="support", scope=SUPPORT_SCOPES, sub="corpus"),
        "partner": make_token(role="partner", scope=PARTNER_SCOPES, stores=["L-NOWHERE"]),
        "expired": make_token(role="admin", lifetime_s=-600),
        "alg-none": jwt.encode(good, None, algorithm="none"),  # type: ignore[arg-type]
        "garbage": "not-a-token",
        "wrong-secret": make_token(role="admin", secret="another-secret-that-is-long-enough-0"),
        "wrong-audience": make_token(role="admin", aud="other"),
        "wrong-issuer": make_token(role="admin", iss="other"),
        "bad-role": make_token(role="root"),
        "oversized": "x" * 9000,
        "customer-bad-subject": make_token(role="customer", sub="no-source-here"),
        "not-yet-valid": make_token(role="admin", nbf=now + 3600),
        "tampered": make_token(role="partner")[:-4] + "AAAA",
        "nul-client-id": make_token(role="support", client_id="ggc_\u0000"),
        "nul-customer-subject": make_token(role="customer", sub="SQUARE:\u0000"),
        "nul-store": make_token(role="partner", stores=["SQUARE:\u0000"]),
    }
    if mode == "none":
        return {}
    if mode == "basic":
        return {"Authorization": "Basic dXNlcjpwYXNz"}
    if mode == "bearer-empty":
        return {"Authorization": "Bearer"}
    if mode == "two-tokens":
        return {"Authorization": f"Bearer {tokens['support']} {tokens['support']}"}
    return {"Authorization": f"Bearer {tokens[mode]}"}


def http_request(http: httpx.Client, case: dict[str, Any]) -> httpx.Response:
    default_auth = "support" if case["path"] == "/graphql" else "none"
    headers = {**authorization(case.get("auth", default_auth)), **case.get("headers", {})}
    if "raw_query" in case:
        return http.get(f"{case['path']}?{case['raw_query']}", headers=headers)
    if case["method"] == "GET":
        return http.get(case["path"], params=case["params"], headers=headers)
    if "json" in case:
        body = json.dumps(case["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "repeat" in case:
        r = case["repeat"]
        body = (r["prefix"] + r["unit"] * r["times"] + r["suffix"]).encode()
    else:
        body = base64.b64decode(case["b64"])
    if "content_type" in case:
        if case["content_type"]:
            headers["Content-Type"] = case["content_type"]
        else:
            headers["Content-Type"] = ""
    return http.request(case["method"], case["path"], content=body, headers=headers)


def webhook_request(http: httpx.Client, live: LiveServer, case: dict[str, Any]) -> httpx.Response:
    source, signing = case["source"], case["signing"]
    body = case["body"].encode()
    sent = body
    if signing == "truncated":
        sent = body[: len(body) // 2]
    elif signing == "empty-body":
        sent = b""
    elif signing == "not-json":
        body = sent = b"this is not json"
    secret_for = {
        "square": SQUARE_KEY,
        "toast": TOAST_SECRET,
        "hubspot": HUBSPOT_SECRET,
        "salesforce": SALESFORCE_SECRET,
    }
    secret = secret_for[source]
    if signing == "wrong-secret":
        secret = (
            "whsec_" + base64.b64encode(b"some-other-secret-entirely-0000").decode()
            if source == "salesforce"
            else "some-other-secret-entirely"
        )
    now = int(time.time())
    headers: dict[str, str] = {"Content-Type": "application/json"}
    url = f"/webhooks/{source}"
    if source == "square":
        signed_url = live.base + url if signing != "other-url" else "https://evil.example/hook"
        headers["x-square-hmacsha256-signature"] = signatures.square_signature(
            secret, signed_url, body
        )
    elif source == "toast":
        stamp = "2026-01-01T00:00:00.000Z" if signing != "other-timestamp" else "1999-01-01"
        headers["Toast-Signature"] = signatures.toast_signature(secret, body, stamp)
    elif source == "hubspot":
        stamp = str((now - (3600 if signing == "stale" else 0)) * 1000)
        headers["X-HubSpot-Request-Timestamp"] = stamp
        headers["X-HubSpot-Signature-v3"] = signatures.hubspot_v3_signature(
            secret, "POST", live.base + url, body, stamp
        )
    else:
        stamp = str(now - (3600 if signing == "stale" else 0))
        headers["webhook-id"] = "msg-1"
        headers["webhook-timestamp"] = stamp
        headers["webhook-signature"] = signatures.standard_webhooks_signature(
            secret, "msg-1", stamp, body
        )
    if signing == "missing":
        headers = {"Content-Type": "application/json"}
        if source == "salesforce":
            headers.update({"webhook-id": "msg-1", "webhook-timestamp": str(now)})
        if source == "hubspot":
            headers["X-HubSpot-Request-Timestamp"] = str(now * 1000)
    elif signing == "garbage":
        for name in list(headers):
            if "signature" in name.lower():
                headers[name] = "garbage=="
    return http.post(url, content=sent, headers=headers)


def code_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("errors"), list) and body["errors"]:
        code = body["errors"][0].get("extensions", {}).get("code")
        return code if isinstance(code, str) else None
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        return error.get("code")
    return None


def check_request_ids(response: httpx.Response, body: Any, path: str) -> None:
    request_id = response.headers.get("x-request-id")
    assert request_id, "no X-Request-Id header"
    if path == "/graphql" and isinstance(body, dict):
        for error in body.get("errors", []):
            assert error["extensions"]["requestId"] == request_id, error
    if path == "/oauth/token":
        assert body["request_id"] == request_id


HTTP_CASES = [c for c in CASES if c["kind"] in ("http", "webhook")]
WS_CASES = [c for c in CASES if c["kind"] == "websocket" and "close" in c["expect"]]
WS_FLOODS = [c for c in CASES if c["kind"] == "websocket" and "errors" in c["expect"]]


def test_the_corpus_holds_at_least_300_cases_with_unique_ids() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 300
    assert len(ids) == len(set(ids))


@pytest.mark.e2e
@pytest.mark.parametrize("case", HTTP_CASES, ids=[c["id"] for c in HTTP_CASES])
def test_corpus_case_gets_its_documented_answer(
    http: httpx.Client, live: LiveServer, case: dict[str, Any]
) -> None:
    if case["kind"] == "webhook":
        response = webhook_request(http, live, case)
    else:
        response = http_request(http, case)
    assert response.status_code < 500, response.text[:500]
    expected = case["expect"]
    statuses = expected["status"] if isinstance(expected["status"], list) else [expected["status"]]
    assert response.status_code in statuses, response.text[:500]
    for leak in LEAKS:
        assert leak not in response.text, f"{leak!r} leaked: {response.text[:300]}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if expected["code"] is not None:
        assert code_of(body) == expected["code"], response.text[:500]
    if case["kind"] == "http" and (response.status_code >= 400 or code_of(body)):
        check_request_ids(response, body, case["path"])


@pytest.mark.e2e
@pytest.mark.parametrize("case", WS_CASES, ids=[c["id"] for c in WS_CASES])
def test_corpus_websocket_case_closes_with_its_code(live: LiveServer, case: dict[str, Any]) -> None:
    url = f"ws://127.0.0.1:{live.port}/graphql"
    protocols: Any = ["graphql-transport-ws"]
    with (
        connect(url, subprotocols=protocols, open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        support = make_token(role="support", scope=SUPPORT_SCOPES, sub="corpus")
        for frame in case["frames"]:
            if "b64" in frame:
                ws.send(base64.b64decode(frame["b64"]))
            else:
                ws.send(frame["text"].replace("$TOKEN", support))
        for _ in range(10):
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == case["expect"]["close"]


@pytest.mark.e2e
@pytest.mark.parametrize("case", WS_FLOODS, ids=[c["id"] for c in WS_FLOODS])
def test_corpus_websocket_flood_gets_one_error_each_and_the_socket_survives(
    live: LiveServer, case: dict[str, Any]
) -> None:
    support = make_token(role="support", scope=SUPPORT_SCOPES, sub="corpus")
    protocols: Any = ["graphql-transport-ws"]
    with connect(f"ws://127.0.0.1:{live.port}/graphql", subprotocols=protocols) as ws:
        for frame in case["frames"]:
            ws.send(frame["text"].replace("$TOKEN", support))
        count = case["expect"]["errors"] + 1
        kinds = [json.loads(ws.recv(timeout=10))["type"] for _ in range(count)]
        assert kinds[0] == "connection_ack"
        assert set(kinds[1:]) == {"error"}
        ws.send(json.dumps({"type": "ping"}))
        while (message := json.loads(ws.recv(timeout=10)))["type"] == "ping":
            pass
        assert message["type"] == "pong"


@pytest.mark.e2e
def test_the_server_still_answers_a_normal_query_after_the_corpus(http: httpx.Client) -> None:
    response = http.post(
        "/graphql", json={"query": "{ stores { name } }"}, headers=authorization("support")
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"stores": []}} or "stores" in response.json()["data"]
