"""``/graphql`` over HTTP: the one door every query and mutation comes through.

In order, each step answering with a typed error (``extensions.code``, ``requestId``)
and the right status when it refuses:

1. method (GET, POST; else 405) — GraphiQL for browsers, in development mode only;
2. authentication (401 / ``WWW-Authenticate``) and rate limit (429 + ``Retry-After``);
3. transport: POST must be ``application/json`` (415), at most ``max_body_bytes`` (413),
   strict JSON (invalid UTF-8, lone surrogates, NaN, duplicate keys → 400), one operation
   per request (a JSON array: 400, no batching);
4. persisted queries: APQ (``extensions.persistedQuery``, kept in Redis) and trusted
   documents for clients restricted to an allow-list (403);
5. parse (token limit), depth / aliases / directives / introspection limits, validation,
   operation selection, GET only for queries (405), cost (400, reported in ``extensions``);
6. execution under a timeout (``OPERATION_TIMEOUT``); unexpected errors are masked.

The handler only needs a strawberry ``Schema``: it prepares the document itself and hands
it over through ``resolvers.protection.PREPARED`` so nothing is parsed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import strawberry
from graphql import GraphQLError, OperationType
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.http.ides import get_graphql_ide_html
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.graphql import OperationType as StrawberryOperationType

from api.auth import Authenticator, AuthError, TtlCache, auth_error_response
from api.ratelimit import RateLimiter
from api.settings import Settings
from domain.viewer import Viewer
from readmodel import clients as client_store
from readmodel.audit import AuditLog
from readmodel.clients import ApiClient
from resolvers.context import Context
from resolvers.protection import (
    PREPARED,
    DocumentCache,
    Limits,
    install_protection,
    is_timeout,
    may_introspect,
    operation_of,
    strip_suggestions,
)

log = logging.getLogger("guestgraph.graphql")

JSON_TYPES = {"application/json"}
APQ_VERSION = 1
APQ_MEMORY_ENTRIES = 5000
TRUSTED_CACHE_S = 60.0


class RequestRefused(Exception):
    """The request cannot run; carries the status and the typed error to answer with."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


@dataclass(frozen=True)
class GraphQLParams:
    query: str | None
    operation_name: str | None
    variables: dict[str, Any] | None
    extensions: dict[str, Any] | None


# --- persisted queries ------------------------------------------------------------------------


class PersistedQueries:
    """Automatic persisted queries: sha256 → document, in Redis (shared by all processes)
    or in a bounded in-process map without Redis."""

    def __init__(self, redis: aioredis.Redis | None, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}apq:"
        self._ttl = ttl_s
        self._memory: dict[str, str] = {}

    async def get(self, sha256: str) -> str | None:
        if self._redis is None:
            return self._memory.get(sha256)
        try:
            raw = await self._redis.get(self._prefix + sha256)
        except Exception as exc:  # Redis down: behave as a cache miss
            log.warning("APQ lookup failed: %s", type(exc).__name__)
            return None
        return raw.decode() if isinstance(raw, bytes) else None

    async def put(self, sha256: str, query: str) -> None:
        if self._redis is None:
            if len(self._memory) >= APQ_MEMORY_ENTRIES:
                self._memory.clear()
            self._memory[sha256] = query
            return
        try:
            await self._redis.set(self._prefix + sha256, query.encode(), ex=self._ttl)
        except Exception as exc:
            log.warning("APQ store failed: %s", type(exc).__name__)


# --- the app-wide security resources ------------------------------------------------------------


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_tokens=settings.max_query_tokens,
        max_directives_per_field=settings.max_directives_per_field,
        max_cost=settings.max_query_cost,
        development=settings.is_development,
    )


@dataclass
class Security:
    authenticator: Authenticator
    rate_limiter: RateLimiter
    audit_log: AuditLog
    persisted: PersistedQueries
    redis: aioredis.Redis | None

    async def aclose(self) -> None:
        await self.audit_log.stop()
        await self.authenticator.aclose()
        if self.redis is not None:
            await self.redis.aclose()
            await self.redis.connection_pool.disconnect()


async def start_security(app: Starlette, settings: Settings, engine: AsyncEngine) -> Security:
    """Create auth, rate limits, audit log and persisted queries; put them on app.state."""
    redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
    security = Security(
        authenticator=Authenticator(settings, engine),
        rate_limiter=RateLimiter(settings, redis),
        audit_log=AuditLog(engine),
        persisted=PersistedQueries(redis, settings.redis_prefix, settings.apq_ttl_s),
        redis=redis,
    )
    await security.audit_log.start()
    app.state.authenticator = security.authenticator
    app.state.rate_limiter = security.rate_limiter
    app.state.audit_log = security.audit_log
    app.state.persisted_queries = security.persisted
    app.state.protection_limits = limits_from(settings)
    return security


@contextlib.asynccontextmanager
async def security_lifespan(
    app: Starlette, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[Security]:
    security = await start_security(app, settings, engine)
    try:
        yield security
    finally:
        await security.aclose()


# --- request parsing -----------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RequestRefused(400, "BAD_REQUEST", f"Duplicate JSON key {key[:64]!r}.")
        result[key] = value
    return result


def strict_json(raw: bytes | str) -> Any:
    """Strict JSON: valid UTF-8, no lone surrogates, no NaN/Infinity, no duplicate keys."""
    try:
        orjson.loads(raw)  # strict on UTF-8, surrogates, NaN and nesting depth
    except orjson.JSONDecodeError:
        raise RequestRefused(400, "BAD_REQUEST", "The body is not valid JSON.") from None
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError):
        raise RequestRefused(400, "BAD_REQUEST", "The body is not valid JSON.") from None


def _optional(data: Mapping[str, Any], key: str, kind: type, label: str) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise RequestRefused(400, "BAD_REQUEST", f"'{key}' must be {label}.")
    return value


def params_from(data: Any) -> GraphQLParams:
    if isinstance(data, list):
        raise RequestRefused(
            400, "BATCHING_NOT_SUPPORTED", "Send one operation per request (no JSON arrays)."
        )
    if not isinstance(data, dict):
        raise RequestRefused(400, "BAD_REQUEST", "The body must be a JSON object.")
    return GraphQLParams(
        query=_optional(data, "query", str, "a string"),
        operation_name=_optional(data, "operationName", str, "a string"),
        variables=_optional(data, "variables", dict, "an object"),
        extensions=_optional(data, "extensions", dict, "an object"),
    )


def _get_params(request: Request) -> GraphQLParams:
    items = request.query_params.multi_items()
    data: dict[str, Any] = {}
    for key, value in items:
        if key in data:
            raise RequestRefused(400, "BAD_REQUEST", f"Parameter {key[:64]!r} is repeated.")
        data[key] = value
    for key in ("variables", "extensions"):
        if isinstance(data.get(key), str) and data[key] != "":
            data[key] = strict_json(data[key])
        elif data.get(key) == "":
            data[key] = None
    return params_from(data)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestRefused(400, "BAD_REQUEST", "Invalid Content-Length.")
        if int(declared) > limit:
            raise RequestRefused(413, "PAYLOAD_TOO_LARGE", f"The body exceeds {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestRefused(413, "PAYLOAD_TOO_LARGE", f"The body exceeds {limit} bytes.")
    return bytes(body)


def _check_content_type(request: Request) -> None:
    header = request.headers.get("content-type", "")
    media, _, rest = header.partition(";")
    if media.strip().lower() not in JSON_TYPES:
        raise RequestRefused(
            415, "UNSUPPORTED_MEDIA_TYPE", "POST /graphql takes Content-Type: application/json."
        )
    for parameter in rest.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE", "Only UTF-8 is accepted.")


async def _post_params(request: Request, limit: int) -> GraphQLParams:
    _check_content_type(request)
    body = await _read_body(request, limit)
    if not body.strip():
        raise RequestRefused(400, "BAD_REQUEST", "The body is empty.")
    return params_from(strict_json(body))


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not request.query_params


# --- response shaping ------------------------------------------------------------------------


def format_error(
    error: GraphQLError,
    request_id: str,
    *,
    hide_suggestions: bool,
    default_code: str = "GRAPHQL_VALIDATION_FAILED",
) -> dict[str, Any]:
    """The error as clients see it: unexpected failures masked, a code and the request id."""
    extensions = dict(error.extensions or {})
    original = error.original_error
    message = error.message
    if original is not None and not isinstance(original, GraphQLError) and "code" not in extensions:
        if is_timeout(original):
            message, extensions = "The operation took too long.", {"code": "OPERATION_TIMEOUT"}
        else:
            message, extensions = "Internal server error", {"code": "INTERNAL"}
    extensions.setdefault("code", default_code)
    extensions["requestId"] = request_id
    formatted: dict[str, Any] = {
        "message": strip_suggestions(message) if hide_suggestions else message
    }
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path is not None:
        formatted["path"] = error.path
    formatted["extensions"] = extensions
    return formatted


def _dumps(body: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # e.g. a lone surrogate in a string: escape rather than fail
        return json.dumps(body, ensure_ascii=True, default=str).encode()


def json_response(
    body: Mapping[str, Any],
    status: int,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        _dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


def refused_response(refusal: RequestRefused, request_id: str) -> Response:
    error = {
        "message": refusal.message,
        "extensions": {"code": refusal.code, **refusal.extensions, "requestId": request_id},
    }
    return json_response({"errors": [error]}, refusal.status, request_id, refusal.headers)


async def _within_rate_limit(limit: asyncio.Future[int | None]) -> None:
    """Raise 429 if the caller is over its rate limit."""
    retry_after = await limit
    if retry_after is not None:
        raise RequestRefused(
            429,
            "RATE_LIMITED",
            "Too many requests.",
            headers={"Retry-After": str(retry_after)},
            extensions={"retryAfter": retry_after},
        )


class StrictTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, closing with 4400 on a JSON frame that is not an object
    (strawberry indexes it as a dict and drops the connection without a close frame)."""

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.handle_invalid_message("Failed to parse message")
            return
        await super().handle_message(message)  # type: ignore[arg-type]


# --- the endpoint ---------------------------------------------------------------------------


class GraphQLHTTP:
    """The ASGI endpoint for HTTP ``/graphql``."""

    def __init__(self, schema: strawberry.Schema, settings: Settings) -> None:
        install_protection(schema)
        self.schema = schema
        self.settings = settings
        self.limits = limits_from(settings)
        self.documents = DocumentCache(schema._schema, self.limits)
        self._trusted: TtlCache[tuple[str, str], str | None] = TtlCache(TRUSTED_CACHE_S)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        try:
            return await self._handle(request, request_id)
        except RequestRefused as refusal:
            return refused_response(refusal, request_id)
        except AuthError as error:
            return auth_error_response(error, request_id)
        except Exception:  # the last line of defence: never a stack trace to the client
            log.exception("unexpected failure in /graphql (request %s)", request_id)
            internal = RequestRefused(500, "INTERNAL", "Internal server error")
            return refused_response(internal, request_id)

    async def _handle(self, request: Request, request_id: str) -> Response:
        method = request.method
        if method not in ("GET", "POST"):
            raise RequestRefused(
                405, "METHOD_NOT_ALLOWED", "Use GET or POST.", headers={"Allow": "GET, POST"}
            )
        if method == "GET" and _wants_html(request):
            if self.settings.is_development:
                return HTMLResponse(get_graphql_ide_html("graphiql"))
            raise RequestRefused(404, "NOT_FOUND", "No IDE here: send a GraphQL query.")
        state = request.app.state
        authenticator: Authenticator = state.authenticator
        viewer = await authenticator.authenticate(request.headers.get("authorization"))
        client = await authenticator.client(viewer.client_id) if viewer.client_id else None
        # The Redis round trip of the rate limit overlaps reading and preparing the request;
        # its answer is awaited before anything executes, and before any other refusal.
        limit = asyncio.ensure_future(
            state.rate_limiter.hit_viewer(viewer, request, client.rate_limit if client else None)
        )
        try:
            params = (
                _get_params(request)
                if method == "GET"
                else await _post_params(request, self.settings.max_body_bytes)
            )
            return await self._run(request, request_id, viewer, client, params, limit)
        except RequestRefused:
            await _within_rate_limit(limit)
            raise
        finally:
            if not limit.done():
                limit.cancel()

    async def _document(
        self, request: Request, params: GraphQLParams, client: ApiClient | None
    ) -> tuple[str, str | None]:
        """The document text, and the APQ hash to store it under once it validates."""
        persisted = (params.extensions or {}).get("persistedQuery")
        sha256: str | None = None
        if persisted is not None:
            if (
                not isinstance(persisted, dict)
                or persisted.get("version") != APQ_VERSION
                or not isinstance(persisted.get("sha256Hash"), str)
                or len(persisted["sha256Hash"]) != 64
            ):
                raise RequestRefused(
                    400, "PERSISTED_QUERY_INVALID", "Invalid extensions.persistedQuery."
                )
            sha256 = persisted["sha256Hash"].lower()
        restricted = client is not None and client.trusted_documents_only
        query = params.query
        if (
            query is not None
            and sha256 is not None
            and hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest() != sha256
        ):
            raise RequestRefused(
                400, "PERSISTED_QUERY_HASH_MISMATCH", "The sha256Hash does not match."
            )
        if restricted:
            assert client is not None
            digest = sha256 or hashlib.sha256((query or "").encode("utf-8", "surrogatepass"))
            digest_hex = digest if isinstance(digest, str) else digest.hexdigest()
            trusted = await self._trusted_document(request, client.id, digest_hex)
            if trusted is None:
                raise RequestRefused(
                    403,
                    "UNTRUSTED_DOCUMENT",
                    "This client may only run its registered operations.",
                )
            return trusted, None
        if query is None and sha256 is not None:
            found = await request.app.state.persisted_queries.get(sha256)
            if found is None:
                raise RequestRefused(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
            return found, None
        if query is None:
            raise RequestRefused(400, "BAD_REQUEST", "No GraphQL query found in the request.")
        return query, sha256

    async def _trusted_document(self, request: Request, client_id: str, sha256: str) -> str | None:
        engine = request.app.state.guestgraph.engine
        return await self._trusted.get_or_load(
            (client_id, sha256), lambda: client_store.trusted_document(engine, client_id, sha256)
        )

    async def _run(
        self,
        request: Request,
        request_id: str,
        viewer: Viewer,
        client: ApiClient | None,
        params: GraphQLParams,
        limit: asyncio.Future[int | None],
    ) -> Response:
        query, store_as = await self._document(request, params, client)
        allow = may_introspect(viewer, self.limits)
        prepared = self.documents.prepare(query, allow_introspection=allow)
        if prepared.errors or prepared.document is None:
            hide = not allow
            errors = [format_error(e, request_id, hide_suggestions=hide) for e in prepared.errors]
            return json_response({"errors": errors}, 400, request_id)
        operation = operation_of(prepared.document, params.operation_name)
        if operation is None:
            message = (
                f"Unknown operation named {params.operation_name[:64]!r}."
                if params.operation_name
                else "Several operations: operationName is required."
            )
            raise RequestRefused(400, "OPERATION_NOT_FOUND", message)
        if operation.operation is OperationType.SUBSCRIPTION:
            raise RequestRefused(
                400, "BAD_REQUEST", "Subscriptions run over the websocket at /graphql."
            )
        if operation.operation is OperationType.MUTATION and request.method == "GET":
            raise RequestRefused(
                405,
                "METHOD_NOT_ALLOWED",
                "Mutations must use POST.",
                headers={"Allow": "POST"},
            )
        cost = prepared.cost(self.schema._schema, operation, params.variables)
        cost_info = {"requested": cost, "maximum": self.limits.max_cost}
        if cost > self.limits.max_cost:
            raise RequestRefused(
                400,
                "COST_LIMIT",
                f"The query costs {cost}; at most {self.limits.max_cost} is allowed.",
                extensions={"cost": cost_info},
            )
        await _within_rate_limit(limit)
        if store_as is not None:
            await request.app.state.persisted_queries.put(store_as, query)
        return await self._execute(request, request_id, viewer, params, prepared, cost_info, allow)

    async def _execute(
        self,
        request: Request,
        request_id: str,
        viewer: Viewer,
        params: GraphQLParams,
        prepared: Any,
        cost_info: dict[str, int],
        allow_introspection: bool,
    ) -> Response:
        state = request.app.state.guestgraph
        sub_response = Response()
        context = Context(
            engine=state.engine,
            read_engine=state.read_engine,  # graphql: autocommit reads for the loaders
            hub=state.hub,
            request=request,
            response=sub_response,
            request_id=request_id,
            viewer=viewer,
        )
        allowed = (
            (StrawberryOperationType.QUERY,)
            if request.method == "GET"
            else (StrawberryOperationType.QUERY, StrawberryOperationType.MUTATION)
        )
        token = PREPARED.set(prepared)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.operation_timeout_ms / 1000):
                result = await self.schema.execute(
                    prepared.query,
                    variable_values=params.variables,
                    context_value=context,
                    operation_name=params.operation_name,
                    allowed_operation_types=allowed,
                )
        except TimeoutError:
            raise RequestRefused(200, "OPERATION_TIMEOUT", "The operation took too long.") from None
        finally:
            PREPARED.reset(token)
        body: dict[str, Any] = {}
        status = 200
        if result.errors:
            # errors before execution (variables that do not coerce) are request errors
            if result.data is None and all(e.path is None for e in result.errors):
                status = 400
            body["errors"] = [
                format_error(
                    e,
                    request_id,
                    hide_suggestions=not allow_introspection,
                    default_code="BAD_USER_INPUT" if status == 400 else "ERROR",
                )
                for e in result.errors
            ]
        if status == 200 or result.data is not None:
            body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        log.debug("graphql %s in %.1f ms", request_id, (time.perf_counter() - started) * 1000)
        headers = {
            k: v
            for k, v in sub_response.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        # the cost rides in a header so response bodies stay exactly {"data": ...}
        headers["X-Query-Cost"] = str(cost_info["requested"])
        return json_response(body, status, request_id, headers)
