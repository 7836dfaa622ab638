"""PII masking: what a caller without ``pii:read`` sees instead of an email or a phone.

Pure functions over strings. A masked value keeps just enough to recognise it on a support
call ("is your email d...@example.com?") and never enough to contact the person.
"""

from __future__ import annotations

import phonenumbers

MASK = "***"
PHONE_VISIBLE_DIGITS = 4


def mask_email(email: str) -> str:
    """``dana@example.com`` → ``d***@example.com``; no ``@`` → ``***``."""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def _country_code(phone: str) -> str:
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ""
    return str(parsed.country_code or "")


def mask_phone(phone: str) -> str:
    """``+15555550123`` → ``+1******0123``: the country code and the last four digits stay."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) <= PHONE_VISIBLE_DIGITS:
        return MASK
    country = _country_code(phone) if phone.strip().startswith("+") else ""
    if not digits.startswith(country):
        country = ""
    hidden = len(digits) - len(country) - PHONE_VISIBLE_DIGITS
    if hidden <= 0:
        return MASK
    prefix = f"+{country}" if country else ""
    return f"{prefix}{'*' * hidden}{digits[-PHONE_VISIBLE_DIGITS:]}"


PII_MASKS = {"email": mask_email, "phone": mask_phone}
"""The PII kinds the API masks, by name (``pii("email")`` in resolvers/permissions.py)."""


def mask(kind: str, value: str) -> str:
    """Mask ``value`` as PII of ``kind`` (``email`` or ``phone``); raises KeyError otherwise."""
    return PII_MASKS[kind](value)
