"""Identity resolution inside the ingestion transaction.

Every source record (a Square customer, a HubSpot contact, a Toast guest...) is linked to
exactly one golden customer. This module is the shell: it locks the record's normalized
keys, loads the candidate customers, asks the pure decision (``domain.matching.decide``)
and writes the result: source record, identifiers, merges, golden fields by survivorship,
and an append-only ledger entry (rule, evidence, actor, time) for every link, merge and
split. See docs/identity.md.

Change feed: every function here takes ``changes``. When the caller passes a list, the
``Change`` rows are appended to it and the caller must hand them to
``readmodel.changefeed.append_changes`` before commit (ingestion should: once per delivery,
as late as possible, since appending holds the feed lock until commit). When ``changes``
is None they are appended to the feed right away. Topics: ``customer.merged`` (one per
merged customer), ``loyalty.changed`` (balances folded by a merge), ``customer.split`` and
``customer.updated`` for both customers of a split. ``link_record`` emits no
``customer.updated`` for the record itself: its caller knows what it changed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger, Boolean, DateTime, Text

from domain.identity import (
    CRM_SOURCES,
    CustomerRecord,
    GoldenProfile,
    RecordFacts,
    golden_profile,
)
from domain.matching import (
    Candidate,
    CreateNew,
    LinkTo,
    MatchPolicy,
    RecordKeys,
    Rule,
    decide,
    keys_of,
)
from domain.model import IdentifierKind, Source
from domain.normalize import PersonName, phone_key
from readmodel.changefeed import (
    CUSTOMER_MERGED,
    CUSTOMER_SPLIT,
    CUSTOMER_UPDATED,
    LOYALTY_CHANGED,
    Change,
    append_changes,
)
from readmodel.tables import (
    customer_traits,
    customers,
    identifiers,
    identity_ledger,
    identity_separations,
    interactions,
    loyalty_accounts,
    loyalty_ledger,
    orders,
    source_records,
    stores,
)
from readmodel.traits import recompute_traits

# --- errors -------------------------------------------------------------------------------


class IdentityError(Exception):
    """An identity operation that cannot be done; carries the data, never an HTTP code."""


class CustomerNotFound(IdentityError):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"customer {customer_id} not found")
        self.customer_id = customer_id


class CannotMergeWithItself(IdentityError):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"customer {customer_id} cannot be merged with itself")
        self.customer_id = customer_id


class CustomersSeparated(IdentityError):
    """A person split these customers apart; merging them again needs ``force``."""

    def __init__(self, customer_id: int, other_customer_id: int) -> None:
        super().__init__(f"customers {customer_id} and {other_customer_id} were split apart")
        self.customer_id = customer_id
        self.other_customer_id = other_customer_id


class IdentityNotFound(IdentityError):
    def __init__(self, customer_id: int, source: Source, external_id: str) -> None:
        super().__init__(f"customer {customer_id} has no identity {source.value}:{external_id}")
        self.customer_id = customer_id
        self.source = source
        self.external_id = external_id


class NothingToSplit(IdentityError):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"no identities named to split from customer {customer_id}")
        self.customer_id = customer_id


class CannotSplitEveryIdentity(IdentityError):
    """Splitting every identity away would leave an empty customer: nothing to separate."""

    def __init__(self, customer_id: int) -> None:
        super().__init__(f"cannot split every identity away from customer {customer_id}")
        self.customer_id = customer_id


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Linked:
    """Where a source record landed."""

    customer_id: int
    source_record_id: int
    created_customer: bool
    merged_customer_ids: tuple[int, ...] = ()
    matched_by: str = Rule.SAME_SOURCE_RECORD.value


@dataclass(frozen=True)
class IdentityLink:
    """One source record of a golden customer (``Customer.identities``)."""

    source_record_id: int
    customer_id: int
    source: Source
    external_id: str
    matched_by: str
    linked_at: datetime


@dataclass(frozen=True)
class IdentityEvent:
    """One identity-ledger entry (``Customer.identityHistory``)."""

    id: int
    at: datetime
    action: str  # create | link | merge | split
    rule: str
    evidence: dict[str, Any]
    actor: str
    customer_id: int
    other_customer_id: int | None
    source: Source | None
    external_id: str | None


# --- small helpers ------------------------------------------------------------------------

_BIGINT_ARRAY = ARRAY(BigInteger)


async def _emit(
    conn: AsyncConnection, changes: list[Change] | None, produced: Sequence[Change]
) -> None:
    if changes is not None:
        changes.extend(produced)
    elif produced:
        await append_changes(conn, produced)


def _updated(customer_id: int, reason: str) -> Change:
    return Change(
        CUSTOMER_UPDATED,
        f"customer:{customer_id}",
        {"customer_id": customer_id, "reason": reason},
        customer_id=customer_id,
    )


def _attributes(record: CustomerRecord) -> dict[str, Any]:
    """What the source record stores: the source's extra attributes, then the fields
    identity resolution reads (these win: a caller may pass back stored attributes)."""
    return {
        **dict(record.attributes),
        "given_name": record.given_name,
        "family_name": record.family_name,
        "display_name": record.display_name,
        "email": record.email.strip() if record.email else record.email,
        "phone": record.phone,
        "loyalty_id": record.loyalty_id,
        "email_verified": record.email_verified,
        "phone_verified": record.phone_verified,
        "default_region": record.default_region,
    }


def _lock_id(key: str) -> int:
    """A stable signed 64-bit advisory-lock id for a normalized key."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"gg-identity").digest()
    return int.from_bytes(digest, "big", signed=True)


_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(:keys) AS k ORDER BY k) AS s"
).bindparams(bindparam("keys", type_=_BIGINT_ARRAY))


async def _lock_keys(conn: AsyncConnection, keys: RecordKeys) -> None:
    """Serialize every transaction touching one of these keys until commit. Locks are taken
    in sorted order so two transactions never wait on each other in a cycle."""
    names = [f"src:{keys.source}:{keys.external_id}"]
    names += [f"{kind.value}:{value}" for kind, value in keys.identifiers()]
    await conn.execute(_LOCK_KEYS, {"keys": sorted({_lock_id(n) for n in names})})


async def _store_phones(conn: AsyncConnection) -> frozenset[str]:
    """The stores' own numbers (E.164): staff type them in for walk-ins; never a match key."""
    rows = await conn.execute(
        select(stores.c.phone, stores.c.country).where(stores.c.phone.is_not(None))
    )
    return frozenset(p for r in rows if (p := phone_key(r.phone, r.country)) is not None)


async def canonical_customer_ids(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, int]:
    """Each known id mapped to its surviving customer (itself unless merged); unknown ids
    are absent. Merges re-point older merges, so a chain is one step; the query follows
    longer ones anyway."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        text(
            """
            WITH RECURSIVE chain(start, id, merged_into, depth) AS (
                SELECT id, id, merged_into, 0 FROM customers WHERE id = ANY(:ids)
                UNION ALL
                SELECT chain.start, c.id, c.merged_into, chain.depth + 1
                FROM chain JOIN customers c ON c.id = chain.merged_into
                WHERE chain.depth < 32
            )
            SELECT start, id FROM chain WHERE merged_into IS NULL
            """
        ).bindparams(bindparam("ids", type_=_BIGINT_ARRAY)),
        {"ids": wanted},
    )
    return {int(r.start): int(r.id) for r in rows}


async def canonical_customer_id(conn: AsyncConnection, customer_id: int) -> int | None:
    """Follow ``merged_into`` to the surviving customer; None if there is no such customer."""
    return (await canonical_customer_ids(conn, [customer_id])).get(customer_id)


async def _lock_customers(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, int | None]:
    """Row-lock customers in id order; return each one's ``merged_into``."""
    rows = await conn.execute(
        select(customers.c.id, customers.c.merged_into)
        .where(customers.c.id.in_(sorted(set(ids))))
        .order_by(customers.c.id)
        .with_for_update()
    )
    return {int(r.id): r.merged_into for r in rows}


async def _ledger(
    conn: AsyncConnection,
    *,
    action: str,
    customer_id: int,
    rule: str,
    evidence: dict[str, Any],
    actor: str,
    other_customer_id: int | None = None,
    source_record_id: int | None = None,
) -> None:
    await conn.execute(
        insert(identity_ledger).values(
            action=action,
            customer_id=customer_id,
            other_customer_id=other_customer_id,
            source_record_id=source_record_id,
            rule=rule,
            evidence=evidence,
            actor=actor,
        )
    )


# --- candidates ---------------------------------------------------------------------------


async def _candidates(
    conn: AsyncConnection, keys: RecordKeys, record_id: int | None
) -> tuple[list[Candidate], dict[tuple[IdentifierKind, str], int]]:
    """The customers holding one of the record's keys (or the record itself), locked, with
    everything ``decide`` needs; and how many distinct customers hold each key."""
    wanted = [(kind.value, value) for kind, value in keys.identifiers()]
    for _ in range(8):  # a concurrent merge moved a candidate: look again
        holders: dict[tuple[IdentifierKind, str], set[int]] = defaultdict(set)
        if wanted:
            rows = await conn.execute(
                select(identifiers.c.customer_id, identifiers.c.kind, identifiers.c.value).where(
                    tuple_(identifiers.c.kind, identifiers.c.value).in_(wanted)
                )
            )
            for r in rows:
                holders[(IdentifierKind(r.kind), r.value)].add(int(r.customer_id))
        owner: int | None = None
        if record_id is not None:
            owner = await conn.scalar(
                select(source_records.c.customer_id).where(source_records.c.id == record_id)
            )
        ids = set().union(*holders.values()) | ({owner} if owner is not None else set())
        if not ids:
            return [], {}
        merged = await _lock_customers(conn, ids)
        if all(merged.get(i) is None for i in ids):
            break
    else:  # pragma: no cover - needs eight concurrent merges of the same customers
        raise RuntimeError("candidate customers kept moving")
    counts = {key: len(owners) for key, owners in holders.items()}
    if not ids:
        return [], counts
    return await _describe(conn, ids, owner=owner, record_id=record_id), counts


async def _describe(
    conn: AsyncConnection, ids: set[int], *, owner: int | None, record_id: int | None
) -> list[Candidate]:
    id_list = sorted(ids)
    known: dict[int, dict[IdentifierKind, set[str]]] = {i: defaultdict(set) for i in id_list}
    for r in await conn.execute(
        select(identifiers.c.customer_id, identifiers.c.kind, identifiers.c.value).where(
            identifiers.c.customer_id.in_(id_list)
        )
    ):
        known[int(r.customer_id)][IdentifierKind(r.kind)].add(r.value)
    names: dict[int, set[PersonName]] = defaultdict(set)
    record_owner: dict[int, int] = {}
    for n in await conn.execute(
        select(
            source_records.c.id,
            source_records.c.customer_id,
            source_records.c.attributes["given_name"].astext.label("given"),
            source_records.c.attributes["family_name"].astext.label("family"),
            source_records.c.attributes["display_name"].astext.label("display"),
        ).where(source_records.c.customer_id.in_(id_list))
    ):
        record_owner[int(n.id)] = int(n.customer_id)
        name = PersonName.of(n.given, n.family, n.display)
        if name.given or name.family:
            names[int(n.customer_id)].add(name)
    separated: dict[int, set[int]] = defaultdict(set)
    from_record: set[int] = set()
    pairs = await conn.execute(
        select(
            identity_separations.c.source_record_a, identity_separations.c.source_record_b
        ).where(
            identity_separations.c.source_record_a.in_(list(record_owner))
            | identity_separations.c.source_record_b.in_(list(record_owner))
        )
    )
    for a, b in pairs:
        ca, cb = record_owner.get(a), record_owner.get(b)
        if record_id in (a, b):
            other = cb if a == record_id else ca
            if other is not None:
                from_record.add(other)
        if ca is not None and cb is not None and ca != cb:
            separated[ca].add(cb)
            separated[cb].add(ca)
    return [
        Candidate(
            customer_id=i,
            owns_record=i == owner,
            emails=frozenset(known[i][IdentifierKind.EMAIL]),
            email_secondaries=frozenset(known[i][IdentifierKind.EMAIL_SECONDARY]),
            phones=frozenset(known[i][IdentifierKind.PHONE]),
            loyalty_ids=frozenset(known[i][IdentifierKind.LOYALTY_ID]),
            names=frozenset(names[i]),
            separated_from=frozenset(separated[i]),
            separated_from_record=i in from_record and i != owner,
        )
        for i in id_list
    ]


# --- linking ------------------------------------------------------------------------------


async def link_record(
    conn: AsyncConnection,
    record: CustomerRecord,
    *,
    actor: str = "ingest",
    policy: MatchPolicy | None = None,
    changes: list[Change] | None = None,
) -> Linked:
    """Link ``record`` to its golden customer, creating one when nothing matches and merging
    customers the record ties together. Runs in the caller's transaction.

    The same source + external id always lands on the same customer (following merges).
    An update older than the stored ``version`` changes nothing. Concurrent calls about the
    same person serialize on advisory locks of the normalized keys, so they produce one
    customer. See the module docstring for ``changes``.
    """
    policy = policy or MatchPolicy()
    store_phones = await _store_phones(conn) if record.phone else frozenset[str]()
    keys = keys_of(record, policy, store_phones)
    await _lock_keys(conn, keys)
    attributes = _attributes(record)
    existing = (
        await conn.execute(
            select(
                source_records.c.id,
                source_records.c.customer_id,
                source_records.c.source_version,
                source_records.c.attributes,
            )
            .where(source_records.c.source == record.source.value)
            .where(source_records.c.external_id == record.external_id)
        )
    ).first()
    # No row lock on the record here: the advisory lock above already serializes links of
    # this record, and customers are always locked before their source records are written
    # (a merge does the same), so the two can never wait on each other in a cycle.
    if existing is not None:
        stale = (
            record.version is not None
            and existing.source_version is not None
            and record.version < existing.source_version
        )
        if stale or existing.attributes == attributes:
            customer_id = await _locked_owner(conn, int(existing.id))
            if not stale and record.version is not None:
                await conn.execute(
                    update(source_records)
                    .where(source_records.c.id == existing.id)
                    .values(source_version=record.version)
                )
            return Linked(customer_id, int(existing.id), created_customer=False)

    record_id = int(existing.id) if existing is not None else None
    candidates, counts = await _candidates(conn, keys, record_id)
    decision = decide(keys, candidates, policy, counts)
    produced: list[Change] = []
    created = False
    merged: tuple[int, ...] = ()
    via = {"source": record.source.value, "external_id": record.external_id}
    if isinstance(decision, CreateNew):
        customer_id = int(
            (await conn.execute(insert(customers).values().returning(customers.c.id))).scalar_one()
        )
        created = True
    elif isinstance(decision, LinkTo):
        customer_id = decision.customer_id
    else:
        customer_id = decision.survivor
        rules = {m.customer_id: m for m in decision.matches}
        for other in decision.others:
            match = rules[other]
            await _merge_into(
                conn,
                customer_id,
                other,
                rule=match.rule.value,
                evidence={**match.evidence, "via": via},
                actor=actor,
                produced=produced,
            )
        merged = decision.others

    if existing is None:
        source_record_id = int(
            (
                await conn.execute(
                    insert(source_records)
                    .values(
                        source=record.source.value,
                        external_id=record.external_id,
                        customer_id=customer_id,
                        matched_by=decision.rule.value,
                        evidence=decision.evidence,
                        attributes=attributes,
                        source_version=record.version,
                        source_updated_at=record.observed_at,
                    )
                    .returning(source_records.c.id)
                )
            ).scalar_one()
        )
        await _ledger(
            conn,
            action="create" if created else "link",
            customer_id=customer_id,
            source_record_id=source_record_id,
            rule=decision.rule.value,
            evidence={**decision.evidence, **via},
            actor=actor,
        )
    else:
        source_record_id = int(existing.id)
        await conn.execute(
            update(source_records)
            .where(source_records.c.id == source_record_id)
            .values(
                customer_id=customer_id,
                attributes=attributes,
                source_version=record.version,
                source_updated_at=record.observed_at,
                updated_at=func.now(),
            )
        )
    await _replace_identifiers(conn, source_record_id, customer_id, keys, record)
    await refresh_golden_fields(conn, [customer_id])
    if merged:
        await recompute_traits(conn, [customer_id])
    await _emit(conn, changes, produced)
    matched_by = Rule.SAME_SOURCE_RECORD.value if existing is not None else decision.rule.value
    return Linked(customer_id, source_record_id, created, merged, matched_by)


# --- linking many records at once ---------------------------------------------------------
#
# A webhook batch or an import batch carries dozens of customer records, most of them either
# already linked and unchanged (a repeat guest) or brand new with keys nobody holds. Those two
# cases take a fixed handful of statements for the whole batch here; every other record
# (changed fields, a key someone holds, a key shared inside the batch) is left to
# ``link_record``, one at a time, exactly as before.

_TEXT_ARRAY = ARRAY(Text)
_TIME_ARRAY = ARRAY(DateTime(timezone=True))
_BOOL_ARRAY = ARRAY(Boolean)


def _arrays(**types: Any) -> list[Any]:
    return [bindparam(name, type_=type_) for name, type_ in types.items()]


_KNOWN_RECORDS = text(
    """
    SELECT sr.id, sr.source, sr.external_id, sr.customer_id, sr.source_version, sr.attributes
    FROM source_records sr
    JOIN unnest(:sources, :external_ids) AS k(source, external_id)
      ON sr.source = k.source AND sr.external_id = k.external_id
    """
).bindparams(*_arrays(sources=_TEXT_ARRAY, external_ids=_TEXT_ARRAY))

_OWNERS = text("SELECT id, customer_id FROM source_records WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=_BIGINT_ARRAY)
)

_SET_VERSIONS = text(
    """
    UPDATE source_records sr SET source_version = v.version
    FROM unnest(:ids, :versions) AS v(id, version)
    WHERE sr.id = v.id
    """
).bindparams(*_arrays(ids=_BIGINT_ARRAY, versions=_BIGINT_ARRAY))

_HELD_KEYS = text(
    """
    SELECT DISTINCT i.kind, i.value FROM identifiers i
    JOIN unnest(:kinds, :values_) AS k(kind, value) ON i.kind = k.kind AND i.value = k.value
    """
).bindparams(*_arrays(kinds=_TEXT_ARRAY, values_=_TEXT_ARRAY))

_NEW_IDS = text(
    """
    SELECT nextval(pg_get_serial_sequence('customers', 'id')) AS customer_id,
           nextval(pg_get_serial_sequence('source_records', 'id')) AS record_id
    FROM generate_series(1, :n)
    """
)

_INSERT_CUSTOMERS = text(
    """
    INSERT INTO customers (id, given_name, family_name, display_name, email, email_normalized,
                           phone, survivorship)
    SELECT id, given, family, display, email, email_normalized, phone, survivorship::jsonb
    FROM unnest(:ids, :given, :family, :display, :email, :email_normalized, :phone,
                :survivorship)
         AS c(id, given, family, display, email, email_normalized, phone, survivorship)
    """
).bindparams(
    *_arrays(
        ids=_BIGINT_ARRAY,
        given=_TEXT_ARRAY,
        family=_TEXT_ARRAY,
        display=_TEXT_ARRAY,
        email=_TEXT_ARRAY,
        email_normalized=_TEXT_ARRAY,
        phone=_TEXT_ARRAY,
        survivorship=_TEXT_ARRAY,
    )
)

_INSERT_RECORDS = text(
    """
    INSERT INTO source_records (id, source, external_id, customer_id, matched_by, evidence,
                                attributes, source_version, source_updated_at)
    SELECT id, source, external_id, customer_id, matched_by, evidence::jsonb, attributes::jsonb,
           version, observed_at
    FROM unnest(:ids, :sources, :external_ids, :customer_ids, :matched_by, :evidence,
                :attributes, :versions, :observed_at)
         AS r(id, source, external_id, customer_id, matched_by, evidence, attributes, version,
              observed_at)
    """
).bindparams(
    *_arrays(
        ids=_BIGINT_ARRAY,
        sources=_TEXT_ARRAY,
        external_ids=_TEXT_ARRAY,
        customer_ids=_BIGINT_ARRAY,
        matched_by=_TEXT_ARRAY,
        evidence=_TEXT_ARRAY,
        attributes=_TEXT_ARRAY,
        versions=_BIGINT_ARRAY,
        observed_at=_TIME_ARRAY,
    )
)

_INSERT_LEDGER = text(
    """
    INSERT INTO identity_ledger (action, customer_id, source_record_id, rule, evidence, actor)
    SELECT 'create', customer_id, record_id, rule, evidence::jsonb, :actor
    FROM unnest(:customer_ids, :record_ids, :rules, :evidence)
         AS l(customer_id, record_id, rule, evidence)
    """
).bindparams(
    *_arrays(
        customer_ids=_BIGINT_ARRAY,
        record_ids=_BIGINT_ARRAY,
        rules=_TEXT_ARRAY,
        evidence=_TEXT_ARRAY,
    )
)

_INSERT_IDENTIFIERS = text(
    """
    INSERT INTO identifiers (customer_id, source_record_id, kind, value, verified)
    SELECT * FROM unnest(:customer_ids, :record_ids, :kinds, :values_, :verified)
    """
).bindparams(
    *_arrays(
        customer_ids=_BIGINT_ARRAY,
        record_ids=_BIGINT_ARRAY,
        kinds=_TEXT_ARRAY,
        values_=_TEXT_ARRAY,
        verified=_BOOL_ARRAY,
    )
)


@dataclass(frozen=True)
class _Incoming:
    record: CustomerRecord
    keys: RecordKeys
    attributes: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.record.source.value, self.record.external_id)


def _unique(records: Sequence[CustomerRecord]) -> list[CustomerRecord]:
    """One record per source key; a key sent twice with different contents is left out
    (``link_record`` applies the copies in order)."""
    by_key: dict[tuple[str, str], list[CustomerRecord]] = defaultdict(list)
    for r in records:
        by_key[(r.source.value, r.external_id)].append(r)
    return [copies[0] for copies in by_key.values() if all(c == copies[0] for c in copies)]


async def link_records(
    conn: AsyncConnection,
    records: Sequence[CustomerRecord],
    *,
    actor: str = "ingest",
    policy: MatchPolicy | None = None,
) -> dict[tuple[str, str], Linked]:
    """Link the simple records of a batch in a fixed number of statements, exactly as
    ``link_record`` would link each: a record already linked whose fields are unchanged (or
    older) keeps its customer (row-locked until commit, its newer version stored); a new
    record none of whose keys is held by anyone, nor by another record of the batch, gets a
    new customer. Returns those, by (source, external id). Link the records left out with
    ``link_record``. Emits no change-feed rows (``link_record`` emits none for these cases).

    Takes the advisory locks of every record's keys at once (sorted), so the caller's
    ``link_record`` calls for the rest re-enter locks it already holds.
    """
    policy = policy or MatchPolicy()
    unique = _unique(records)
    if not unique:
        return {}
    store_phones = await _store_phones(conn) if any(r.phone for r in records) else frozenset[str]()
    incoming = [_Incoming(r, keys_of(r, policy, store_phones), _attributes(r)) for r in unique]
    # keys two records of the batch share (whatever becomes of those records): linking one
    # of them may depend on the other, so neither is created here
    holders: dict[tuple[IdentifierKind, str], set[tuple[str, str]]] = defaultdict(set)
    kept = {id(i.record): i.keys for i in incoming}
    for r in records:
        keys = kept.get(id(r)) or keys_of(r, policy, store_phones)
        for pair in keys.identifiers():
            holders[pair].add((r.source.value, r.external_id))
    shared = {pair for pair, keys in holders.items() if len(keys) > 1}
    names = {f"src:{i.keys.source}:{i.keys.external_id}" for i in incoming}
    names |= {f"{kind.value}:{value}" for i in incoming for kind, value in i.keys.identifiers()}
    await conn.execute(_LOCK_KEYS, {"keys": sorted({_lock_id(n) for n in names})})
    known = {
        (r.source, r.external_id): r
        for r in await conn.execute(
            _KNOWN_RECORDS,
            {
                "sources": [i.record.source.value for i in incoming],
                "external_ids": [i.record.external_id for i in incoming],
            },
        )
    }
    linked = await _link_unchanged(conn, incoming, known)
    fresh = [i for i in incoming if i.key not in known]
    linked.update(await _link_new(conn, fresh, shared, policy, actor))
    return linked


async def _link_unchanged(
    conn: AsyncConnection, incoming: Sequence[_Incoming], known: dict[tuple[str, str], Any]
) -> dict[tuple[str, str], Linked]:
    """Known records whose fields did not change (or that are older than the stored
    version): their customers row-locked, their newer versions stored."""
    same: list[tuple[_Incoming, Any]] = []
    for i in incoming:
        row = known.get(i.key)
        if row is None:
            continue
        version, stored = i.record.version, row.source_version
        stale = version is not None and stored is not None and version < stored
        if stale or row.attributes == i.attributes:
            same.append((i, row))
    if not same:
        return {}
    locked = await _lock_customers(conn, [row.customer_id for _, row in same])
    owners = {
        int(r.id): int(r.customer_id)
        for r in await conn.execute(_OWNERS, {"ids": [int(row.id) for _, row in same]})
    }
    # a concurrent merge or split moved a record between our read and our lock: those go
    # the one-at-a-time way, which looks again
    steady = [
        (i, row)
        for i, row in same
        if locked.get(row.customer_id, 0) is None and owners.get(row.id) == row.customer_id
    ]
    newer = [
        (int(row.id), i.record.version)
        for i, row in steady
        if i.record.version is not None
        and (row.source_version is None or i.record.version > row.source_version)
    ]
    if newer:
        ids, versions = zip(*newer, strict=True)
        await conn.execute(_SET_VERSIONS, {"ids": list(ids), "versions": list(versions)})
    return {
        i.key: Linked(int(row.customer_id), int(row.id), created_customer=False)
        for i, row in steady
    }


async def _link_new(
    conn: AsyncConnection,
    incoming: Sequence[_Incoming],
    shared: set[tuple[IdentifierKind, str]],
    policy: MatchPolicy,
    actor: str,
) -> dict[tuple[str, str], Linked]:
    """New records whose keys no customer holds and no other record of the batch shares
    (``shared``): a new customer each, with its golden fields, identifiers and ledger entry."""
    alone = [i for i in incoming if not any(p in shared for p in i.keys.identifiers())]
    pairs = [p for i in alone for p in i.keys.identifiers()]
    held: set[tuple[str, str]] = set()
    if pairs:
        rows = await conn.execute(
            _HELD_KEYS,
            {"kinds": [k.value for k, _ in pairs], "values_": [v for _, v in pairs]},
        )
        held = {(r.kind, r.value) for r in rows}
    fresh: list[tuple[_Incoming, CreateNew]] = []
    for i in alone:
        if any((k.value, v) in held for k, v in i.keys.identifiers()):
            continue
        decision = decide(i.keys, [], policy, {})
        if isinstance(decision, CreateNew):
            fresh.append((i, decision))
    if not fresh:
        return {}
    new_ids = (await conn.execute(_NEW_IDS, {"n": len(fresh)})).all()
    customer_ids = [int(r.customer_id) for r in new_ids]
    record_ids = [int(r.record_id) for r in new_ids]
    profiles = [
        golden_profile([_facts(rid, i)]) for rid, (i, _) in zip(record_ids, fresh, strict=True)
    ]
    await conn.execute(
        _INSERT_CUSTOMERS,
        {
            "ids": customer_ids,
            "given": [p.given_name for p in profiles],
            "family": [p.family_name for p in profiles],
            "display": [p.display_name for p in profiles],
            "email": [p.email for p in profiles],
            "email_normalized": [p.email_normalized for p in profiles],
            "phone": [p.phone for p in profiles],
            "survivorship": [_json(p.chosen_from) for p in profiles],
        },
    )
    await conn.execute(
        _INSERT_RECORDS,
        {
            "ids": record_ids,
            "sources": [i.record.source.value for i, _ in fresh],
            "external_ids": [i.record.external_id for i, _ in fresh],
            "customer_ids": customer_ids,
            "matched_by": [d.rule.value for _, d in fresh],
            "evidence": [_json(d.evidence) for _, d in fresh],
            "attributes": [_json(i.attributes) for i, _ in fresh],
            "versions": [i.record.version for i, _ in fresh],
            "observed_at": [i.record.observed_at for i, _ in fresh],
        },
    )
    await conn.execute(
        _INSERT_LEDGER,
        {
            "actor": actor,
            "customer_ids": customer_ids,
            "record_ids": record_ids,
            "rules": [d.rule.value for _, d in fresh],
            "evidence": [
                _json(
                    {
                        **d.evidence,
                        "source": i.record.source.value,
                        "external_id": i.record.external_id,
                    }
                )
                for i, d in fresh
            ],
        },
    )
    idents = [
        (cid, rid, kind, value, _verified(i.record, kind))
        for cid, rid, (i, _) in zip(customer_ids, record_ids, fresh, strict=True)
        for kind, value in i.keys.identifiers()
    ]
    if idents:
        cids, rids, kinds, values, verified = zip(*idents, strict=True)
        await conn.execute(
            _INSERT_IDENTIFIERS,
            {
                "customer_ids": list(cids),
                "record_ids": list(rids),
                "kinds": [k.value for k in kinds],
                "values_": list(values),
                "verified": list(verified),
            },
        )
    return {
        i.key: Linked(cid, rid, created_customer=True, matched_by=d.rule.value)
        for cid, rid, (i, d) in zip(customer_ids, record_ids, fresh, strict=True)
    }


def _verified(record: CustomerRecord, kind: IdentifierKind) -> bool:
    """As ``_replace_identifiers`` marks them."""
    if kind is IdentifierKind.EMAIL:
        return record.email_verified
    if kind is IdentifierKind.PHONE:
        return record.phone_verified
    return False


def _facts(record_id: int, i: _Incoming) -> RecordFacts:
    """What ``refresh_golden_fields`` would read back for a customer's only record."""
    a = i.attributes
    return RecordFacts(
        source_record_id=record_id,
        source=i.record.source,
        updated_at=i.record.observed_at or datetime.now(UTC),
        given_name=a.get("given_name"),
        family_name=a.get("family_name"),
        display_name=a.get("display_name"),
        email=a.get("email"),
        email_key=i.keys.email,
        phone_key=i.keys.phone,
        email_verified=i.record.email_verified,
        phone_verified=i.record.phone_verified,
    )


async def _locked_owner(conn: AsyncConnection, source_record_id: int) -> int:
    """The record's customer, row-locked until commit so no merge moves it from under the
    caller (who is about to attach orders to it)."""
    while True:
        owner = int(
            await conn.scalar(
                select(source_records.c.customer_id).where(source_records.c.id == source_record_id)
            )
            or 0
        )
        if (await _lock_customers(conn, [owner])).get(owner) is None:
            return owner


async def _replace_identifiers(
    conn: AsyncConnection,
    source_record_id: int,
    customer_id: int,
    keys: RecordKeys,
    record: CustomerRecord,
) -> None:
    await conn.execute(
        delete(identifiers).where(identifiers.c.source_record_id == source_record_id)
    )
    verified = {
        IdentifierKind.EMAIL: record.email_verified,
        IdentifierKind.EMAIL_SECONDARY: False,
        IdentifierKind.PHONE: record.phone_verified,
        IdentifierKind.LOYALTY_ID: False,
    }
    rows = [
        {
            "customer_id": customer_id,
            "source_record_id": source_record_id,
            "kind": kind.value,
            "value": value,
            "verified": verified[kind],
        }
        for kind, value in keys.identifiers()
    ]
    if rows:
        await conn.execute(insert(identifiers), rows)


# --- golden fields ------------------------------------------------------------------------


_GOLDEN_FACTS = text(
    """
    SELECT sr.id, sr.customer_id, sr.source, sr.attributes, sr.deleted_at IS NOT NULL AS deleted,
           coalesce(sr.source_updated_at, sr.updated_at) AS updated_at,
           e.value AS email_key, coalesce(e.verified, false) AS email_verified,
           p.value AS phone_key, coalesce(p.verified, false) AS phone_verified
    FROM source_records sr
    LEFT JOIN identifiers e ON e.source_record_id = sr.id AND e.kind = 'email'
    LEFT JOIN identifiers p ON p.source_record_id = sr.id AND p.kind = 'phone'
    WHERE sr.customer_id = ANY(:ids)
    """
).bindparams(bindparam("ids", type_=_BIGINT_ARRAY))


async def refresh_golden_fields(conn: AsyncConnection, customer_ids: Sequence[int]) -> set[int]:
    """Recompute the golden fields of ``customer_ids`` by survivorship; return the ids
    whose fields changed. Linking, merging and splitting call it; call it yourself after
    changing source records another way (e.g. marking one deleted)."""
    ids = sorted(set(customer_ids))
    facts: dict[int, list[RecordFacts]] = defaultdict(list)
    for r in await conn.execute(_GOLDEN_FACTS, {"ids": ids}):
        a = r.attributes
        facts[int(r.customer_id)].append(
            RecordFacts(
                source_record_id=int(r.id),
                source=Source(r.source),
                updated_at=r.updated_at,
                given_name=a.get("given_name"),
                family_name=a.get("family_name"),
                display_name=a.get("display_name"),
                email=a.get("email"),
                email_key=r.email_key,
                phone_key=r.phone_key,
                email_verified=r.email_verified,
                phone_verified=r.phone_verified,
                deleted=r.deleted,
            )
        )
    changed: set[int] = set()
    for customer_id in ids:
        profile = golden_profile(facts[customer_id])
        values = _golden_values(profile)
        row = await conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .where(
                or_(*(customers.c[name].is_distinct_from(value) for name, value in values.items()))
            )
            .values(**values, survivorship=profile.chosen_from, updated_at=func.now())
        )
        if row.rowcount:
            changed.add(customer_id)
    return changed


def _golden_values(profile: GoldenProfile) -> dict[str, str | None]:
    return {
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "display_name": profile.display_name,
        "email": profile.email,
        "email_normalized": profile.email_normalized,
        "phone": profile.phone,
    }


# --- merging ------------------------------------------------------------------------------


async def _merge_into(
    conn: AsyncConnection,
    survivor: int,
    loser: int,
    *,
    rule: str,
    evidence: dict[str, Any],
    actor: str,
    produced: list[Change],
) -> None:
    """Move everything of ``loser`` to ``survivor`` (both rows already locked)."""
    moves = {"s": survivor, "l": loser}
    for table in (source_records, identifiers, orders, interactions):
        await conn.execute(
            update(table).where(table.c.customer_id == loser).values(customer_id=survivor)
        )
    await _merge_loyalty(conn, survivor, loser, produced)
    await conn.execute(text(_MERGE_PREFERENCES), moves)
    for statement in _MERGE_CONSENTS:
        await conn.execute(text(statement), {**moves, "crm": sorted(s.value for s in CRM_SOURCES)})
    await conn.execute(delete(customer_traits).where(customer_traits.c.customer_id == loser))
    await conn.execute(
        update(customers).where(customers.c.merged_into == loser).values(merged_into=survivor)
    )
    await conn.execute(
        update(customers)
        .where(customers.c.id == loser)
        .values(merged_into=survivor, merged_at=func.now(), updated_at=func.now())
    )
    await _ledger(
        conn,
        action="merge",
        customer_id=survivor,
        other_customer_id=loser,
        rule=rule,
        evidence=evidence,
        actor=actor,
    )
    produced.append(
        Change(
            CUSTOMER_MERGED,
            f"customer:{survivor}",
            {"survivor_id": survivor, "merged_id": loser, "rule": rule},
            customer_id=survivor,
        )
    )


_MERGE_PREFERENCES = """
WITH gone AS (DELETE FROM preferences WHERE customer_id = :l RETURNING *)
INSERT INTO preferences AS p (customer_id, dietary, allergens, cuisines, source_record_id,
                              updated_at)
SELECT :s, dietary, allergens, cuisines, source_record_id, updated_at FROM gone
ON CONFLICT (customer_id) DO UPDATE SET
    dietary = ARRAY(SELECT DISTINCT unnest(p.dietary || excluded.dietary) ORDER BY 1),
    allergens = ARRAY(SELECT DISTINCT unnest(p.allergens || excluded.allergens) ORDER BY 1),
    cuisines = ARRAY(SELECT DISTINCT unnest(p.cuisines || excluded.cuisines) ORDER BY 1),
    updated_at = greatest(p.updated_at, excluded.updated_at)
"""

# Per channel: a CRM's word wins over a POS's; between equals, the newer one.
_MERGE_CONSENTS = (
    """
    UPDATE marketing_consents s
    SET granted = l.granted, source = l.source, source_record_id = l.source_record_id,
        recorded_at = l.recorded_at, updated_at = now()
    FROM marketing_consents l
    WHERE s.customer_id = :s AND l.customer_id = :l AND s.channel = l.channel
      AND ((l.source = ANY(:crm))::int, l.recorded_at)
          > ((s.source = ANY(:crm))::int, s.recorded_at)
    """,
    """
    INSERT INTO marketing_consents (customer_id, channel, granted, source, source_record_id,
                                    recorded_at, updated_at)
    SELECT :s, channel, granted, source, source_record_id, recorded_at, updated_at
    FROM marketing_consents WHERE customer_id = :l
    ON CONFLICT (customer_id, channel) DO NOTHING
    """,
    "DELETE FROM marketing_consents WHERE customer_id = :l",
)


async def _merge_loyalty(
    conn: AsyncConnection, survivor: int, loser: int, produced: list[Change]
) -> None:
    """The loser's accounts move to the survivor. Where both have an account in the same
    program, the loser's ledger entries move into the survivor's (oldest) account and its
    balance and lifetime points are added there, so one account per program shows the
    combined history; the emptied account stays (the source still knows it)."""
    accounts = (
        await conn.execute(
            select(
                loyalty_accounts.c.id,
                loyalty_accounts.c.customer_id,
                loyalty_accounts.c.program,
                loyalty_accounts.c.balance,
                loyalty_accounts.c.lifetime_points,
            )
            .where(loyalty_accounts.c.customer_id.in_([survivor, loser]))
            .order_by(loyalty_accounts.c.id)
            .with_for_update()
        )
    ).all()
    primary: dict[str, int] = {}
    for a in accounts:
        if a.customer_id == survivor:
            primary.setdefault(a.program, int(a.id))
    for a in accounts:
        target = primary.get(a.program)
        if a.customer_id != loser or target is None:
            continue
        await conn.execute(
            update(loyalty_ledger)
            .where(loyalty_ledger.c.account_id == a.id)
            .values(
                account_id=target,
                posted_account_id=func.coalesce(
                    loyalty_ledger.c.posted_account_id, loyalty_ledger.c.account_id
                ),
            )
        )
        await conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.id == target)
            .values(
                balance=loyalty_accounts.c.balance + a.balance,
                lifetime_points=loyalty_accounts.c.lifetime_points + a.lifetime_points,
                updated_at=func.now(),
            )
        )
        await conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.id == a.id)
            .values(balance=0, lifetime_points=0, updated_at=func.now())
        )
        produced.append(
            Change(
                LOYALTY_CHANGED,
                f"loyalty:{target}",
                {"account_id": target, "merged_account_id": int(a.id), "reason": "merge"},
                customer_id=survivor,
            )
        )
    await conn.execute(
        update(loyalty_accounts)
        .where(loyalty_accounts.c.customer_id == loser)
        .values(customer_id=survivor)
    )


async def _separated(conn: AsyncConnection, a: int, b: int) -> bool:
    rows = await conn.execute(
        text(
            """
            SELECT 1 FROM identity_separations s
            JOIN source_records ra ON ra.id = s.source_record_a
            JOIN source_records rb ON rb.id = s.source_record_b
            WHERE (ra.customer_id = :a AND rb.customer_id = :b)
               OR (ra.customer_id = :b AND rb.customer_id = :a)
            LIMIT 1
            """
        ),
        {"a": a, "b": b},
    )
    return rows.first() is not None


async def _forget_separation(conn: AsyncConnection, a: int, b: int) -> None:
    await conn.execute(
        text(
            """
            DELETE FROM identity_separations s
            USING source_records ra, source_records rb
            WHERE ra.id = s.source_record_a AND rb.id = s.source_record_b
              AND ((ra.customer_id = :a AND rb.customer_id = :b)
                   OR (ra.customer_id = :b AND rb.customer_id = :a))
            """
        ),
        {"a": a, "b": b},
    )


async def _merge_pair(
    conn: AsyncConnection,
    a: int,
    b: int,
    *,
    actor: str,
    rule: str,
    evidence: dict[str, Any],
    force: bool,
    produced: list[Change],
) -> int:
    """Merge two canonical, distinct, locked customers: the older (smaller id) survives."""
    survivor, loser = min(a, b), max(a, b)
    if await _separated(conn, survivor, loser):
        if not force:
            raise CustomersSeparated(survivor, loser)
        await _forget_separation(conn, survivor, loser)
    await _merge_into(
        conn, survivor, loser, rule=rule, evidence=evidence, actor=actor, produced=produced
    )
    return survivor


async def merge_customers(
    conn: AsyncConnection,
    survivor_id: int,
    merged_id: int,
    *,
    actor: str,
    rule: str = Rule.MANUAL.value,
    evidence: dict[str, Any] | None = None,
    force: bool = False,
    changes: list[Change] | None = None,
) -> int:
    """Merge two golden customers in the caller's transaction; return the survivor's id.

    The older customer survives whichever order the ids come in; ids of already merged
    customers resolve to their survivors. Orders, loyalty, interactions, preferences,
    consents, identifiers and source records move over; golden fields and traits are
    recomputed. Raises CustomerNotFound, CannotMergeWithItself, and CustomersSeparated when
    a split separated them (``force=True`` merges anyway and forgets the separation).
    """
    canonical = await canonical_customer_ids(conn, [survivor_id, merged_id])
    for given in (survivor_id, merged_id):
        if given not in canonical:
            raise CustomerNotFound(given)
    a, b = canonical[survivor_id], canonical[merged_id]
    if a == b:
        raise CannotMergeWithItself(a)
    locked = await _lock_customers(conn, [a, b])
    if any(locked.get(i) is not None for i in (a, b)):
        # merged by someone else between our look-up and the lock: start over
        return await merge_customers(
            conn, a, b, actor=actor, rule=rule, evidence=evidence, force=force, changes=changes
        )
    produced: list[Change] = []
    survivor = await _merge_pair(
        conn,
        a,
        b,
        actor=actor,
        rule=rule,
        evidence=evidence or {},
        force=force,
        produced=produced,
    )
    await _after_merge(conn, survivor)
    await _emit(conn, changes, produced)
    return survivor


async def _after_merge(conn: AsyncConnection, survivor: int) -> None:
    await refresh_golden_fields(conn, [survivor])
    await recompute_traits(conn, [survivor])


async def apply_source_merge(
    conn: AsyncConnection,
    source: Source,
    winner_external_id: str,
    loser_external_ids: Sequence[str],
    *,
    actor: str,
    changes: list[Change] | None = None,
) -> int | None:
    """Honour a merge the source itself made (Square ``event_context.merge``, HubSpot
    ``contact.merge``, Salesforce ``MasterRecordId``): the golden customers of the winning
    and losing records merge (the oldest survives). Returns the surviving customer id, or
    None when none of the records is known yet. A source merge is new evidence from a
    person, so it overrides an earlier split (recorded in the ledger). Link the winner's
    record first when its data is at hand (Square sends it as ``customer.created``).
    """
    external_ids = sorted({winner_external_id, *loser_external_ids})
    rows = (
        await conn.execute(
            select(source_records.c.external_id, source_records.c.customer_id)
            .where(source_records.c.source == source.value)
            .where(source_records.c.external_id.in_(external_ids))
        )
    ).all()
    if not rows:
        return None
    canonical = await canonical_customer_ids(conn, [int(r.customer_id) for r in rows])
    ids = sorted(set(canonical.values()))
    locked = await _lock_customers(conn, ids)
    if any(v is not None for v in locked.values()):
        return await apply_source_merge(
            conn, source, winner_external_id, loser_external_ids, actor=actor, changes=changes
        )
    survivor = ids[0]
    produced: list[Change] = []
    evidence = {
        "source": source.value,
        "winner": winner_external_id,
        "losers": sorted(set(loser_external_ids)),
    }
    for other in ids[1:]:
        survivor = await _merge_pair(
            conn,
            survivor,
            other,
            actor=actor,
            rule=Rule.SOURCE_MERGE.value,
            evidence=evidence,
            force=True,
            produced=produced,
        )
    if len(ids) > 1:
        await _after_merge(conn, survivor)
    await _emit(conn, changes, produced)
    return survivor


# --- erasure ------------------------------------------------------------------------------


async def forget_record_keys(
    conn: AsyncConnection, source: Source, external_id: str, *, actor: str
) -> int | None:
    """For a privacy erasure: drop the record's match keys (normalized email, phone,
    loyalty id) so they never match anyone again, and recompute its customer's golden
    fields without them. The record itself stays (orders still point at it). Returns the
    customer id, or None for an unknown record. Call it after clearing the record's
    attributes."""
    row = (
        await conn.execute(
            select(source_records.c.id, source_records.c.customer_id)
            .where(source_records.c.source == source.value)
            .where(source_records.c.external_id == external_id)
        )
    ).first()
    if row is None:
        return None
    customer_id = await _locked_owner(conn, int(row.id))
    await conn.execute(delete(identifiers).where(identifiers.c.source_record_id == row.id))
    await _ledger(
        conn,
        action="unlink",
        customer_id=customer_id,
        source_record_id=int(row.id),
        rule="erasure",
        evidence={},
        actor=actor,
    )
    await refresh_golden_fields(conn, [customer_id])
    return customer_id


# --- splitting ----------------------------------------------------------------------------


async def split_customer(
    conn: AsyncConnection,
    customer_id: int,
    identities: Sequence[tuple[Source, str]],
    *,
    actor: str,
    changes: list[Change] | None = None,
) -> int:
    """Move the named source records to a new golden customer; return its id.

    Orders and interactions those records brought move with them, as do the consents they
    gave; preferences they gave are copied (an allergy is safer kept twice). Every moved
    record is remembered as separate from every remaining one, so the same evidence never
    merges them again. Loyalty accounts those records brought move too, each with the
    ledger entries posted to it (a merge may have folded them into another account), and
    the balances of every account involved are adjusted. Raises CustomerNotFound,
    NothingToSplit, IdentityNotFound and CannotSplitEveryIdentity.
    """
    current = await canonical_customer_id(conn, customer_id)
    if current is None:
        raise CustomerNotFound(customer_id)
    locked = await _lock_customers(conn, [current])
    if locked.get(current) is not None:
        return await split_customer(conn, current, identities, actor=actor, changes=changes)
    if not identities:
        raise NothingToSplit(current)
    records = {
        (Source(r.source), r.external_id): int(r.id)
        for r in await conn.execute(
            select(source_records.c.id, source_records.c.source, source_records.c.external_id)
            .where(source_records.c.customer_id == current)
            .with_for_update()
        )
    }
    moving: set[int] = set()
    for source, external_id in identities:
        found = records.get((source, external_id))
        if found is None:
            raise IdentityNotFound(current, source, external_id)
        moving.add(found)
    staying = set(records.values()) - moving
    if not staying:
        raise CannotSplitEveryIdentity(current)
    new_id = int(
        (await conn.execute(insert(customers).values().returning(customers.c.id))).scalar_one()
    )
    moved = sorted(moving)
    await conn.execute(
        update(source_records)
        .where(source_records.c.id.in_(moved))
        .values(customer_id=new_id, matched_by=Rule.SPLIT.value, linked_at=func.now())
    )
    for table in (identifiers, orders, interactions):
        await conn.execute(
            update(table)
            .where(table.c.customer_id == current, table.c.source_record_id.in_(moved))
            .values(customer_id=new_id)
        )
    params = {"old": current, "new": new_id, "moved": moved}
    for statement in _SPLIT_PREFERENCES_AND_CONSENTS:
        await conn.execute(
            text(statement).bindparams(bindparam("moved", type_=_BIGINT_ARRAY)), params
        )
    await conn.execute(
        pg_insert(identity_separations)
        .values(
            [
                {
                    "source_record_a": min(m, s),
                    "source_record_b": max(m, s),
                    "actor": actor,
                }
                for m in moved
                for s in sorted(staying)
            ]
        )
        .on_conflict_do_nothing()
    )
    produced: list[Change] = []
    await _split_loyalty(conn, current, new_id, moved, produced)
    named = [f"{source.value}:{external_id}" for source, external_id in identities]
    await _ledger(
        conn,
        action="split",
        customer_id=current,
        other_customer_id=new_id,
        rule=Rule.SPLIT.value,
        evidence={"identities": named},
        actor=actor,
    )
    await refresh_golden_fields(conn, [current, new_id])
    await recompute_traits(conn, [current, new_id])
    produced += [
        Change(
            CUSTOMER_SPLIT,
            f"customer:{current}",
            {"customer_id": current, "new_customer_id": new_id, "identities": named},
            customer_id=current,
        ),
        _updated(current, "split"),
        _updated(new_id, "split"),
    ]
    await _emit(conn, changes, produced)
    return new_id


async def _split_loyalty(
    conn: AsyncConnection, old: int, new: int, moved: Sequence[int], produced: list[Change]
) -> None:
    """Move ``old``'s loyalty accounts that the ``moved`` source records brought to ``new``.
    Ledger entries that cross the split (posted to a moving account but folded into a
    staying one by a merge, or the other way round) go to the oldest account of the same
    program on their own side; balances move with them."""
    accounts = (
        await conn.execute(
            select(
                loyalty_accounts.c.id,
                loyalty_accounts.c.program,
                loyalty_accounts.c.source_record_id,
            )
            .where(loyalty_accounts.c.customer_id == old)
            .order_by(loyalty_accounts.c.id)
            .with_for_update()
        )
    ).all()
    moving = {int(a.id) for a in accounts if a.source_record_id in set(moved)}
    if not moving:
        return
    program = {int(a.id): str(a.program) for a in accounts}
    oldest: dict[tuple[bool, str], int] = {}
    for a in accounts:  # in id order: the first of each side and program is the oldest
        oldest.setdefault((int(a.id) in moving, a.program), int(a.id))
    await conn.execute(
        update(loyalty_accounts)
        .where(loyalty_accounts.c.id.in_(sorted(moving)))
        .values(customer_id=new, updated_at=func.now())
    )
    posted = func.coalesce(loyalty_ledger.c.posted_account_id, loyalty_ledger.c.account_id)
    entries = await conn.execute(
        select(
            loyalty_ledger.c.id,
            loyalty_ledger.c.account_id,
            posted.label("posted"),
            loyalty_ledger.c.points,
        ).where(loyalty_ledger.c.account_id.in_(sorted(program)))
    )
    targets: dict[int, list[int]] = defaultdict(list)
    delta: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for e in entries:
        origin, at, points = int(e.posted), int(e.account_id), int(e.points)
        side = origin in moving
        if side == (at in moving) or origin not in program:
            continue
        target = oldest[(side, program[origin])]
        targets[target].append(int(e.id))
        for account, sign in ((at, -1), (target, 1)):
            balance, lifetime = delta[account]
            delta[account] = (balance + sign * points, lifetime + sign * max(points, 0))
    for target, ids in sorted(targets.items()):
        await conn.execute(
            update(loyalty_ledger)
            .where(loyalty_ledger.c.id.in_(ids))
            .values(account_id=target, posted_account_id=posted)
        )
    for account, (balance, lifetime) in sorted(delta.items()):
        await conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.id == account)
            .values(
                balance=loyalty_accounts.c.balance + balance,
                lifetime_points=loyalty_accounts.c.lifetime_points + lifetime,
                updated_at=func.now(),
            )
        )
        owner = new if account in moving else old
        produced.append(
            Change(
                LOYALTY_CHANGED,
                f"loyalty:{account}",
                {"account_id": account, "customer_id": owner, "reason": "split"},
                customer_id=owner,
            )
        )


_SPLIT_PREFERENCES_AND_CONSENTS = (
    """
    INSERT INTO preferences (customer_id, dietary, allergens, cuisines, source_record_id,
                             updated_at)
    SELECT :new, dietary, allergens, cuisines, source_record_id, updated_at
    FROM preferences WHERE customer_id = :old AND source_record_id = ANY(:moved)
    """,
    """
    UPDATE marketing_consents SET customer_id = :new
    WHERE customer_id = :old AND source_record_id = ANY(:moved)
    """,
)


# --- reading ------------------------------------------------------------------------------


async def identities_by_customer_ids(
    conn: AsyncConnection, customer_ids: Sequence[int]
) -> dict[int, list[IdentityLink]]:
    """Every source record of each customer, oldest link first (for a dataloader)."""
    result: dict[int, list[IdentityLink]] = {int(i): [] for i in customer_ids}
    rows = await conn.execute(
        select(
            source_records.c.id,
            source_records.c.customer_id,
            source_records.c.source,
            source_records.c.external_id,
            source_records.c.matched_by,
            source_records.c.linked_at,
        )
        .where(source_records.c.customer_id.in_(list(result)))
        .order_by(source_records.c.linked_at, source_records.c.id)
    )
    for r in rows:
        result[int(r.customer_id)].append(
            IdentityLink(
                source_record_id=int(r.id),
                customer_id=int(r.customer_id),
                source=Source(r.source),
                external_id=r.external_id,
                matched_by=r.matched_by,
                linked_at=r.linked_at,
            )
        )
    return result


async def identity_history_by_customer_ids(
    conn: AsyncConnection, customer_ids: Sequence[int]
) -> dict[int, list[IdentityEvent]]:
    """The identity ledger of each customer, oldest first: its own entries, those of the
    customers merged into it, the links of the source records it holds now, and the split
    that created it (for a dataloader)."""
    wanted = sorted({int(i) for i in customer_ids})
    rows = await conn.execute(
        text(
            """
            WITH family AS (
                SELECT id AS owner, id AS member FROM customers WHERE id = ANY(:ids)
                UNION
                SELECT merged_into, id FROM customers WHERE merged_into = ANY(:ids)
            )
            , entries AS (
                SELECT f.owner, l.id FROM family f
                JOIN identity_ledger l ON l.customer_id = f.member
                UNION
                SELECT f.owner, l.id FROM family f
                JOIN identity_ledger l ON l.other_customer_id = f.member
                UNION
                SELECT sr.customer_id, l.id FROM source_records sr
                JOIN identity_ledger l ON l.source_record_id = sr.id
                WHERE sr.customer_id = ANY(:ids)
            )
            SELECT e.owner, l.id, l.created_at, l.action, l.rule, l.evidence,
                   l.actor, l.customer_id, l.other_customer_id, sr.source, sr.external_id
            FROM entries e
            JOIN identity_ledger l ON l.id = e.id
            LEFT JOIN source_records sr ON sr.id = l.source_record_id
            ORDER BY e.owner, l.id
            """
        ).bindparams(bindparam("ids", type_=_BIGINT_ARRAY)),
        {"ids": wanted},
    )
    result: dict[int, list[IdentityEvent]] = {i: [] for i in wanted}
    for r in rows:
        result[int(r.owner)].append(
            IdentityEvent(
                id=int(r.id),
                at=r.created_at,
                action=r.action,
                rule=r.rule,
                evidence=r.evidence,
                actor=r.actor,
                customer_id=int(r.customer_id),
                other_customer_id=r.other_customer_id,
                source=Source(r.source) if r.source else None,
                external_id=r.external_id,
            )
        )
    return result


async def identity_history(conn: AsyncConnection, customer_id: int) -> list[IdentityEvent]:
    """The identity ledger of one customer (see ``identity_history_by_customer_ids``)."""
    return (await identity_history_by_customer_ids(conn, [customer_id]))[customer_id]


# --- JSON for array parameters ------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
