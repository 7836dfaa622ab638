"""``POST /oauth/token``: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

Client authentication: ``client_secret_basic`` (HTTP Basic, RFC 6749 §2.3.1) or
``client_secret_post`` (``client_id`` and ``client_secret`` in the form body), never both.
Errors follow §5.2: ``400`` with ``invalid_request`` / ``unsupported_grant_type`` /
``invalid_scope``, ``401 invalid_client`` with ``WWW-Authenticate`` for a wrong secret or a
revoked or unknown client. Every answer carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.auth import authenticator_of
from api.ratelimit import rate_limiter_of
from readmodel.clients import ApiClient, verify_secret

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 8192
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _error_response(exc: TokenError, request_id: str) -> JSONResponse:
    headers = {**NO_STORE, "X-Request-Id": request_id}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="guestgraph", charset="UTF-8"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description, "request_id": request_id},
        status_code=exc.status,
        headers=headers,
    )


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise TokenError("invalid_request", f"the body must be {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise TokenError("invalid_request", "the body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise TokenError("invalid_request", "the body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 §3.2: parameters must not be repeated
            raise TokenError("invalid_request", f"parameter {name} is repeated")
        form[name] = value
    return form


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise TokenError("invalid_client", "unsupported client authentication", 401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TokenError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise TokenError("invalid_client", "malformed Basic credentials", 401)
    # §2.3.1: both parts are form-urlencoded before base64
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization")
    in_body = "client_secret" in form
    if header and in_body:
        raise TokenError("invalid_request", "use exactly one client authentication method")
    if header:
        client_id, secret = _basic_credentials(header)
        if form.get("client_id") not in (None, client_id):
            raise TokenError("invalid_request", "client_id does not match the credentials")
        return client_id, secret
    if in_body and form.get("client_id"):
        return form["client_id"], form["client_secret"]
    raise TokenError("invalid_client", "client authentication is required", 401)


async def _authenticate_client(request: Request, client_id: str, secret: str) -> ApiClient:
    client = await authenticator_of(request).client(client_id)
    now = datetime.now(UTC)
    hashes = client.secret_hashes(now) if client is not None else []
    # Always spend one KDF run, so response time does not reveal which client ids exist.
    candidates = hashes or ["scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA"]
    matches = [await asyncio.to_thread(verify_secret, secret, h) for h in candidates]
    if client is None or client.is_revoked or not any(matches):
        raise TokenError("invalid_client", "client authentication failed", 401)
    return client


def _granted_scopes(client: ApiClient, form: dict[str, str]) -> frozenset[str]:
    requested = form.get("scope")
    if requested is None:
        return frozenset(client.scopes)
    wanted = frozenset(requested.split())
    if not wanted or not wanted <= frozenset(client.scopes):
        raise TokenError("invalid_scope", "the requested scope exceeds the client's scopes")
    return wanted


async def token_endpoint(request: Request) -> Response:
    request_id = uuid.uuid4().hex
    limited = await rate_limiter_of(request).hit_token_endpoint(request)
    if limited is not None:
        return JSONResponse(
            {
                "error": "slow_down",
                "error_description": "too many token requests",
                "request_id": request_id,
            },
            status_code=429,
            headers={**NO_STORE, "Retry-After": str(limited), "X-Request-Id": request_id},
        )
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise TokenError("invalid_request", "grant_type is required")
        client_id, secret = _credentials(request, form)
        if grant_type != "client_credentials":
            raise TokenError("unsupported_grant_type", "only client_credentials is supported")
        client = await _authenticate_client(request, client_id, secret)
        scopes = _granted_scopes(client, form)
        try:
            issued = authenticator_of(request).issue(client, scopes)
        except RuntimeError:
            raise TokenError(
                "temporarily_unavailable", "token issuing is not configured", 503
            ) from None
    except TokenError as exc:
        return _error_response(exc, request_id)
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    return JSONResponse(body, headers={**NO_STORE, "X-Request-Id": request_id})


def oauth_routes() -> list[Route]:
    return [Route("/oauth/token", token_endpoint, methods=["POST"])]
