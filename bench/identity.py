"""Identity-resolution accuracy on a generated, labelled population.

    python -m bench.identity [--people 1000] [--seed 7] [--misses 10] [--orders 3]

Every generated person has a true id. Their source records (1-4, across Square, Toast,
HubSpot and Salesforce) carry real-world noise: case and whitespace in emails, Gmail dots
and +tags, national vs international phone formats, typos / accents / missing given names,
missing fields, people with two emails, households sharing one phone, staff sharing one
loyalty card, placeholder emails and the store's own phone typed in for walk-ins. The
records go through ``link_record`` (the identity step of ingestion, one transaction each,
in random order) on a real PostgreSQL (``GUESTGRAPH_TEST_DATABASE_URL``, else an embedded
server). Printed: pairwise precision and recall of the resulting clusters, wrong merges and
how many of them went through a shared or blocked identifier, and the median link time.
Targets: precision >= 0.995, recall >= 0.98, 0 merges through shared/blocked identifiers.

Recall is printed three ways: over all same-person pairs; over the pairs a chain of shared
identifiers connects (email, secondary email, phone or loyalty id, placeholders and the
store's phone excluded; household phones and staff cards included): the ceiling of any
matcher that never matches on a name alone; and over the pairs the rules' evidence connects
(no staff cards, a phone only between fully named records, a household phone only between
records with the exact same full name). The noise
is not tuned to the matcher: a person's records each draw their email and phone
independently, so some pairs share nothing (one record has only the work email, another
only the phone), as in real data. A second table sorts every missed pair by its cause;
``--misses N`` prints N of them with their records. ``--orders N`` links the same records
again in N - 1 other random arrival orders (a fresh database each) and counts the customers
that come out differently from the first order.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.matching import MatchPolicy, RecordKeys, Rule, keys_of
from domain.model import Source
from domain.normalize import names_agree
from readmodel import identity, migrations
from readmodel.database import create_engine
from readmodel.tables import identity_ledger, source_records, stores
from tests import services

GIVEN = (  # noqa: SIM905 (a word list reads better as words)
    "Dana Sam Alex Maria José Chloé Liam Noah Emma Olivia Ava Mia Lucas Ethan Zoe Nora Omar "
    "Yusuf Aisha Fatima Wei Jun Mei Hiro Yuki Priya Raj Arjun Anika Lena Jonas Felix Ines "
    "Mateo Sofia Diego Camila Lucia Pablo Elena Ivan Olga Nikolai Anna Grace Henry Jack "
    "Ruby Leo Isla Oscar Freya Hugo Alice Clara Emil Astrid Kofi Ama Kwame Zainab Tariq"
).split()
FAMILY = (  # noqa: SIM905
    "Ortiz Garcia Smith Johnson Lee Kim Nguyen Patel Müller Schmidt Rossi Bianchi Dubois "
    "Martin Silva Santos Costa Kowalski Nowak Novak Horvat Ivanov Petrova Tanaka Suzuki Sato "
    "Chen Wang Li Zhang Liu Singh Kumar Shah Khan Ali Hassan Okafor Mensah Diallo Traore "
    "O'Brien Murphy Kelly Walsh Byrne Andersson Johansson Nielsen Hansen Larsen Virtanen "
    "Korhonen Novotny Dvorak Horvath Nagy Papadopoulos Georgiou Cohen Levi Friedman Moreau "
    "Lefebvre Fontaine Gauthier Rousseau Álvarez Fernández Gómez Díaz Romero Navarro"
).split()
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "example.com", "mail.de"]
STORE_PHONE = "(212) 555-0100"
PLACEHOLDER_EMAILS = ["noemail@gmail.com", "none@none.com", "guest@guest.com"]
Key = tuple[str, str]  # (source, external id)
SOURCES = [Source.SQUARE, Source.TOAST, Source.HUBSPOT, Source.SALESFORCE]


@dataclass
class Person:
    id: int
    given: str
    family: str
    emails: list[str]
    phone: str | None  # national digits, US
    loyalty_id: str | None
    shared: set[str] = field(default_factory=set)  # identifiers shared with other people


def _typo(name: str, rnd: random.Random) -> str:
    if len(name) < 4:
        return name
    i = rnd.randrange(1, len(name) - 1)
    if rnd.random() < 0.5:  # swap two letters
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name[:i] + rnd.choice("aeiourn") + name[i + 1 :]


def _phone_variant(digits: str, rnd: random.Random) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rnd.choice(
        [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"1{digits}", f"{a}.{b}.{c}", digits]
    )


def _email_variant(email: str, rnd: random.Random) -> str:
    local, domain = email.split("@")
    roll = rnd.random()
    if roll < 0.25:
        return f"  {local.capitalize()}@{domain.upper()} "
    if roll < 0.4 and domain == "gmail.com":
        dotted = ".".join(local.replace(".", "")) if rnd.random() < 0.3 else local
        tag = f"+{rnd.choice(['pizza', 'orders', 'x'])}" if rnd.random() < 0.5 else ""
        return f"{dotted}{tag}@{rnd.choice(['gmail.com', 'googlemail.com'])}"
    return email


def _emails(given: str, family: str, pid: int, domain: str, work: bool) -> list[str]:
    """A person's own address, plus a work one when ``work`` (12% of people)."""
    local = f"{given}.{family}".lower().replace("'", "")
    emails = [f"{local}{pid}@{domain}"]
    if work:
        emails.append(f"{given[0].lower()}{local.split('.')[-1]}{pid}@work{pid % 50}.com")
    return emails


def population(people: int, rnd: random.Random) -> list[Person]:
    result: list[Person] = []
    used_phones: set[str] = set()

    def new_phone() -> str:
        while True:
            area = rnd.choice(["415", "646", "312", "617", "206"])
            digits = f"{area}{rnd.randrange(2, 10)}{rnd.randrange(10**5, 10**6):06d}"
            if digits not in used_phones:
                used_phones.add(digits)
                return digits

    for pid in range(people):
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        emails = _emails(given, family, pid, rnd.choice(DOMAINS), rnd.random() < 0.12)
        result.append(
            Person(
                id=pid,
                given=given,
                family=family,
                emails=emails,
                phone=new_phone() if rnd.random() < 0.85 else None,
                loyalty_id=f"LC{pid:06d}" if rnd.random() < 0.3 else None,
            )
        )
    # households: 2-4 people with one family name share a phone
    i = 0
    while i < people * 0.12:
        size = rnd.randint(2, 4)
        members = result[i : i + size]
        phone = new_phone()
        givens = rnd.sample(GIVEN, len(members))  # a household's people have distinct names
        for m, given in zip(members, givens, strict=True):
            m.given = given
            m.family = members[0].family
            domain = m.emails[0].partition("@")[2]
            m.emails = _emails(m.given, m.family, m.id, domain, len(m.emails) > 1)
            m.phone = phone
            m.shared.add("phone")
        i += size
    # staff: groups of 3 swiping one loyalty card
    for start in range(people - 30, people, 3):
        card = f"STAFF{start:05d}"
        for m in result[start : start + 3]:
            m.loyalty_id = card
            m.shared.add("loyalty")
    return result


def records_of(person: Person, rnd: random.Random, counter: list[int]) -> list[CustomerRecord]:
    out = []
    for _ in range(rnd.choice([1, 2, 2, 3, 3, 4])):
        counter[0] += 1
        source = rnd.choice(SOURCES)
        given: str | None = person.given
        family: str | None = person.family
        if rnd.random() < 0.08:
            given = _typo(person.given, rnd)
        elif rnd.random() < 0.05:
            family = _typo(person.family, rnd)
        if rnd.random() < 0.2:
            given, family = (given or "").upper(), (family or "").lower()
        if rnd.random() < 0.05:
            given = None
        email: str | None = _email_variant(rnd.choice(person.emails), rnd)
        if rnd.random() < 0.15:
            email = None
        elif rnd.random() < 0.03:
            email = rnd.choice(PLACEHOLDER_EMAILS)
        phone = _phone_variant(person.phone, rnd) if person.phone and rnd.random() < 0.8 else None
        if rnd.random() < 0.02:
            phone = STORE_PHONE
        if not _real(email) and not _real(phone):
            # a record with nothing to match on measures nothing: give it one real value
            if person.phone and rnd.random() < 0.5:
                phone = _phone_variant(person.phone, rnd)
            else:
                email = _email_variant(rnd.choice(person.emails), rnd)
        loyalty = person.loyalty_id if person.loyalty_id and source is Source.SQUARE else None
        if loyalty and rnd.random() < 0.5:
            loyalty = f"{loyalty[:2].lower()}-{loyalty[2:]}"
        out.append(
            CustomerRecord(
                source=source,
                external_id=f"{source.value.lower()}-{counter[0]}",
                given_name=given,
                family_name=family,
                email=email,
                phone=phone,
                loyalty_id=loyalty,
            )
        )
    return out


def _share(by_id: dict[int, Person], ids: set[int]) -> bool:
    """The people of one wrong cluster hold a shared identifier (household phone, card)."""
    people = [by_id[i] for i in ids]
    return any(
        len({getattr(p, attr) for p in people}) == 1 and all(kind in p.shared for p in people)
        for attr, kind in (("phone", "phone"), ("loyalty_id", "loyalty"))
    )


def _real(value: str | None) -> bool:
    """True when ``value`` is there and not a placeholder or the store's phone."""
    return value is not None and value not in PLACEHOLDER_EMAILS and value != STORE_PHONE


def _evidence_components(labelled: list[tuple[Person, CustomerRecord]]) -> dict[Key, int]:
    """Records of one person connected through a chain of shared keys that may match alone
    or with the name (email, secondary email, phone, loyalty id; not placeholders, store
    phones or staff cards; a household phone only with the exact same full name). Pairs
    across components have no evidence."""
    parent: dict[Key, Key] = {}

    def find(k: Key) -> Key:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    seen: dict[tuple[int, str], Key] = {}
    policy = MatchPolicy()
    for person, rec in labelled:
        key = (rec.source.value, rec.external_id)
        find(key)
        keys = keys_of(rec, policy, frozenset({"+12125550100"}))
        values = [f"e:{keys.email}", f"s:{keys.email_secondary}"]
        if "phone" not in person.shared and rec.given_name and rec.family_name:
            values.append(f"p:{keys.phone}")
        elif keys.name.is_complete:  # rule 7: a household phone with the exact full name
            values.append(f"h:{keys.name.given}:{keys.name.family}:{keys.phone}")
        if "loyalty" not in person.shared:
            values.append(f"l:{keys.loyalty_id}")
        for value in values:
            if value.endswith(":None"):
                continue
            other = seen.setdefault((person.id, value), key)
            parent[find(key)] = find(other)
    roots: dict[Key, int] = {}
    return {k: roots.setdefault(find(k), len(roots)) for k in list(parent)}


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _identifier_components(labelled: list[tuple[Person, CustomerRecord]]) -> dict[Key, int]:
    """Records of one person connected through a chain of shared identifiers of any kind
    (placeholders and the store's phone excluded; household phones and staff cards in)."""
    parent: dict[Key, Key] = {}

    def find(k: Key) -> Key:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    seen: dict[tuple[int, str], Key] = {}
    for person, rec in labelled:
        key = (rec.source.value, rec.external_id)
        find(key)
        for kind, value in _keys(rec).identifiers():
            other = seen.setdefault((person.id, f"{kind.value}:{value}"), key)
            parent[find(key)] = find(other)
    roots: dict[Key, int] = {}
    return {k: roots.setdefault(find(k), len(roots)) for k in list(parent)}


def _keys(rec: CustomerRecord) -> RecordKeys:
    return keys_of(rec, MatchPolicy(), frozenset({"+12125550100"}))


def miss_cause(person: Person, a: CustomerRecord, b: CustomerRecord, chained: bool) -> str:
    """Why two records of ``person`` ended on different customers, as far as their own
    values tell."""
    ka, kb = _keys(a), _keys(b)
    if ka.phone is not None and ka.phone == kb.phone:
        if "phone" in person.shared:
            return "household phone (held by >3 customers: shared)"
        verdict = names_agree(ka.name, kb.name)
        if verdict is None:
            return "same phone, a given name missing"
        if verdict is False:
            return "same phone, names disagree (typos)"
        return "same phone and name (other)"
    if ka.email_secondary is not None and ka.email_secondary == kb.email_secondary:
        return "same secondary email, unconfirmed"
    if ka.loyalty_id is not None and ka.loyalty_id == kb.loyalty_id:
        return "staff card" if "loyalty" in person.shared else "same loyalty id (other)"
    if chained:
        return "no shared value; other records of the person connect them"
    if ka.email and kb.email and (ka.phone is None or kb.phone is None):
        return "no shared value: two emails, no phone in common"
    if (ka.email is None) != (kb.email is None) and (ka.phone is None) != (kb.phone is None):
        return "no shared value: one has only an email, the other only a phone"
    return "no shared value (other)"


def _missed_pairs(
    labelled: list[tuple[Person, CustomerRecord]], owner: dict[Key, int], chain: dict[Key, int]
) -> list[tuple[str, Person, CustomerRecord, CustomerRecord]]:
    by_person: dict[int, list[CustomerRecord]] = defaultdict(list)
    persons: dict[int, Person] = {}
    for person, rec in labelled:
        by_person[person.id].append(rec)
        persons[person.id] = person
    missed = []
    for pid, recs in sorted(by_person.items()):
        keys = [(r.source.value, r.external_id) for r in recs]
        for (a, ka), (b, kb) in combinations(zip(recs, keys, strict=True), 2):
            if owner[ka] != owner[kb]:
                cause = miss_cause(persons[pid], a, b, chain[ka] == chain[kb])
                missed.append((cause, persons[pid], a, b))
    return missed


def _show(record: CustomerRecord, owner: int) -> str:
    name = f"{record.given_name} {record.family_name}"
    return f"    customer {owner:<5} {name:<24} {record.email!s:<36} {record.phone!s:<16}"


def _print_table(rows: list[tuple[str, str]], header: tuple[str, str]) -> None:
    width = max(len(k) for k, _ in [*rows, header])
    print(f"{header[0]:<{width}}  {header[1]}")
    print(f"{'-' * width}  {'-' * len(header[1])}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def labelled_records(people: int, seed: int) -> list[tuple[Person, CustomerRecord]]:
    """The population's records with their true person, in the first arrival order."""
    rnd = random.Random(seed)
    persons = population(people, rnd)
    counter = [0]
    labelled = [(p, r) for p in persons for r in records_of(p, rnd, counter)]
    rnd.shuffle(labelled)
    return labelled


async def link_all(
    engine: AsyncEngine, labelled: list[tuple[Person, CustomerRecord]]
) -> tuple[dict[Key, int], list[float]]:
    """Link every record in the given order, one transaction each: (record -> customer,
    seconds per link)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(stores).values(
                source="SQUARE", external_id="loc-1", name="Main", phone=STORE_PHONE
            )
        )
    policy = MatchPolicy()
    timings: list[float] = []
    for _person, rec in labelled:
        started = time.perf_counter()
        async with engine.begin() as conn:
            await identity.link_record(conn, rec, actor="bench", policy=policy)
        timings.append(time.perf_counter() - started)
    async with engine.connect() as conn:
        owner = {
            (r.source, r.external_id): int(r.customer_id)
            for r in await conn.execute(
                select(
                    source_records.c.source,
                    source_records.c.external_id,
                    source_records.c.customer_id,
                )
            )
        }
    return owner, timings


async def shared_phone_decisions(engine: AsyncEngine) -> dict[str, int]:
    """How many links and merges rule 7 (a shared phone + the exact full name) made."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(identity_ledger.c.action, func.count())
            .where(identity_ledger.c.rule == Rule.SHARED_PHONE_AND_EXACT_NAME.value)
            .group_by(identity_ledger.c.action)
        )
        return {str(action): int(n) for action, n in rows}


def groups(owner: dict[Key, int]) -> set[frozenset[Key]]:
    """The partition of the records into customers, independent of customer ids."""
    by_customer: dict[int, set[Key]] = defaultdict(set)
    for key, customer in owner.items():
        by_customer[customer].add(key)
    return {frozenset(keys) for keys in by_customer.values()}


def pairwise_recall(labelled: list[tuple[Person, CustomerRecord]], owner: dict[Key, int]) -> float:
    found = Counter((owner[(r.source.value, r.external_id)], p.id) for p, r in labelled)
    actual = Counter(p.id for p, _ in labelled)
    return sum(_pairs(n) for n in found.values()) / sum(_pairs(n) for n in actual.values())


def report(
    labelled: list[tuple[Person, CustomerRecord]],
    owner: dict[Key, int],
    timings: list[float],
    seed: int,
    misses: int,
    rule7: dict[str, int] | None = None,
) -> None:
    persons = list({p.id: p for p, _ in labelled}.values())
    truth = {(r.source.value, r.external_id): p for p, r in labelled}
    cells: Counter[tuple[int, int]] = Counter()
    clusters: dict[int, set[int]] = defaultdict(set)
    for key, person in truth.items():
        cluster = owner[key]
        cells[(cluster, person.id)] += 1
        clusters[cluster].add(person.id)
    true_positive = sum(_pairs(n) for n in cells.values())
    component = _evidence_components(labelled)
    linkable_cells: Counter[tuple[int, int]] = Counter()
    for key in truth:
        linkable_cells[(owner[key], component[key])] += 1
    linkable = sum(_pairs(n) for n in Counter(component.values()).values())
    linkable_found = sum(_pairs(n) for n in linkable_cells.values())
    chain = _identifier_components(labelled)
    chained_cells = Counter((owner[key], chain[key]) for key in truth)
    chained = sum(_pairs(n) for n in Counter(chain.values()).values())
    chained_found = sum(_pairs(n) for n in chained_cells.values())
    predicted = sum(_pairs(n) for n in Counter(owner[k] for k in truth).values())
    actual = sum(_pairs(n) for n in Counter(p.id for p in truth.values()).values())
    by_id = {p.id: p for p in persons}
    wrong = [ids for ids in clusters.values() if len(ids) > 1]
    through_shared = sum(1 for ids in wrong if _share(by_id, ids))
    rows = [
        ("people", f"{len(persons)}"),
        ("source records", f"{len(labelled)}"),
        ("golden customers", f"{len(clusters)}"),
        ("pairwise precision", f"{true_positive / predicted if predicted else 1.0:.4f}"),
        ("pairwise recall", f"{true_positive / actual if actual else 1.0:.4f}"),
        ("same-person pairs a chain of shared identifiers connects", f"{chained / actual:.4f}"),
        ("recall, pairs a chain of shared identifiers connects", f"{chained_found / chained:.4f}"),
        ("recall, pairs the rules' evidence connects", f"{linkable_found / linkable:.4f}"),
        ("wrong merges (clusters with >1 person)", f"{len(wrong)}"),
        ("  of which through a shared identifier", f"{through_shared}"),
        (
            "links / merges by a shared phone + exact name",
            f"{(rule7 or {}).get('link', 0)} / {(rule7 or {}).get('merge', 0)}",
        ),
        ("median link_record, ms", f"{statistics.median(timings) * 1000:.2f}"),
        ("p95 link_record, ms", f"{sorted(timings)[int(len(timings) * 0.95)] * 1000:.2f}"),
    ]
    _print_table(rows, ("metric", "value"))
    missed = _missed_pairs(labelled, owner, chain)
    causes = Counter(cause for cause, *_ in missed)
    print()
    _print_table(
        [(cause, f"{n}") for cause, n in causes.most_common()],
        (f"missed same-person pairs by cause ({len(missed)} of {actual})", "pairs"),
    )
    for cause, person, a, b in random.Random(seed).sample(missed, min(misses, len(missed))):
        print(f"\n{cause}: person {person.id} ({person.given} {person.family})")
        for rec in (a, b):
            print(_show(rec, owner[(rec.source.value, rec.external_id)]))


async def compare_orders(engines: list[AsyncEngine], people: int, seed: int, misses: int) -> None:
    """Link the population in the first arrival order and report; then again in other
    random orders (one database each), and count the record groups that differ."""
    labelled = labelled_records(people, seed)
    owner, timings = await link_all(engines[0], labelled)
    report(labelled, owner, timings, seed, misses, await shared_phone_decisions(engines[0]))
    if len(engines) < 2:
        return
    first = groups(owner)
    person = {(r.source.value, r.external_id): p for p, r in labelled}
    rows = []
    for i, engine in enumerate(engines[1:], start=1):
        reordered = list(labelled)
        random.Random(f"{seed}-order-{i}").shuffle(reordered)
        other, _ = await link_all(engine, reordered)
        differing = first - groups(other)
        rows.append(
            (f"arrival order {i + 1}: pairwise recall", f"{pairwise_recall(reordered, other):.4f}")
        )
        guarded = sum(1 for g in differing if any(person[k].shared for k in g))
        rows.append(("  customers not as in order 1", f"{len(differing)}"))
        rows.append(("    of which hold a household phone or staff card", f"{guarded}"))
    print()
    _print_table(rows, ("the same records in other arrival orders", "value"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--misses", type=int, default=0, help="print this many missed pairs")
    parser.add_argument("--orders", type=int, default=1, help="arrival orders to compare")
    args = parser.parse_args()
    with services.postgres_server() as server:
        urls = [
            services.create_database(server, prefix="gg_bench") for _ in range(max(args.orders, 1))
        ]
        try:
            for url in urls:
                migrations.upgrade(url)
            engines = [create_engine(url, pool_size=2) for url in urls]

            async def go() -> None:
                try:
                    await compare_orders(engines, args.people, args.seed, args.misses)
                finally:
                    for engine in engines:
                        await engine.dispose()

            asyncio.run(go())
        finally:
            for url in urls:
                services.drop_database(server, url)


if __name__ == "__main__":
    main()
