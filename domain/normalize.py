"""Normalization of the values identity resolution matches on. Pure functions, no I/O.

A *match key* is the normalized form two records must share to be considered the same
value. Keys are never written back over what a source sent: the raw value stays on the
source record, the key goes to the ``identifiers`` table.

- email: trim, Unicode NFC, lower-case, syntax checked with ``email-validator`` (no DNS).
  The *secondary* key folds provider quirks (Gmail ignores dots and ``+tags``,
  googlemail.com is gmail.com; most providers ignore ``+tags``); it is a weaker key.
- phone: ``phonenumbers`` with the store's country as default region, to E.164. An invalid
  number has no key (it is kept raw on the source record only).
- loyalty id: trim, drop spaces and dashes, upper-case.
- names: only compared (never keys), accent- and case-insensitive, tolerant of one typo
  (``rapidfuzz``'s optimal-string-alignment distance).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rapidfuzz.distance import OSA

# Placeholders people type when a form insists on an email. Compared against the key.
DEFAULT_BLOCKED_EMAILS: frozenset[str] = frozenset(
    {
        "none@none.com",
        "noemail@noemail.com",
        "no@email.com",
        "test@test.com",
        "email@email.com",
        "na@na.com",
        "a@a.com",
        "x@x.com",
        "guest@guest.com",
    }
)
# Local parts that are never a person's own address, whatever the domain.
DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS: frozenset[str] = frozenset(
    {
        "noemail",
        "no-email",
        "no_email",
        "no.email",
        "none",
        "guest",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "unknown",
        "na",
        "n/a",
        "null",
        "nobody",
        "test",
    }
)

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Phone numbers people type to get past a form (national significant numbers).
_FAKE_NATIONAL_NUMBERS = frozenset({"1234567890", "123456789", "0123456789", "9876543210"})


# The keys are pure functions of their text, and the same guests come back order after
# order: parsing with email-validator and phonenumbers costs tens of microseconds, a cache
# hit well under one. Bounded, so a flood of distinct values cannot grow it.
_CACHED = 1 << 16


@functools.lru_cache(maxsize=_CACHED)
def email_key(raw: str | None) -> str | None:
    """The email match key: trimmed, NFC, lower-case, syntactically valid; else None."""
    if raw is None:
        return None
    value = unicodedata.normalize("NFC", raw.strip()).lower()
    if not value:
        return None
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{checked.local_part}@{checked.domain}".lower()


def email_secondary_key(key: str) -> str:
    """The weaker key of an email key: ``+tag`` dropped; for Gmail also dots, and
    googlemail.com folded to gmail.com. Equal to ``key`` when nothing folds."""
    local, _, domain = key.rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "")
    return f"{local}@{domain}"


def is_blocked_email(
    key: str,
    blocked: Iterable[str] = DEFAULT_BLOCKED_EMAILS,
    blocked_local_parts: Iterable[str] = DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS,
) -> bool:
    """True for placeholder addresses that must never match anyone."""
    local = key.rpartition("@")[0].split("+", 1)[0]
    return key in frozenset(blocked) or local in frozenset(blocked_local_parts)


@functools.lru_cache(maxsize=_CACHED)
def phone_key(raw: str | None, default_region: str = "US") -> str | None:
    """The phone match key: E.164 when ``raw`` is a valid number, else None."""
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_blocked_phone(key: str, blocked: Iterable[str] = ()) -> bool:
    """True for an E.164 key that is a placeholder (one repeated digit, 1234567890...)
    or one of ``blocked`` (e.g. the stores' own numbers, as E.164)."""
    return key in frozenset(blocked) or _is_placeholder_phone(key)


@functools.lru_cache(maxsize=_CACHED)
def _is_placeholder_phone(key: str) -> bool:
    try:
        national = str(phonenumbers.parse(key).national_number)
    except phonenumbers.NumberParseException:
        return True
    digits = set(national)
    return len(digits) <= 1 or national in _FAKE_NATIONAL_NUMBERS or digits == {"0"}


def loyalty_key(raw: str | None) -> str | None:
    """The loyalty-id key: upper-case, without whitespace of any kind (control separators
    included) or the separators ``-_.``; None for a placeholder (empty, or one repeated
    character such as ``0000``)."""
    if raw is None:
        return None
    value = "".join(ch for ch in raw.upper() if not ch.isspace() and ch not in "-_.")
    if not value or len(set(value)) <= 1:
        return None
    return value


# --- names ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonName:
    """A name reduced for comparison: lower-case ASCII letters and digits only."""

    given: str | None = None
    family: str | None = None

    @classmethod
    def of(cls, given: str | None, family: str | None, display: str | None = None) -> PersonName:
        g, f = name_token(given), name_token(family)
        if not g and not f and display:
            parts = display.split()
            if len(parts) >= 2:
                g, f = name_token(parts[0]), name_token(parts[-1])
        return cls(g or None, f or None)

    @property
    def is_complete(self) -> bool:
        return self.given is not None and self.family is not None


def name_token(raw: str | None) -> str:
    """Accents, case, spaces and punctuation removed: ``"O'Brien-Núñez"`` → ``obriennunez``."""
    if not raw:
        return ""
    decomposed = unicodedata.normalize("NFKD", raw)
    return "".join(ch for ch in decomposed.casefold() if ch.isalnum() and ch.isascii())


def _similar(a: str, b: str, *, allow_initial: bool) -> bool:
    if a == b:
        return True
    if allow_initial and (len(a) == 1 or len(b) == 1):
        return a[0] == b[0]
    # Typos rarely hit the first letter, while different names often differ only there
    # ("Elena" / "Lena", "Mark" / "Clark"): one edit is forgiven after the first letter.
    # One edit is an optimal-string-alignment distance of 1: a substitution, an insertion, a
    # deletion or two adjacent letters swapped. Jaro-Winkler was tried and rejected: at the
    # thresholds that accept typos it also accepts different names ("Noah" / "Nora",
    # "Lucas" / "Lucia"); see docs/identity.md.
    return min(len(a), len(b)) >= 4 and a[0] == b[0] and OSA.distance(a, b, score_cutoff=1) <= 1


def names_agree(a: PersonName, b: PersonName) -> bool | None:
    """True when both names are complete and match (one typo, or an initial for the given
    name, tolerated); False when a part both sides know clearly differs; None when there
    is too little to say."""
    parts_known = False
    for x, y, initial in ((a.given, b.given, True), (a.family, b.family, False)):
        if x is None or y is None:
            continue
        parts_known = True
        if not _similar(x, y, allow_initial=initial):
            return False
    if not parts_known:
        return None
    return True if a.is_complete and b.is_complete else None


def names_partly_agree(a: PersonName, b: PersonName) -> bool:
    """True when the family names are known on both sides and agree, a given name is missing
    on at least one side, and nothing both sides know disagrees: weaker than ``names_agree``
    (a household shares the family name), so the matcher uses it only under extra
    conditions."""
    return (
        a.family is not None
        and b.family is not None
        and (a.given is None or b.given is None)
        and names_agree(a, b) is None
    )
