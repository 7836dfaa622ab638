"""Webhook signature verification: pure functions over the raw request bytes.

Every scheme is an HMAC-SHA256 compared in constant time (``hmac.compare_digest``). The
body is never parsed or re-serialized before it is verified: the caller passes the bytes
exactly as received.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

HUBSPOT_MAX_AGE_MS = 300_000
STANDARD_WEBHOOKS_TOLERANCE_S = 300


class SignatureError(Exception):
    """A delivery that must not be trusted. ``reason`` is safe to log and to answer with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def _require(header: str | None, name: str) -> str:
    if not header:
        raise SignatureError(f"missing {name} header")
    return header.strip()


def _compare(expected: str, given: str) -> None:
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace")):
        raise SignatureError("signature does not match")


def square_signature(signature_key: str, notification_url: str, body: bytes) -> str:
    """base64 HMAC-SHA256(key, notification URL exactly as subscribed + raw body)."""
    return _b64_hmac(signature_key.encode(), notification_url.encode() + body)


def verify_square_signature(
    signature_key: str, notification_url: str, body: bytes, header: str | None
) -> None:
    """Raise SignatureError unless ``header`` (x-square-hmacsha256-signature) signs ``body``."""
    given = _require(header, "x-square-hmacsha256-signature")
    _compare(square_signature(signature_key, notification_url, body), given)


def toast_signature(secret: str, body: bytes, timestamp: str) -> str:
    """base64 HMAC-SHA256(secret, raw body + timestamp)."""
    return _b64_hmac(secret.encode(), body + timestamp.encode())


def verify_toast_signature(secret: str, body: bytes, timestamp: str, header: str | None) -> None:
    """Raise SignatureError unless ``header`` (Toast-Signature) signs ``body`` + ``timestamp``."""
    given = _require(header, "Toast-Signature")
    _compare(toast_signature(secret, body, timestamp), given)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64 HMAC-SHA256(client secret, method + URI + raw body + timestamp)."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return _b64_hmac(secret.encode(), message)


def verify_hubspot_signature(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    *,
    timestamp: str | None,
    header: str | None,
    now_ms: int,
) -> None:
    """Raise SignatureError for a bad v3 signature or a timestamp 5 minutes old or more."""
    given = _require(header, "X-HubSpot-Signature-v3")
    stamp = _require(timestamp, "X-HubSpot-Request-Timestamp")
    try:
        stamp_ms = int(stamp)
    except ValueError:
        raise SignatureError("X-HubSpot-Request-Timestamp is not an integer") from None
    if now_ms - stamp_ms >= HUBSPOT_MAX_AGE_MS:
        raise SignatureError("timestamp is older than 5 minutes")
    if stamp_ms - now_ms >= HUBSPOT_MAX_AGE_MS:
        raise SignatureError("timestamp is in the future")
    _compare(hubspot_v3_signature(secret, method, uri, body, stamp), given)


def _standard_webhooks_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("webhook secret is not whsec_<base64>") from None


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,`` + base64 HMAC-SHA256(base64-decoded secret, ``id.timestamp.body``)."""
    message = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + _b64_hmac(_standard_webhooks_key(secret), message)


def verify_standard_webhook(
    secret: str,
    body: bytes,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    now_s: int,
) -> None:
    """Standard Webhooks: any ``v1,`` signature in the space-separated header may match;
    the timestamp (seconds) must be within 5 minutes of now."""
    ident = _require(msg_id, "webhook-id")
    stamp = _require(timestamp, "webhook-timestamp")
    header = _require(signature_header, "webhook-signature")
    try:
        stamp_s = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs(now_s - stamp_s) > STANDARD_WEBHOOKS_TOLERANCE_S:
        raise SignatureError("timestamp is outside the 5-minute tolerance")
    expected = standard_webhooks_signature(secret, ident, stamp, body).encode()
    if not any(hmac.compare_digest(expected, c.encode()) for c in _v1_candidates(header)):
        raise SignatureError("signature does not match")


def _v1_candidates(header: str) -> Iterable[str]:
    return (part for part in header.split() if part.startswith("v1,"))
