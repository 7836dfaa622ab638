"""Money in minor units: conversion from vendors' decimal amounts, and display.

Amounts are integers in the currency's minor unit (cents for USD, yen for JPY, fils for
KWD). The exponent comes from Babel's CLDR data, never a hand-written table.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision


class InvalidAmount(ValueError):
    """An amount that is not a finite decimal number."""


@functools.lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (USD 2, JPY 0, KWD 3); CLDR's data
    does not change while the process runs, so each code is looked up once."""
    return int(get_currency_precision(currency.upper()))


def to_minor_units(amount: Decimal | int | float | str, currency: str) -> int:
    """A decimal major-unit amount (Toast's ``12.5``) → minor units, rounding half-even.

    Floats are converted through ``str`` so ``0.1`` means one tenth, not its binary
    approximation.
    """
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise InvalidAmount(f"not a decimal amount: {amount!r}") from exc
    if not value.is_finite():
        raise InvalidAmount(f"not a finite amount: {amount!r}")
    scaled = value.scaleb(exponent(currency)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(scaled)


def to_major_units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def format_money(minor: int, currency: str, locale: str = "en_US") -> str:
    """``format_money(1250, "USD") == "$12.50"``; honours the currency's exponent."""
    return str(format_currency(to_major_units(minor, currency), currency.upper(), locale=locale))
