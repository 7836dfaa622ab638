"""Signature schemes, checked against the vendors' published test vectors."""

from __future__ import annotations

import base64

import pytest

from domain import signatures
from domain.signatures import SignatureError

SQUARE_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
SQUARE_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
SQUARE_BODY = (
    b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification",'
    b'"event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":'
    b'"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks",'
    b'"id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
SQUARE_EXPECTED = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="

HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_URI = "https://www.example.com/webhook_uri"
HUBSPOT_BODY = b"{'example_field':'example_value'}"
HUBSPOT_TS = "1693657560000"
HUBSPOT_EXPECTED = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_square_signature_matches_the_sdk_test_vector() -> None:
    assert signatures.square_signature(SQUARE_KEY, SQUARE_URL, SQUARE_BODY) == SQUARE_EXPECTED
    signatures.verify_square_signature(SQUARE_KEY, SQUARE_URL, SQUARE_BODY, SQUARE_EXPECTED)


@pytest.mark.parametrize(
    ("key", "url", "body", "header"),
    [
        ("wrong-key", SQUARE_URL, SQUARE_BODY, SQUARE_EXPECTED),
        (SQUARE_KEY, SQUARE_URL + "/", SQUARE_BODY, SQUARE_EXPECTED),
        (SQUARE_KEY, SQUARE_URL, SQUARE_BODY + b" ", SQUARE_EXPECTED),
        (SQUARE_KEY, SQUARE_URL, SQUARE_BODY, None),
        (SQUARE_KEY, SQUARE_URL, SQUARE_BODY, "not base64 ☃"),
    ],
    ids=["wrong key", "other url", "changed body", "missing header", "garbage header"],
)
def test_square_rejects_anything_but_the_exact_signed_bytes(
    key: str, url: str, body: bytes, header: str | None
) -> None:
    with pytest.raises(SignatureError):
        signatures.verify_square_signature(key, url, body, header)


def test_hubspot_v3_matches_the_sdk_test_vector() -> None:
    sig = signatures.hubspot_v3_signature(
        HUBSPOT_SECRET, "POST", HUBSPOT_URI, HUBSPOT_BODY, HUBSPOT_TS
    )
    assert sig == HUBSPOT_EXPECTED
    signatures.verify_hubspot_signature(
        HUBSPOT_SECRET,
        "POST",
        HUBSPOT_URI,
        HUBSPOT_BODY,
        timestamp=HUBSPOT_TS,
        header=HUBSPOT_EXPECTED,
        now_ms=int(HUBSPOT_TS) + 1000,
    )


def test_hubspot_refuses_a_timestamp_five_minutes_old_even_when_correctly_signed() -> None:
    with pytest.raises(SignatureError, match="older than 5 minutes"):
        signatures.verify_hubspot_signature(
            HUBSPOT_SECRET,
            "POST",
            HUBSPOT_URI,
            HUBSPOT_BODY,
            timestamp=HUBSPOT_TS,
            header=HUBSPOT_EXPECTED,
            now_ms=int(HUBSPOT_TS) + 300_000,
        )


def test_hubspot_refuses_a_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        signatures.verify_hubspot_signature(
            "other-secret",
            "POST",
            HUBSPOT_URI,
            HUBSPOT_BODY,
            timestamp=HUBSPOT_TS,
            header=HUBSPOT_EXPECTED,
            now_ms=int(HUBSPOT_TS),
        )


def test_toast_signs_body_plus_timestamp() -> None:
    body = b'{"timestamp":"2025-06-14T18:22:41.512Z"}'
    sig = signatures.toast_signature("s3cret", body, "2025-06-14T18:22:41.512Z")
    signatures.verify_toast_signature("s3cret", body, "2025-06-14T18:22:41.512Z", sig)
    with pytest.raises(SignatureError):
        signatures.verify_toast_signature("s3cret", body, "2025-06-14T18:22:41.513Z", sig)


SECRET = "whsec_" + base64.b64encode(b"a-secret-of-at-least-24-bytes!!").decode()


def test_standard_webhooks_accepts_any_listed_v1_signature() -> None:
    body = b'{"a":1}'
    good = signatures.standard_webhooks_signature(SECRET, "msg_1", "1700000000", body)
    header = f"v1,bm90LXRoaXM= {good}"
    signatures.verify_standard_webhook(
        SECRET,
        body,
        msg_id="msg_1",
        timestamp="1700000000",
        signature_header=header,
        now_s=1700000010,
    )


def test_standard_webhooks_matches_the_spec_example() -> None:
    # from the Standard Webhooks reference implementations' test suite
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signatures.standard_webhooks_signature(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("msg_id", "stamp", "now"),
    [("msg_2", "1700000000", 1700000000), ("msg_1", "1700000000", 1700000301)],
    ids=["other id", "stale"],
)
def test_standard_webhooks_refuses_other_ids_and_stale_timestamps(
    msg_id: str, stamp: str, now: int
) -> None:
    body = b'{"a":1}'
    good = signatures.standard_webhooks_signature(SECRET, "msg_1", "1700000000", body)
    with pytest.raises(SignatureError):
        signatures.verify_standard_webhook(
            SECRET, body, msg_id=msg_id, timestamp=stamp, signature_header=good, now_s=now
        )
