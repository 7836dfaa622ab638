"""The matching decision: which golden customer is this source record? Pure, no I/O.

Given the incoming record's keys and the golden customers found by those keys, ``decide``
returns ``LinkTo`` (one customer), ``CreateNew`` (nobody matches) or ``Merge`` (the record
ties several customers together), with the rule and the evidence. Rules, strongest first:

1. same source record (source + external id: always exact);
2. loyalty id;
3. email (the normalized key);
4. phone, with an agreeing name;
5. secondary email key (Gmail dots/+tags...), with an agreeing name or the same phone;
6. secondary email key with only the family name to agree on (the given name missing on
   one side): a *link-only* rule, used when the key has a single holder, no known name
   disagrees and nothing else matches; it never merges customers. (The same with a phone
   was measured and rejected: a household shares phone and family name.)
7. a *shared* phone (a household's) with the exact full name of exactly one of its holders:
   given and family name both known and equal after normalization (no typo tolerance: a
   household shares the family name), no other holder whose name agrees even loosely, no
   name of that holder disagreeing, no email or loyalty id known on both sides that differs,
   and every holder among the candidates. Two holders with one name (Jr./Sr.) are ambiguous:
   no link.

Guardrails (see ``MatchPolicy``): blocked values never reach ``decide`` (normalization drops
them); an identifier held by more than N distinct customers is *shared* and matches no one;
a non-email match is refused when the names disagree and no email is shared (conflict); customers a
person has separated (a split) never merge, and a record is never linked to a customer it
was split from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from domain.identity import CustomerRecord
from domain.model import IdentifierKind
from domain.normalize import (
    DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS,
    DEFAULT_BLOCKED_EMAILS,
    PersonName,
    email_key,
    email_secondary_key,
    is_blocked_email,
    is_blocked_phone,
    loyalty_key,
    names_agree,
    names_partly_agree,
    phone_key,
)


class Rule(enum.StrEnum):
    """Why a source record belongs to a customer (``Identity.matchedBy``)."""

    SAME_SOURCE_RECORD = "same_source_record"
    LOYALTY_ID = "loyalty_id"
    EMAIL = "email"
    PHONE_AND_NAME = "phone_and_name"
    SECONDARY_EMAIL = "secondary_email"
    SECONDARY_EMAIL_AND_FAMILY_NAME = "secondary_email_and_family_name"
    SHARED_PHONE_AND_EXACT_NAME = "shared_phone_and_exact_name"
    NEW = "new"
    SOURCE_MERGE = "source_merge"
    MANUAL = "manual"
    SPLIT = "split"


# Lower is stronger.
RULE_PRIORITY: Mapping[Rule, int] = {
    Rule.SAME_SOURCE_RECORD: 0,
    Rule.LOYALTY_ID: 1,
    Rule.EMAIL: 2,
    Rule.PHONE_AND_NAME: 3,
    Rule.SECONDARY_EMAIL: 4,
    Rule.SECONDARY_EMAIL_AND_FAMILY_NAME: 5,
    Rule.SHARED_PHONE_AND_EXACT_NAME: 6,
}

# Rules on a partial name (family only; a household shares it): they link a record to the
# one customer holding the key, and never merge customers.
LINK_ONLY_RULES: frozenset[Rule] = frozenset({Rule.SECONDARY_EMAIL_AND_FAMILY_NAME})


@dataclass(frozen=True)
class MatchPolicy:
    """Guardrail settings (``GUESTGRAPH_IDENTITY_*``). ``*_max_customers``: an identifier
    already attached to more than this many distinct customers is shared.
    ``shared_phone_name_max_customers``: a shared phone held by at most this many customers
    still links a record to the one holder with its exact full name (rule 7); 0 turns the
    rule off. Beyond it the phone is an office's or a venue's, not a household's."""

    phone_max_customers: int = 3
    shared_phone_name_max_customers: int = 8
    email_max_customers: int = 2
    loyalty_max_customers: int = 2
    blocked_emails: frozenset[str] = DEFAULT_BLOCKED_EMAILS
    blocked_email_local_parts: frozenset[str] = DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS
    blocked_phones: frozenset[str] = frozenset()  # E.164 keys, e.g. the stores' own numbers

    def max_customers(self, kind: IdentifierKind) -> int:
        if kind is IdentifierKind.PHONE:
            return self.phone_max_customers
        if kind is IdentifierKind.LOYALTY_ID:
            return self.loyalty_max_customers
        return self.email_max_customers


@dataclass(frozen=True)
class RecordKeys:
    """The normalized keys of one incoming source record (blocked values already None)."""

    source: str
    external_id: str
    email: str | None = None
    email_secondary: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    name: PersonName = field(default_factory=PersonName)

    def identifiers(self) -> list[tuple[IdentifierKind, str]]:
        pairs = [
            (IdentifierKind.EMAIL, self.email),
            (IdentifierKind.EMAIL_SECONDARY, self.email_secondary),
            (IdentifierKind.PHONE, self.phone),
            (IdentifierKind.LOYALTY_ID, self.loyalty_id),
        ]
        return [(kind, value) for kind, value in pairs if value is not None]


def keys_of(
    record: CustomerRecord, policy: MatchPolicy, extra_blocked_phones: frozenset[str] = frozenset()
) -> RecordKeys:
    """Normalize ``record``'s values into match keys; blocked and invalid values give None."""
    email = email_key(record.email)
    if email is not None and is_blocked_email(
        email, policy.blocked_emails, policy.blocked_email_local_parts
    ):
        email = None
    phone = phone_key(record.phone, record.default_region)
    if phone is not None and is_blocked_phone(phone, policy.blocked_phones | extra_blocked_phones):
        phone = None
    return RecordKeys(
        source=record.source.value,
        external_id=record.external_id,
        email=email,
        email_secondary=email_secondary_key(email) if email else None,
        phone=phone,
        loyalty_id=loyalty_key(record.loyalty_id),
        name=PersonName.of(record.given_name, record.family_name, record.display_name),
    )


@dataclass(frozen=True)
class Candidate:
    """A golden customer found by one of the record's keys, with what it is known by."""

    customer_id: int
    owns_record: bool = False
    emails: frozenset[str] = frozenset()
    email_secondaries: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    loyalty_ids: frozenset[str] = frozenset()
    names: frozenset[PersonName] = frozenset()
    # customers among the candidates this one must never merge with (a remembered split)
    separated_from: frozenset[int] = frozenset()
    # the incoming record itself was split away from this customer
    separated_from_record: bool = False


@dataclass(frozen=True)
class Match:
    customer_id: int
    rule: Rule
    evidence: dict[str, Any]


@dataclass(frozen=True)
class LinkTo:
    customer_id: int
    rule: Rule
    evidence: dict[str, Any]


@dataclass(frozen=True)
class CreateNew:
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def rule(self) -> Rule:
        return Rule.NEW


@dataclass(frozen=True)
class Merge:
    """The record ties several customers: ``others`` merge into ``survivor`` (the oldest),
    and the record links to the survivor by ``rule``."""

    survivor: int
    others: tuple[int, ...]
    rule: Rule
    evidence: dict[str, Any]
    matches: tuple[Match, ...]


Decision = LinkTo | CreateNew | Merge


def _names_verdict(record: RecordKeys, candidate: Candidate) -> bool | None:
    """True if any of the candidate's names agrees; False if all known ones disagree."""
    verdicts = [names_agree(record.name, name) for name in candidate.names]
    if any(v is True for v in verdicts):
        return True
    if verdicts and all(v is False for v in verdicts):
        return False
    return None


def _names_partly_agree(record: RecordKeys, candidate: Candidate) -> bool:
    """Some name of the candidate agrees on the family name only (a given name is missing on
    one side) and none of its names disagrees."""
    verdicts = [names_agree(record.name, name) for name in candidate.names]
    return all(v is not False for v in verdicts) and any(
        names_partly_agree(record.name, name) for name in candidate.names
    )


def _conflicts(record: RecordKeys, candidate: Candidate) -> bool:
    """Strong keys disagree: no email in common (different, or unknown on one side) and
    the names disagree. A weaker key never overrides that."""
    same_email = (record.email is not None and record.email in candidate.emails) or (
        record.email_secondary is not None and record.email_secondary in candidate.email_secondaries
    )
    return not same_email and _names_verdict(record, candidate) is False


def _match(
    record: RecordKeys,
    candidate: Candidate,
    shared: frozenset[tuple[IdentifierKind, str]],
    refused: list[dict[str, Any]],
    customers_per_key: Mapping[tuple[IdentifierKind, str], int],
) -> Match | None:
    cid = candidate.customer_id
    if candidate.owns_record:
        return Match(cid, Rule.SAME_SOURCE_RECORD, {"source_record": True})
    if candidate.separated_from_record:
        refused.append({"customer_id": cid, "reason": "separated"})
        return None

    def usable(kind: IdentifierKind, value: str | None, held: frozenset[str]) -> bool:
        if value is None or value not in held:
            return False
        if (kind, value) in shared:
            refused.append({"customer_id": cid, "key": kind.value, "reason": "shared"})
            return False
        return True

    conflict = _conflicts(record, candidate)
    if usable(IdentifierKind.LOYALTY_ID, record.loyalty_id, candidate.loyalty_ids):
        if not conflict:
            return Match(cid, Rule.LOYALTY_ID, {"loyalty_id": record.loyalty_id})
        refused.append({"customer_id": cid, "key": "loyalty_id", "reason": "conflict"})
    if usable(IdentifierKind.EMAIL, record.email, candidate.emails):
        return Match(cid, Rule.EMAIL, {"email": record.email})
    names = _names_verdict(record, candidate)
    phone_ok = usable(IdentifierKind.PHONE, record.phone, candidate.phones)
    if phone_ok and names is True and not conflict:
        return Match(cid, Rule.PHONE_AND_NAME, {"phone": record.phone, "name": True})
    secondary = record.email_secondary
    secondary_ok = usable(IdentifierKind.EMAIL_SECONDARY, secondary, candidate.email_secondaries)
    if secondary_ok and (names is True or phone_ok) and not conflict:
        evidence: dict[str, Any] = {"email_secondary": secondary, "name": names is True}
        if phone_ok:
            evidence["phone"] = record.phone
        return Match(cid, Rule.SECONDARY_EMAIL, evidence)
    # Link-only: the same mailbox by provider rules, the family name agrees, a given name is
    # missing on one side, and no other customer holds the key.
    if (
        secondary_ok
        and secondary is not None
        and customers_per_key.get((IdentifierKind.EMAIL_SECONDARY, secondary), 0) <= 1
        and _names_partly_agree(record, candidate)
    ):
        return Match(
            cid,
            Rule.SECONDARY_EMAIL_AND_FAMILY_NAME,
            {"email_secondary": secondary, "name": "family"},
        )
    if phone_ok:
        refused.append({"customer_id": cid, "key": "phone", "reason": "name does not agree"})
    if secondary_ok:
        refused.append({"customer_id": cid, "key": "email_secondary", "reason": "unconfirmed"})
    return None


def _matches_by_borrowed_name(
    record: RecordKeys,
    candidates: Sequence[Candidate],
    primary: Candidate,
    matched: set[int],
    shared: frozenset[tuple[IdentifierKind, str]],
    customers_per_key: Mapping[tuple[IdentifierKind, str], int],
) -> list[Match]:
    """A record without a full name, tied to ``primary`` by a key, carries the primary's
    names: another customer agreeing on phone + that name is the same person too."""
    names = sorted(primary.names, key=lambda n: (n.given or "", n.family or ""))
    found = []
    for candidate in sorted(candidates, key=lambda c: c.customer_id):
        if candidate.customer_id in matched:
            continue
        for name in names:
            m = _match(replace(record, name=name), candidate, shared, [], customers_per_key)
            if m is not None and m.rule in (Rule.PHONE_AND_NAME, Rule.SECONDARY_EMAIL):
                evidence = {**m.evidence, "name_of_customer": primary.customer_id}
                found.append(Match(m.customer_id, m.rule, evidence))
                break
    return found


def _strong_keys_differ(record: RecordKeys, candidate: Candidate) -> bool:
    """An email or a loyalty id known on both sides, and none of them in common."""
    email_differs = (
        record.email is not None
        and bool(candidate.emails)
        and record.email not in candidate.emails
        and record.email_secondary not in candidate.email_secondaries
    )
    loyalty_differs = (
        record.loyalty_id is not None
        and bool(candidate.loyalty_ids)
        and record.loyalty_id not in candidate.loyalty_ids
    )
    return email_differs or loyalty_differs


def _shared_phone_match(
    record: RecordKeys,
    candidates: Sequence[Candidate],
    policy: MatchPolicy,
    shared: frozenset[tuple[IdentifierKind, str]],
    customers_per_key: Mapping[tuple[IdentifierKind, str], int],
    refused: list[dict[str, Any]],
) -> Match | None:
    """Rule 7: a shared (household) phone links the record to the one holder whose full
    name is exactly the record's, when no other holder's name agrees even with a typo."""
    phone = record.phone
    if phone is None or (IdentifierKind.PHONE, phone) not in shared or not record.name.is_complete:
        return None
    holders = [c for c in candidates if phone in c.phones]
    count = customers_per_key.get((IdentifierKind.PHONE, phone), 0)
    # Uniqueness can only be judged with every holder in view.
    if count > policy.shared_phone_name_max_customers or len(holders) < count:
        return None
    agreeing = [c for c in holders if _names_verdict(record, c) is True]
    if len(agreeing) > 1:
        refused.extend(
            {"customer_id": c.customer_id, "key": "phone", "reason": "name not unique on phone"}
            for c in sorted(agreeing, key=lambda c: c.customer_id)
        )
        return None
    if len(agreeing) != 1:
        return None
    holder = agreeing[0]
    if (
        holder.separated_from_record
        or record.name not in holder.names
        or any(names_agree(record.name, n) is False for n in holder.names)
    ):
        return None
    if _strong_keys_differ(record, holder):
        refused.append({"customer_id": holder.customer_id, "key": "phone", "reason": "keys differ"})
        return None
    return Match(
        holder.customer_id,
        Rule.SHARED_PHONE_AND_EXACT_NAME,
        {"phone": phone, "name": "exact", "phone_holders": count},
    )


def _without_weak_ties(matches: list[Match], refused: list[dict[str, Any]]) -> list[Match]:
    """Link-only matches count only as the record's single match: beside a stronger match
    they are dropped (they must not merge), and two of them are ambiguous."""
    weak = [m for m in matches if m.rule in LINK_ONLY_RULES]
    if not weak or (len(weak) == 1 and len(matches) == 1):
        return matches
    reason = "partial name beside another match" if len(weak) < len(matches) else "ambiguous"
    refused.extend({"customer_id": m.customer_id, "reason": reason} for m in weak)
    return [m for m in matches if m.rule not in LINK_ONLY_RULES]


def shared_identifiers(
    record: RecordKeys,
    customers_per_key: Mapping[tuple[IdentifierKind, str], int],
    policy: MatchPolicy,
) -> frozenset[tuple[IdentifierKind, str]]:
    """The record's keys already held by more distinct customers than the policy allows."""
    return frozenset(
        (kind, value)
        for kind, value in record.identifiers()
        if customers_per_key.get((kind, value), 0) > policy.max_customers(kind)
    )


def _notes(
    refused: list[dict[str, Any]], shared: frozenset[tuple[IdentifierKind, str]]
) -> dict[str, Any]:
    notes: dict[str, Any] = {}
    if refused:
        notes["refused"] = refused
    if shared:
        notes["shared"] = sorted(f"{kind.value}:{value}" for kind, value in shared)
    return notes


def decide(
    record: RecordKeys,
    candidates: Sequence[Candidate],
    policy: MatchPolicy,
    customers_per_key: Mapping[tuple[IdentifierKind, str], int],
) -> Decision:
    """Which customer ``record`` belongs to. Deterministic and independent of the order of
    ``candidates``. ``customers_per_key`` counts the distinct customers holding each key."""
    shared = shared_identifiers(record, customers_per_key, policy)
    refused: list[dict[str, Any]] = []
    matches = [
        m
        for c in sorted(candidates, key=lambda c: c.customer_id)
        if (m := _match(record, c, shared, refused, customers_per_key)) is not None
    ]
    household = _shared_phone_match(record, candidates, policy, shared, customers_per_key, refused)
    if household is not None and all(m.customer_id != household.customer_id for m in matches):
        matches.append(household)
        refused = [
            r
            for r in refused
            if not (r["customer_id"] == household.customer_id and r.get("reason") == "shared")
        ]
    matches = _without_weak_ties(matches, refused)
    if not matches:
        return CreateNew(_notes(refused, shared))
    by_id = {c.customer_id: c for c in candidates}
    matches.sort(key=lambda m: (RULE_PRIORITY[m.rule], m.customer_id))
    if not record.name.is_complete and matches[0].rule not in LINK_ONLY_RULES:
        matched = {m.customer_id for m in matches}
        matches += _matches_by_borrowed_name(
            record, candidates, by_id[matches[0].customer_id], matched, shared, customers_per_key
        )
        matched = {m.customer_id for m in matches}
        refused = [r for r in refused if r["customer_id"] not in matched]
        matches.sort(key=lambda m: (RULE_PRIORITY[m.rule], m.customer_id))
    group = [matches[0]]
    for m in matches[1:]:
        blocked_by = by_id[m.customer_id].separated_from
        if any(
            g.customer_id in blocked_by or m.customer_id in by_id[g.customer_id].separated_from
            for g in group
        ):
            refused.append({"customer_id": m.customer_id, "reason": "separated"})
            continue
        group.append(m)
    primary = group[0]
    evidence = {**primary.evidence, **_notes(refused, shared)}
    if len(group) == 1:
        return LinkTo(primary.customer_id, primary.rule, evidence)
    ids = sorted(m.customer_id for m in group)
    return Merge(
        survivor=ids[0],
        others=tuple(ids[1:]),
        rule=primary.rule,
        evidence=evidence,
        matches=tuple(sorted(group, key=lambda m: m.customer_id)),
    )
