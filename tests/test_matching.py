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
from domain.normalize import PersonName, email_secondary_key, names_agree

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


# --- a shared (household) phone and the exact full name (rule 7) --------------------------

HOME = "+16466143051"


def holder(customer_id: int, given: str | None, family: str, **kw: object) -> Candidate:
    return Candidate(
        customer_id,
        phones=frozenset({HOME}),
        names=frozenset({PersonName.of(given, family)}),
        **kw,  # type: ignore[arg-type]
    )


def household_counts(n: int) -> dict[tuple[IdentifierKind, str], int]:
    return {(IdentifierKind.PHONE, HOME): n}


HASSANS = [holder(1, "Clara", "Hassan"), holder(2, "Jun", "Hassan"), holder(3, "Omar", "Hassan")]
HASSANS.append(holder(4, "Ama", "Hassan"))


def test_a_shared_phone_links_the_one_holder_with_the_exact_full_name() -> None:
    record = keys(phone=HOME, name=PersonName.of("CLARA", "hassan"))
    decision = decide(record, HASSANS, POLICY, household_counts(4))
    assert isinstance(decision, LinkTo)
    assert (decision.customer_id, decision.rule) == (1, Rule.SHARED_PHONE_AND_EXACT_NAME)
    assert decision.evidence["phone"] == HOME and decision.evidence["phone_holders"] == 4
    assert decision.evidence["name"] == "exact"
    # the other holders stay refused, with the reason
    assert {r["customer_id"] for r in decision.evidence["refused"]} == {2, 3, 4}
    assert decision.evidence["shared"] == [f"phone:{HOME}"]


def test_a_shared_phone_alone_or_with_a_near_name_matches_no_one() -> None:
    for name in [
        PersonName(),
        PersonName.of(None, "Hassan"),  # a given name missing: any of the household
        PersonName.of("Claar", "Hassan"),  # a typo: rule 4 would forgive it, rule 7 does not
        PersonName.of("C", "Hassan"),  # an initial
    ]:
        decision = decide(keys(phone=HOME, name=name), HASSANS, POLICY, household_counts(4))
        assert isinstance(decision, CreateNew), name


def test_two_holders_with_the_same_name_are_ambiguous() -> None:
    """Jr. and Sr.: the same full name twice on one phone links neither."""
    senior = holder(5, "Clara", "Hassan")
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"))
    decision = decide(record, [*HASSANS, senior], POLICY, household_counts(5))
    assert isinstance(decision, CreateNew)
    assert {
        r["customer_id"]
        for r in decision.evidence["refused"]
        if r["reason"] == "name not unique on phone"
    } == {1, 5}


def test_a_holder_whose_name_agrees_with_a_typo_makes_it_ambiguous() -> None:
    ivana = holder(5, "Ivana", "Hassan")
    ivan = holder(6, "Ivan", "Hassan")
    record = keys(phone=HOME, name=PersonName.of("Ivan", "Hassan"))
    assert isinstance(
        decide(record, [*HASSANS, ivana, ivan], POLICY, household_counts(6)), CreateNew
    )
    alone = decide(record, [*HASSANS, ivan], POLICY, household_counts(5))
    assert isinstance(alone, LinkTo) and alone.customer_id == 6


def test_a_different_email_or_loyalty_id_refuses_the_shared_phone() -> None:
    clara = holder(1, "Clara", "Hassan", emails=frozenset({"clara@x.com"}))
    others = [clara, *HASSANS[1:]]
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"), email="junior@x.com")
    decision = decide(record, others, POLICY, household_counts(4))
    assert isinstance(decision, CreateNew)
    assert {"customer_id": 1, "key": "phone", "reason": "keys differ"} in decision.evidence[
        "refused"
    ]
    carded = [holder(1, "Clara", "Hassan", loyalty_ids=frozenset({"LC1"})), *HASSANS[1:]]
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"), loyalty_id="LC2")
    assert isinstance(decide(record, carded, POLICY, household_counts(4)), CreateNew)
    # an email on one side only is no conflict
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"))
    assert isinstance(decide(record, others, POLICY, household_counts(4)), LinkTo)


def test_the_shared_phone_rule_needs_every_holder_in_view_and_a_small_group() -> None:
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"))
    # five holders counted, four in view: the fifth could be another Clara Hassan
    assert isinstance(decide(record, HASSANS, POLICY, household_counts(5)), CreateNew)
    small = MatchPolicy(shared_phone_name_max_customers=3)
    assert isinstance(decide(record, HASSANS, small, household_counts(4)), CreateNew)
    off = MatchPolicy(shared_phone_name_max_customers=0)
    assert isinstance(decide(record, HASSANS, off, household_counts(4)), CreateNew)


def test_a_holder_with_a_disagreeing_name_is_not_linked() -> None:
    mixed = Candidate(
        1,
        phones=frozenset({HOME}),
        names=frozenset({PersonName.of("Clara", "Hassan"), PersonName.of("Tariq", "Hassan")}),
    )
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"))
    assert isinstance(decide(record, [mixed, *HASSANS[1:]], POLICY, household_counts(4)), CreateNew)


def test_the_shared_phone_rule_merges_the_customer_an_email_found() -> None:
    by_email = Candidate(
        9, emails=frozenset({"clara@x.com"}), names=frozenset({PersonName.of("Clara", "Hassan")})
    )
    record = keys(phone=HOME, name=PersonName.of("Clara", "Hassan"), email="clara@x.com")
    decision = decide(record, [*HASSANS, by_email], POLICY, household_counts(4))
    assert isinstance(decision, Merge)
    assert (decision.survivor, decision.others, decision.rule) == (1, (9,), Rule.EMAIL)
    assert [m.rule for m in decision.matches] == [Rule.SHARED_PHONE_AND_EXACT_NAME, Rule.EMAIL]


HOUSEHOLD_NAMES = [
    PersonName.of("Clara", "Hassan"),
    PersonName.of("Claar", "Hassan"),
    PersonName.of("Jun", "Hassan"),
    PersonName.of(None, "Hassan"),
    PersonName.of("Ivan", "Hassan"),
    PersonName.of("Ivana", "Hassan"),
]


@st.composite
def households(draw: st.DrawFn) -> list[Candidate]:
    size = draw(st.integers(POLICY.phone_max_customers + 1, 8))  # the phone is shared
    return [
        Candidate(
            i,
            phones=frozenset({HOME}),
            names=frozenset(draw(st.sets(st.sampled_from(HOUSEHOLD_NAMES), max_size=2))),
        )
        for i in range(1, size + 1)
    ]


@given(households(), st.sampled_from(HOUSEHOLD_NAMES), st.integers(0, 3))
def test_a_shared_phone_never_merges_a_household_and_links_only_an_unambiguous_name(
    members: list[Candidate], name: PersonName, unseen: int
) -> None:
    """Customers holding only a shared phone are never merged by it; a record links to one of
    them only when that one holds its exact name and no other holder's name agrees, and never
    while a holder is out of view."""
    record = keys(phone=HOME, name=name)
    counts = household_counts(len(members) + unseen)
    decision = decide(record, members, POLICY, counts)
    assert decide(record, members[::-1], POLICY, counts) == decision
    assert not isinstance(decision, Merge)
    if isinstance(decision, LinkTo):
        assert unseen == 0
        assert decision.rule is Rule.SHARED_PHONE_AND_EXACT_NAME
        linked = next(c for c in members if c.customer_id == decision.customer_id)
        assert name in linked.names
        others = [c for c in members if c is not linked]
        assert all(names_agree(name, n) is not True for c in others for n in c.names)
