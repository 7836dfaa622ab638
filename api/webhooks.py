"""Signed source webhooks: ``POST /webhooks/{square,toast,hubspot,salesforce}``.

Order of work for every delivery: size limit (413) → source configured (503) → signature
over the raw bytes (401, nothing stored) → map → one transaction (inbox row + effects) →
answer. Answers are typed JSON: ``{"status": ...}`` or ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.batcher import IngestionFailed
from api.ingestion import (
    Outcome,
    Received,
    hubspot_deliveries,
    kept_headers,
    salesforce_deliveries,
    square_deliveries,
    toast_received,
)
from api.settings import Settings
from domain import signatures
from domain.model import Source
from domain.sources import toast

log = logging.getLogger("guestgraph.webhooks")


class BodyTooLarge(Exception):
    pass


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson (the stdlib encoder was a visible share of a webhook's CPU)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.guestgraph.settings
    return settings


def not_configured(source: Source, setting: str) -> JSONResponse:
    log.warning("%s webhook refused: GUESTGRAPH_%s is not set", source.value, setting)
    return error(
        503, "source_not_configured", f"{source.value} webhooks are not configured on this server"
    )


def unauthorized(source: Source, exc: signatures.SignatureError) -> JSONResponse:
    log.warning("%s webhook refused: %s", source.value, exc.reason)
    return error(401, "invalid_signature", exc.reason)


async def answer(request: Request, source: Source, received: Sequence[Received]) -> JSONResponse:
    """Record and apply; answer 200 (applied / pending / duplicate) or 422 (rejected)."""
    headers = kept_headers(request.headers)
    deliveries = [dataclasses.replace(r, headers=headers) for r in received]
    actor = f"webhook:{source.value.lower()}"
    try:
        outcomes = await request.app.state.ingest.batcher.submit(deliveries, actor=actor)
    except IngestionFailed:
        # nothing was stored: a 5xx makes the vendor deliver it again later
        response = error(503, "ingestion_unavailable", "the event was not stored; retry later")
        response.headers["Retry-After"] = "5"
        return response
    if any(o.status == "pending" for o in outcomes):
        request.app.state.ingest.fetcher.wake()
    return _response(outcomes)


def _response(outcomes: Sequence[Outcome]) -> JSONResponse:
    if len(outcomes) == 1:
        [only] = outcomes
        status = 422 if only.status == "rejected" else 200
        return FastJSONResponse(only.as_json(), status_code=status)
    body: dict[str, Any] = {"results": [o.as_json() for o in outcomes]}
    if all(o.status == "duplicate" for o in outcomes):
        body["duplicate"] = True
    rejected = any(o.status == "rejected" for o in outcomes)
    return FastJSONResponse(body, status_code=422 if rejected else 200)


async def _guarded_body(request: Request) -> bytes | JSONResponse:
    try:
        return await read_body(request, _settings(request).webhook_max_body_bytes)
    except BodyTooLarge:
        limit = _settings(request).webhook_max_body_bytes
        return error(413, "body_too_large", f"the body exceeds {limit} bytes")


async def square_webhook(request: Request) -> Response:
    settings = _settings(request)
    body = await _guarded_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not settings.square_signature_key or not settings.square_notification_url:
        return not_configured(Source.SQUARE, "SQUARE_SIGNATURE_KEY")
    try:
        signatures.verify_square_signature(
            settings.square_signature_key,
            settings.square_notification_url,
            body,
            request.headers.get("x-square-hmacsha256-signature"),
        )
    except signatures.SignatureError as exc:
        return unauthorized(Source.SQUARE, exc)
    return await answer(request, Source.SQUARE, square_deliveries(body))


async def toast_webhook(request: Request) -> Response:
    settings = _settings(request)
    body = await _guarded_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not settings.toast_webhook_secret:
        return not_configured(Source.TOAST, "TOAST_WEBHOOK_SECRET")
    try:
        # Toast signs body + the envelope's timestamp: read only that field to verify.
        try:
            value = orjson.loads(body)
            stamp = toast.signed_timestamp(value)
        except Exception:
            raise signatures.SignatureError("no envelope timestamp to verify against") from None
        signatures.verify_toast_signature(
            settings.toast_webhook_secret, body, stamp, request.headers.get("toast-signature")
        )
    except signatures.SignatureError as exc:
        return unauthorized(Source.TOAST, exc)
    # mapped in the batch's transaction, which reads the restaurant's currency
    return await answer(request, Source.TOAST, [toast_received(body, value)])


async def hubspot_webhook(request: Request) -> Response:
    settings = _settings(request)
    body = await _guarded_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not settings.hubspot_client_secret:
        return not_configured(Source.HUBSPOT, "HUBSPOT_CLIENT_SECRET")
    uri = settings.hubspot_webhook_url or str(request.url)
    try:
        signatures.verify_hubspot_signature(
            settings.hubspot_client_secret,
            request.method,
            uri,
            body,
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
            header=request.headers.get("x-hubspot-signature-v3"),
            now_ms=int(time.time() * 1000),
        )
    except signatures.SignatureError as exc:
        return unauthorized(Source.HUBSPOT, exc)
    return await answer(request, Source.HUBSPOT, hubspot_deliveries(body))


async def salesforce_webhook(request: Request) -> Response:
    settings = _settings(request)
    body = await _guarded_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not settings.salesforce_webhook_secret:
        return not_configured(Source.SALESFORCE, "SALESFORCE_WEBHOOK_SECRET")
    delivery_id = request.headers.get("webhook-id")
    try:
        signatures.verify_standard_webhook(
            settings.salesforce_webhook_secret,
            body,
            msg_id=delivery_id,
            timestamp=request.headers.get("webhook-timestamp"),
            signature_header=request.headers.get("webhook-signature"),
            now_s=int(time.time()),
        )
    except signatures.SignatureError as exc:
        return unauthorized(Source.SALESFORCE, exc)
    return await answer(request, Source.SALESFORCE, salesforce_deliveries(body, delivery_id))


def webhook_routes() -> list[Route]:
    return [
        Route("/webhooks/square", square_webhook, methods=["POST"]),
        Route("/webhooks/toast", toast_webhook, methods=["POST"]),
        Route("/webhooks/hubspot", hubspot_webhook, methods=["POST"]),
        Route("/webhooks/salesforce", salesforce_webhook, methods=["POST"]),
    ]
