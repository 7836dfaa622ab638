"""When is an order delayed? The rule in domain/orders.py, as sentences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.model import OrderStatus
from domain.orders import daypart, is_delayed, prep_allowance

# 12:00 in New York in March (UTC-4 after the DST change on March 8, 2026)
NOON_NY = datetime(2026, 3, 20, 16, 0, tzinfo=UTC)


def delayed(**overrides: object) -> bool:
    args: dict[str, object] = {
        "status": OrderStatus.PREPARING,
        "placed_at": NOON_NY,
        "promised_at": None,
        "accepted_at": NOON_NY,
        "ready_at": None,
        "store_timezone": "America/New_York",
        "usual_prep_minutes": {},
        "now": NOON_NY + timedelta(minutes=5),
    }
    args.update(overrides)
    return is_delayed(**args)  # type: ignore[arg-type]


def test_a_missed_promise_delays_an_order_still_being_prepared() -> None:
    assert delayed(promised_at=NOON_NY + timedelta(minutes=4))
    assert not delayed(promised_at=NOON_NY + timedelta(minutes=6))


@pytest.mark.parametrize(
    "status",
    [OrderStatus.READY, OrderStatus.OUT_FOR_DELIVERY, OrderStatus.COMPLETED, OrderStatus.CANCELED],
)
def test_a_missed_promise_does_not_delay_an_order_that_is_ready_or_over(
    status: OrderStatus,
) -> None:
    assert not delayed(status=status, promised_at=NOON_NY)


def test_preparation_longer_than_the_usual_time_plus_margin_is_delayed() -> None:
    lunch = {"lunch": 12}  # allowance: 12 + max(5, 6) = 18 minutes
    assert prep_allowance(12) == timedelta(minutes=18)
    assert not delayed(usual_prep_minutes=lunch, now=NOON_NY + timedelta(minutes=18))
    assert delayed(usual_prep_minutes=lunch, now=NOON_NY + timedelta(minutes=19))
    ready_late = NOON_NY + timedelta(minutes=25)
    assert delayed(status=OrderStatus.COMPLETED, ready_at=ready_late, usual_prep_minutes=lunch)


def test_the_margin_is_at_least_five_minutes() -> None:
    assert prep_allowance(4) == timedelta(minutes=9)


def test_the_daypart_is_the_stores_local_hour() -> None:
    # 16:00 UTC is lunch in New York but dinner in Berlin (17:00)
    only_dinner = {"dinner": 1}
    assert not delayed(usual_prep_minutes=only_dinner, now=NOON_NY + timedelta(hours=1))
    assert delayed(
        usual_prep_minutes=only_dinner,
        store_timezone="Europe/Berlin",
        now=NOON_NY + timedelta(hours=1),
    )


def test_dayparts_cover_the_clock() -> None:
    assert [daypart(h) for h in (0, 5, 11, 15, 17, 22)] == [
        "late",
        "breakfast",
        "lunch",
        "afternoon",
        "dinner",
        "late",
    ]


def test_a_canceled_order_is_never_delayed() -> None:
    assert not delayed(
        status=OrderStatus.CANCELED,
        promised_at=NOON_NY - timedelta(hours=1),
        usual_prep_minutes={"lunch": 1},
    )
