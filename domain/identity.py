"""Identity resolution's inputs: a source's view of one person."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.model import Source


@dataclass(frozen=True)
class CustomerRecord:
    """What one source record says about a person. Values are raw, as the source sent them.

    ``default_region`` is the ISO country used to parse phone numbers without a country
    code (the store's country). ``attributes`` carries anything else the source sent that
    guestgraph keeps (birthday, consent, lifecycle stage...).
    """

    source: Source
    external_id: str
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    # the source says it confirmed the address / number (double opt-in, SMS code...)
    email_verified: bool = False
    phone_verified: bool = False
    default_region: str = "US"
    observed_at: datetime | None = None
    version: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


# --- survivorship -------------------------------------------------------------------------

# Sources whose word wins for names and consent: the CRM is where people curate profiles.
CRM_SOURCES: frozenset[Source] = frozenset({Source.HUBSPOT, Source.SALESFORCE})


@dataclass(frozen=True)
class RecordFacts:
    """What survivorship needs to know about one source record of a golden customer."""

    source_record_id: int
    source: Source
    updated_at: datetime
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None  # as sent, trimmed
    email_key: str | None = None  # None when invalid or blocked
    phone_key: str | None = None  # E.164; None when invalid or blocked
    email_verified: bool = False
    phone_verified: bool = False
    deleted: bool = False  # the source deleted (or erased) the record


@dataclass(frozen=True)
class GoldenProfile:
    """The golden customer's fields, and which source record each came from."""

    given_name: str | None
    family_name: str | None
    display_name: str | None
    email: str | None
    email_normalized: str | None
    phone: str | None
    chosen_from: dict[str, int]


def golden_profile(records: list[RecordFacts]) -> GoldenProfile:
    """Survivorship: names from a CRM record when there is one, else the most recently
    updated record with a name; email and phone: the most recently updated *verified*
    value, else the most recently updated valid one. Ties go to the newer record. Records
    the source deleted count only when nothing else is left."""
    records = [r for r in records if not r.deleted] or records

    def has_name(r: RecordFacts) -> bool:
        return bool(r.given_name or r.family_name or r.display_name)

    named = [r for r in records if has_name(r)]
    name_from = max(
        named,
        key=lambda r: (r.source in CRM_SOURCES, r.updated_at, r.source_record_id),
        default=None,
    )
    email_from = max(
        (r for r in records if r.email_key),
        key=lambda r: (r.email_verified, r.updated_at, r.source_record_id),
        default=None,
    )
    phone_from = max(
        (r for r in records if r.phone_key),
        key=lambda r: (r.phone_verified, r.updated_at, r.source_record_id),
        default=None,
    )
    chosen: dict[str, int] = {}
    for name, chosen_record in (("name", name_from), ("email", email_from), ("phone", phone_from)):
        if chosen_record is not None:
            chosen[name] = chosen_record.source_record_id
    given = name_from.given_name if name_from else None
    family = name_from.family_name if name_from else None
    display = name_from.display_name if name_from else None
    if not display:
        display = " ".join(p for p in (given, family) if p) or None
    return GoldenProfile(
        given_name=given,
        family_name=family,
        display_name=display,
        email=email_from.email if email_from else None,
        email_normalized=email_from.email_key if email_from else None,
        phone=phone_from.phone_key if phone_from else None,
        chosen_from=chosen,
    )
