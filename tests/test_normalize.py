"""Match keys: plain-value rules and hypothesis properties."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from domain.normalize import (
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


def test_email_key_trims_lowercases_and_composes_unicode() -> None:
    assert email_key("  Dana.Ortiz@Example.COM ") == "dana.ortiz@example.com"
    assert email_key("Jose\u0301@example.com") == email_key("Jos\u00e9@example.com")


def test_invalid_emails_have_no_key() -> None:
    for raw in (None, "", "   ", "dana", "dana@", "@example.com", "a b@example.com"):
        assert email_key(raw) is None


def test_gmail_quirks_fold_only_into_the_secondary_key() -> None:
    key = email_key("Dana.Ortiz+pizza@GoogleMail.com")
    assert key == "dana.ortiz+pizza@googlemail.com"
    assert email_secondary_key(key) == "danaortiz@gmail.com"
    assert email_secondary_key("dana.ortiz+x@example.com") == "dana.ortiz@example.com"


def test_placeholder_emails_are_blocked() -> None:
    for raw in ("none@none.com", "noemail@gmail.com", "guest@diner.com", "NoReply@x.com"):
        key = email_key(raw)
        assert key is not None and is_blocked_email(key)
    assert not is_blocked_email("dana@example.com")


def test_phones_become_e164_with_the_stores_region() -> None:
    assert phone_key("(415) 555-0123") == "+14155550123"
    assert phone_key("+1 415.555.0123", "GB") == "+14155550123"
    assert phone_key("07911 123456", "GB") == "+447911123456"
    assert phone_key("07911 123456", "US") is None
    assert phone_key("12") is None and phone_key(None) is None


def test_placeholder_and_store_phones_are_blocked() -> None:
    assert is_blocked_phone("+15555555555")
    assert is_blocked_phone("+11234567890")
    assert is_blocked_phone("+12125550100", blocked={"+12125550100"})
    assert not is_blocked_phone("+14155550123")


def test_loyalty_ids_ignore_spacing_and_case() -> None:
    assert loyalty_key(" lc-00 12 ") == "LC0012"
    assert loyalty_key("0000") is None and loyalty_key("") is None


def test_names_agree_despite_accents_case_a_typo_or_an_initial() -> None:
    dana = PersonName.of("Dana", "Ortiz")
    assert names_agree(dana, PersonName.of("DANA", "Ortíz")) is True
    assert names_agree(dana, PersonName.of("Dnaa", "Ortiz")) is True
    assert names_agree(dana, PersonName.of("D.", "Ortiz")) is True
    assert names_agree(dana, PersonName.of(None, None, "Dana Ortiz")) is True
    assert names_agree(dana, PersonName.of("Sam", "Ortiz")) is False
    assert names_agree(PersonName.of("Elena", "Lee"), PersonName.of("Lena", "Lee")) is False
    assert names_agree(dana, PersonName.of("Dana", "Smith")) is False
    assert names_agree(dana, PersonName.of(None, "Ortiz")) is None
    assert names_agree(PersonName.of("Al", "Li"), PersonName.of("Al", "Lu")) is False


def test_one_edit_after_the_first_letter_is_a_typo_and_two_are_different_names() -> None:
    assert names_agree(PersonName.of("Olga", "Kowalski"), PersonName.of("Olag", "Kowalski"))
    assert names_agree(PersonName.of("Maria", "Silva"), PersonName.of("Mario", "Silva")) is True
    assert names_agree(PersonName.of("Noah", "Kim"), PersonName.of("Nora", "Kim")) is False
    assert names_agree(PersonName.of("Sofia", "Kim"), PersonName.of("Sophia", "Kim")) is False
    assert names_agree(PersonName.of("Jsoé", "Nagy"), PersonName.of("Joaé", "Nagy")) is False


def test_names_partly_agree_on_the_family_name_when_a_given_name_is_missing() -> None:
    ortiz = PersonName.of(None, "Ortiz")
    assert names_partly_agree(ortiz, PersonName.of("Dana", "Ortíz")) is True
    assert names_partly_agree(ortiz, PersonName.of(None, "ortiz")) is True
    assert names_partly_agree(ortiz, PersonName.of("Dana", "Smith")) is False
    assert (
        names_partly_agree(PersonName.of("Dana", "Ortiz"), PersonName.of("Dana", "Ortiz")) is False
    )
    assert names_partly_agree(PersonName.of("Dana", None), PersonName.of("Dana", "Ortiz")) is False


emails = st.emails() | st.text(max_size=30)
phones = st.text(alphabet="0123456789 +-().", max_size=20)


@given(emails)
def test_email_key_is_idempotent(raw: str) -> None:
    key = email_key(raw)
    if key is not None:
        assert email_key(key) == key
        assert email_secondary_key(email_secondary_key(key)) == email_secondary_key(key)


@given(phones, st.sampled_from(["US", "GB", "DE", "FR", "AU"]))
def test_phone_key_is_idempotent(raw: str, region: str) -> None:
    key = phone_key(raw, region)
    if key is not None:
        assert key.startswith("+")
        assert phone_key(key, region) == key
        assert phone_key(key, "US") == key


@given(st.text(max_size=20))
@example("0\x1f_")  # a separator between a character and whitespace that strip() would trim
def test_loyalty_key_is_idempotent(raw: str) -> None:
    key = loyalty_key(raw)
    if key is not None:
        assert loyalty_key(key) == key


name_parts = st.sampled_from([None, "Dana", "Dnaa", "D", "Sam", "Ortiz", "Ortíz", "Ortz", "Lee"])


@given(name_parts, name_parts, name_parts, name_parts)
def test_names_agree_is_symmetric(
    g1: str | None, f1: str | None, g2: str | None, f2: str | None
) -> None:
    a, b = PersonName.of(g1, f1), PersonName.of(g2, f2)
    assert names_agree(a, b) == names_agree(b, a)
    assert names_partly_agree(a, b) == names_partly_agree(b, a)
    if names_partly_agree(a, b):
        assert names_agree(a, b) is None
