"""Card numbers never enter storage: a Luhn-valid 13-19 digit run becomes a token."""

from __future__ import annotations

import re
from typing import Any

# 13-19 digits, optionally grouped by single spaces or dashes, not inside a longer number
_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _token(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return f"[card ****{digits[-4:]}]"
    return match.group(0)


# A UUID (Toast's guids, most vendors' ids): its hex groups can hold a Luhn-valid run of
# digits and dashes ("85a86105-3213-4405-924e-..."), which is an identifier, not a card.
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])"
)


def scrub_text(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit run replaced by ``[card ****1234]``;
    UUIDs are left whole."""
    if "-" not in text or _UUID.search(text) is None:
        return _CANDIDATE.sub(_token, text)
    parts: list[str] = []
    last = 0
    for uuid in _UUID.finditer(text):
        parts += [_CANDIDATE.sub(_token, text[last : uuid.start()]), uuid.group(0)]
        last = uuid.end()
    parts.append(_CANDIDATE.sub(_token, text[last:]))
    return "".join(parts)


def scrub_json(value: Any) -> Any:
    """A copy of a parsed JSON value with card numbers scrubbed from every string
    (keys included). Numbers are left alone: epoch-millisecond timestamps are 13 digits."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {scrub_text(k): scrub_json(v) for k, v in value.items()}
    return value


_DIGIT_RUN = re.compile(rb"[0-9](?:[ -]?[0-9]){12}")
# every digit as "0", spaces and dashes dropped: a run of 13 digits with single separators
# becomes 13 zeros in a row (so can runs that the regex refuses: the regex decides those)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_THIRTEEN_DIGITS = b"0" * 13


def may_hold_card_number(serialized: bytes) -> bool:
    """False when the JSON text ``serialized`` has no run of 13 digits at all: scrubbing
    its value would change nothing (a cheap test before ``scrub_json``). JSON serializers
    write digits, spaces and dashes inside strings as themselves, so a card number in any
    string of the value shows up here."""
    if _THIRTEEN_DIGITS not in serialized.translate(_DIGITS_AS_ZERO, b" -"):
        return False  # most rows: no 13 digits even with every space and dash removed
    return _DIGIT_RUN.search(serialized) is not None
