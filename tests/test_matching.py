"""The matching decision as plain values, and its properties under hypothesis."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from domain.identity import CustomerRecord
from domain.matching import (
    Candidate,
    CreateNew,
    LinkTo,
    MatchPolicy,
    Merge,
    RecordKeys,
    Rule,
    decide,
    keys_of,
)
from domain.model import IdentifierKind, Source
from domain.normalize import PersonName, email_secondary_key

POLICY = MatchPolicy()
DANA = PersonName.of("Dana", "Ortiz")


def keys(**kw: object) -> RecordKeys:
    return RecordKeys(source="SQUARE", external_id="sq-1", **kw)  # type: ignore[arg-type]


def test_nothing_found_creates_a_new_customer() -> None:
    assert isinstance(decide(keys(email="d@x.com"), [], POLICY, {}), CreateNew)


def test_the_same_source_record_outranks_everything() -> None:
    owner = Candidate(1, owns_record=True)
    other = Candidate(2, emails=frozenset({"d@x.com"}))
    decision = decide(keys(email="d@x.com"), [other, owner], POLICY, {})
    assert isinstance(decision, Merge)
    assert decision.survivor == 1 and decision.others == (2,)
    assert decision.rule is Rule.SAME_SOURCE_RECORD


def test_email_links_without_a_name() -> None:
    decision = decide(
        keys(email="d@x.com"), [Candidate(7, emails=frozenset({"d@x.com"}))], POLICY, {}
    )
    assert decision == LinkTo(7, Rule.EMAIL, {"email": "d@x.com"})


def test_phone_needs_an_agreeing_name() -> None:
    candidate = Candidate(3, phones=frozenset({"+14155550123"}), names=frozenset({DANA}))
    agreeing = keys(phone="+14155550123", name=PersonName.of("Dana", "Ortiz"))
    unnamed = keys(phone="+14155550123")
    assert isinstance(decide(agreeing, [candidate], POLICY, {}), LinkTo)
    assert isinstance(decide(unnamed, [candidate], POLICY, {}), CreateNew)


def test_a_shared_identifier_matches_no_one() -> None:
    candidate = Candidate(3, emails=frozenset({"office@x.com"}))
    counts = {(IdentifierKind.EMAIL, "office@x.com"): 3}
    decision = decide(keys(email="office@x.com"), [candidate], POLICY, counts)
    assert isinstance(decision, CreateNew)
    assert decision.evidence["shared"] == ["email:office@x.com"]


def test_a_conflicting_loyalty_card_does_not_link() -> None:
    owner = Candidate(
        1,
        loyalty_ids=frozenset({"LC1"}),
        emails=frozenset({"ann@x.com"}),
        names=frozenset({PersonName.of("Ann", "Lee")}),
    )
    staff = keys(loyalty_id="LC1", email="raj@x.com", name=PersonName.of("Raj", "Patel"))
    assert isinstance(decide(staff, [owner], POLICY, {}), CreateNew)


def test_secondary_email_with_the_same_phone_links() -> None:
    candidate = Candidate(
        4, email_secondaries=frozenset({"danaortiz@gmail.com"}), phones=frozenset({"+14155550123"})
    )
    record = keys(
        email="dana.ortiz@gmail.com", email_secondary="danaortiz@gmail.com", phone="+14155550123"
    )
    decision = decide(record, [candidate], POLICY, {})
    assert isinstance(decision, LinkTo) and decision.rule is Rule.SECONDARY_EMAIL


def test_a_record_split_away_is_not_linked_back() -> None:
    candidate = Candidate(5, emails=frozenset({"d@x.com"}), separated_from_record=True)
    assert isinstance(decide(keys(email="d@x.com"), [candidate], POLICY, {}), CreateNew)


def test_keys_of_drops_blocked_and_invalid_values() -> None:
    record = CustomerRecord(
        source=Source.SQUARE, external_id="1", email="noemail@x.com", phone="555", loyalty_id="0000"
    )
    assert keys_of(record, POLICY).identifiers() == []


# --- properties -------------------------------------------------------------------------

EMAILS = ["a@x.com", "b@x.com", "c@x.com"]
PHONES = ["+14155550101", "+14155550102"]
NAMES = [PersonName.of("Dana", "Ortiz"), PersonName.of("Sam", "Ortiz"), PersonName()]


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    ids = draw(st.lists(st.integers(1, 50), min_size=0, max_size=6, unique=True))
    result = []
    for i in ids:
        result.append(
            Candidate(
                customer_id=i,
                emails=frozenset(draw(st.sets(st.sampled_from(EMAILS), max_size=2))),
                phones=frozenset(draw(st.sets(st.sampled_from(PHONES), max_size=2))),
                names=frozenset(draw(st.sets(st.sampled_from(NAMES), max_size=2))),
                separated_from=frozenset(draw(st.sets(st.sampled_from(ids), max_size=2)) - {i}),
            )
        )
    # separations are symmetric
    pairs = {(c.customer_id, o) for c in result for o in c.separated_from}
    return [
        Candidate(
            customer_id=c.customer_id,
            emails=c.emails,
            phones=c.phones,
            names=c.names,
            separated_from=frozenset(
                o for o in ids if (c.customer_id, o) in pairs or (o, c.customer_id) in pairs
            ),
        )
        for c in result
    ]


records = st.builds(
    keys,
    email=st.sampled_from([None, *EMAILS]),
    phone=st.sampled_from([None, *PHONES]),
    name=st.sampled_from(NAMES),
)


@given(records, candidates(), st.randoms())
def test_the_decision_does_not_depend_on_candidate_order(
    record: RecordKeys, found: list[Candidate], rnd: object
) -> None:
    shuffled = list(found)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert decide(record, found, POLICY, {}) == decide(record, shuffled, POLICY, {})


@given(records, candidates())
def test_a_merge_never_joins_customers_a_split_separated(
    record: RecordKeys, found: list[Candidate]
) -> None:
    decision = decide(record, found, POLICY, {})
    if isinstance(decision, Merge):
        group = {decision.survivor, *decision.others}
        by_id = {c.customer_id: c for c in found}
        for member in group:
            assert not (by_id[member].separated_from & group)
        assert decision.survivor == min(group)


def test_a_record_without_a_full_name_borrows_the_name_of_the_customer_its_email_found() -> None:
    by_email = Candidate(
        1, emails=frozenset({"jun@x.com"}), names=frozenset({PersonName.of("Jun", "Costa")})
    )
    by_phone = Candidate(
        2, phones=frozenset({"+16462707554"}), names=frozenset({PersonName.of("Jun", "Costa")})
    )
    household = Candidate(
        3, phones=frozenset({"+16462707554"}), names=frozenset({PersonName.of("Ana", "Costa")})
    )
    record = keys(email="jun@x.com", phone="+16462707554", name=PersonName.of(None, "Costa"))
    decision = decide(record, [household, by_phone, by_email], POLICY, {})
    assert isinstance(decision, Merge)
    assert (decision.survivor, decision.others) == (1, (2,))


def test_the_same_gmail_mailbox_links_a_record_missing_its_given_name() -> None:
    garcia = Candidate(
        6,
        emails=frozenset({"jack.garcia@gmail.com"}),
        email_secondaries=frozenset({"jackgarcia@gmail.com"}),
        names=frozenset({PersonName.of("Jack", "Garcia")}),
    )
    record = keys(
        email="jack.garcia+x@googlemail.com",
        email_secondary="jackgarcia@gmail.com",
        name=PersonName.of(None, "Garcia"),
    )
    one_holder = {(IdentifierKind.EMAIL_SECONDARY, "jackgarcia@gmail.com"): 1}
    decision = decide(record, [garcia], POLICY, one_holder)
    assert decision == LinkTo(
        6,
        Rule.SECONDARY_EMAIL_AND_FAMILY_NAME,
        {"email_secondary": "jackgarcia@gmail.com", "name": "family"},
    )
    two_holders = {(IdentifierKind.EMAIL_SECONDARY, "jackgarcia@gmail.com"): 2}
    assert isinstance(decide(record, [garcia], POLICY, two_holders), CreateNew)
    stranger = replace(record, name=PersonName.of(None, "Smith"))
    assert isinstance(decide(stranger, [garcia], POLICY, {}), CreateNew)


def test_a_family_name_alone_does_not_link_by_phone() -> None:
    """A household shares the phone and the family name: the given name must be there."""
    noah = Candidate(
        1, phones=frozenset({"+12065514951"}), names=frozenset({PersonName.of("Noah", "Larsen")})
    )
    record = keys(phone="+12065514951", name=PersonName.of(None, "Larsen"))
    decision = decide(record, [noah], POLICY, {(IdentifierKind.PHONE, "+12065514951"): 1})
    assert isinstance(decision, CreateNew)


def test_a_family_name_match_links_but_never_merges() -> None:
    by_email = Candidate(1, emails=frozenset({"ana@x.com"}))
    by_mailbox = Candidate(
        2,
        email_secondaries=frozenset({"anacosta@gmail.com"}),
        names=frozenset({PersonName.of("Ana", "Costa")}),
    )
    record = keys(
        email="ana@x.com", email_secondary="anacosta@gmail.com", name=PersonName.of(None, "Costa")
    )
    decision = decide(record, [by_mailbox, by_email], POLICY, {})
    assert isinstance(decision, LinkTo) and decision.customer_id == 1
    assert decision.evidence["refused"] == [
        {"customer_id": 2, "reason": "partial name beside another match"}
    ]


# --- arrival order ------------------------------------------------------------------------

ORDER_EMAILS = [None, "dana.ortiz@gmail.com", "danaortiz+x@gmail.com", "dana@x.com", "sam@x.com"]
ORDER_NAMES = [
    PersonName.of("Dana", "Ortiz"),
    PersonName.of("Dnaa", "Ortiz"),
    PersonName.of(None, "Ortiz"),
    PersonName.of("Sam", "Ortiz"),
    PersonName.of("Dana", "Lee"),
    PersonName(),
]


@st.composite
def arriving(draw: st.DrawFn, external_id: str) -> RecordKeys:
    email = draw(st.sampled_from(ORDER_EMAILS))
    return RecordKeys(
        source="SQUARE",
        external_id=external_id,
        email=email,
        email_secondary=email_secondary_key(email) if email else None,
        phone=draw(st.sampled_from([None, *PHONES])),
        loyalty_id=draw(st.sampled_from([None, "LC1", "LC2"])),
        name=draw(st.sampled_from(ORDER_NAMES)),
    )


def held(value: str | None) -> frozenset[str]:
    return frozenset() if value is None else frozenset({value})


def customer_of(record: RecordKeys, customer_id: int) -> Candidate:
    """The customer ``record`` created when it arrived first (what the shell would load)."""
    named = record.name.given is not None or record.name.family is not None
    return Candidate(
        customer_id,
        emails=held(record.email),
        email_secondaries=held(record.email_secondary),
        phones=held(record.phone),
        loyalty_ids=held(record.loyalty_id),
        names=frozenset({record.name} if named else set()),
    )


def links(first: RecordKeys, second: RecordKeys) -> bool:
    counts = {key: 1 for key in first.identifiers()}
    decision = decide(second, [customer_of(first, 1)], POLICY, counts)
    return isinstance(decision, LinkTo)


@given(arriving("sq-1"), arriving("sq-2"))
def test_two_records_link_whichever_arrives_first(a: RecordKeys, b: RecordKeys) -> None:
    assert links(a, b) == links(b, a)
