"""Rules about orders that the API answers: is this order running late?

An order is **delayed** when either holds:

1. **Promise missed** — it has a ``promised_at``, that time has passed, and the order is
   still open and not yet READY (PLACED, ACCEPTED or PREPARING). A READY, OUT_FOR_DELIVERY,
   COMPLETED or CANCELED order is not delayed by this rule: the kitchen kept its promise or
   the order is over.
2. **Slow kitchen** — the store has a usual preparation time for the daypart the order was
   placed in (``stores.usual_prep_minutes``, e.g. ``{"lunch": 12}``), and preparation
   (from ``accepted_at``, else ``placed_at``, until ``ready_at``, or until now while it is
   still being prepared) took longer than that usual time plus a margin of
   ``max(5 minutes, 50 % of the usual time)``. A canceled order is never delayed.

Dayparts are by the store's local hour of ``placed_at``: breakfast 05-11, lunch 11-15,
afternoon 15-17, dinner 17-22, late 22-05.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.model import OrderStatus

MINIMUM_MARGIN = timedelta(minutes=5)
RELATIVE_MARGIN = 0.5

_BEFORE_READY = frozenset({OrderStatus.PLACED, OrderStatus.ACCEPTED, OrderStatus.PREPARING})

# (first local hour, daypart), checked from the latest start down
_DAYPARTS = ((22, "late"), (17, "dinner"), (15, "afternoon"), (11, "lunch"), (5, "breakfast"))


def daypart(local_hour: int) -> str:
    """The daypart a local hour (0-23) falls in."""
    for start, name in _DAYPARTS:
        if local_hour >= start:
            return name
    return "late"


def _local_hour(at: datetime, timezone: str) -> int:
    try:
        return at.astimezone(ZoneInfo(timezone)).hour
    except (ZoneInfoNotFoundError, ValueError):
        return at.hour


def prep_allowance(usual_minutes: float) -> timedelta:
    """How long preparation may take before it counts as delayed."""
    usual = timedelta(minutes=usual_minutes)
    return usual + max(MINIMUM_MARGIN, usual * RELATIVE_MARGIN)


def is_delayed(
    *,
    status: OrderStatus,
    placed_at: datetime,
    promised_at: datetime | None,
    accepted_at: datetime | None,
    ready_at: datetime | None,
    store_timezone: str,
    usual_prep_minutes: Mapping[str, float],
    now: datetime,
) -> bool:
    """Whether the order is running late (see the module docstring for the rule)."""
    if status is OrderStatus.CANCELED:
        return False
    if promised_at is not None and status in _BEFORE_READY and now > promised_at:
        return True
    usual = usual_prep_minutes.get(daypart(_local_hour(placed_at, store_timezone)))
    if not isinstance(usual, int | float) or usual <= 0:
        return False
    started = accepted_at or placed_at
    if ready_at is not None:
        finished = ready_at
    elif status in _BEFORE_READY:
        finished = now
    else:
        return False  # it moved on without a ready time: nothing to measure
    return finished - started > prep_allowance(usual)
