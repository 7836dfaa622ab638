"""Survivorship: which source record's values the golden customer shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.identity import RecordFacts, golden_profile
from domain.model import Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def facts(rid: int, source: Source, minutes: int, **kw: object) -> RecordFacts:
    return RecordFacts(rid, source, T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def test_a_crm_name_wins_over_a_newer_pos_name() -> None:
    profile = golden_profile(
        [
            facts(1, Source.HUBSPOT, 0, given_name="Dana", family_name="Ortiz"),
            facts(2, Source.SQUARE, 9, given_name="D", family_name="O"),
        ]
    )
    assert (profile.given_name, profile.display_name) == ("Dana", "Dana Ortiz")
    assert profile.chosen_from["name"] == 1


def test_a_verified_email_wins_over_a_newer_unverified_one() -> None:
    profile = golden_profile(
        [
            facts(1, Source.TOAST, 0, email="A@x.com", email_key="a@x.com", email_verified=True),
            facts(2, Source.SQUARE, 9, email="b@x.com", email_key="b@x.com"),
            facts(3, Source.SQUARE, 5, phone_key="+14155550123"),
            facts(4, Source.TOAST, 7, phone_key="+14155550199"),
        ]
    )
    assert (profile.email, profile.email_normalized) == ("A@x.com", "a@x.com")
    assert profile.phone == "+14155550199"


def test_deleted_records_count_only_when_nothing_else_is_left() -> None:
    live = facts(1, Source.SQUARE, 0, given_name="Ana")
    gone = facts(2, Source.HUBSPOT, 9, given_name="Old", deleted=True)
    assert golden_profile([live, gone]).given_name == "Ana"
    assert golden_profile([gone]).given_name == "Old"
    assert golden_profile([]).display_name is None
