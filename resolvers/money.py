"""``Money``: integer minor units, an ISO 4217 currency, and a display string."""

from __future__ import annotations

from functools import lru_cache

import strawberry
from babel import Locale, UnknownLocaleError

from domain.money import format_money
from resolvers.errors import UserInputError


@lru_cache(maxsize=8192)
def _formatted(amount: int, currency: str, locale: str) -> str:
    return format_money(amount, currency, locale)


@lru_cache(maxsize=256)
def known_locale(tag: str) -> str | None:
    """A Babel locale name for a BCP 47 / POSIX tag (``de-DE``, ``ja``), or None."""
    try:
        return str(Locale.parse(tag.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


@strawberry.type(description="An amount of money in the currency's minor unit (cents, yen, fils).")
class Money:
    amount: int = strawberry.field(
        description="Minor units: 1250 is $12.50 in USD, ¥1250 in JPY, 1.250 KD in KWD."
    )
    currency: str = strawberry.field(description="ISO 4217 code, e.g. USD.")
    formatted: str = strawberry.field(
        description="For display, honouring the currency's exponent, in the request's locale "
        "(the first language of Accept-Language that CLDR knows, else en-US)."
    )

    @strawberry.field(description="For display in `locale` (e.g. `de-DE`, `ja`, `fr_CH`).")
    def localized(self, locale: str) -> str:
        name = known_locale(locale[:35])
        if name is None:
            raise UserInputError(f"unknown locale: {locale[:35]!r}", argument="locale")
        return _formatted(self.amount, self.currency, name)


def money(amount: int, currency: str, locale: str) -> Money:
    """``Money`` with ``formatted`` in ``locale`` (a Babel locale name, e.g. ``en_US``)."""
    return Money(amount=amount, currency=currency, formatted=_formatted(amount, currency, locale))
