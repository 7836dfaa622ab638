from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import InvalidAmount, exponent, format_money, to_major_units, to_minor_units


@pytest.mark.parametrize(("currency", "digits"), [("USD", 2), ("JPY", 0), ("KWD", 3), ("eur", 2)])
def test_exponent_comes_from_cldr(currency: str, digits: int) -> None:
    assert exponent(currency) == digits


def test_decimal_amounts_round_half_even_to_minor_units() -> None:
    assert to_minor_units("12.345", "USD") == 1234
    assert to_minor_units("12.355", "USD") == 1236
    assert to_minor_units(0.1, "USD") == 10
    assert to_minor_units(Decimal("1.2345"), "KWD") == 1234
    assert to_minor_units(500, "JPY") == 500


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", ""])
def test_non_amounts_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor_units(bad, "USD")


def test_formatting_honours_exponent_and_locale() -> None:
    assert format_money(1250, "USD") == "$12.50"
    assert format_money(1234, "JPY") == "¥1,234"
    assert format_money(12345, "KWD").endswith("12.345")
    assert format_money(1250, "EUR", "de_DE") == "12,50\xa0€"


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["USD", "JPY", "KWD"]))
def test_minor_major_round_trip(minor: int, currency: str) -> None:
    assert to_minor_units(to_major_units(minor, currency), currency) == minor
