"""One order status machine for every source.

Mapping tables (documented in docs/ingestion.md):

Square (order ``state`` first, then the most advanced fulfillment ``state``):

| Square | guestgraph |
| --- | --- |
| order CANCELED | CANCELED |
| order COMPLETED | COMPLETED |
| order DRAFT | PLACED |
| OPEN, no fulfillment / PROPOSED | PLACED |
| OPEN, fulfillment RESERVED | PREPARING |
| OPEN, fulfillment PREPARED | READY |
| OPEN, fulfillment COMPLETED (DELIVERY) | COMPLETED |
| OPEN, fulfillment COMPLETED (PICKUP/SHIPMENT) | COMPLETED |
| OPEN, every fulfillment CANCELED / FAILED | CANCELED |

Toast (first rule that matches):

| Toast | guestgraph |
| --- | --- |
| order ``voided`` or ``deleted``, or ``approvalStatus`` NOT_APPROVED | CANCELED |
| ``deliveryInfo.deliveryState`` DELIVERED | COMPLETED |
| every check CLOSED, no delivery pending | COMPLETED |
| ``deliveryInfo.deliveryState`` PICKED_UP / OUT_FOR_DELIVERY | OUT_FOR_DELIVERY |
| ``approvalStatus`` NEEDS_APPROVAL or FUTURE | PLACED |
| every live selection READY | READY |
| any selection SENT | PREPARING |
| otherwise (approved) | ACCEPTED |

The current status of an order is a *fold* over every status ever observed for it (see
``resolve_status``): forward jumps apply, a backward move or a move out of a terminal state
is recorded in history but does not change the current status. The fold is commutative
and idempotent, so any arrival order and any duplication end in the same status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.model import OrderStatus

RANK: dict[OrderStatus, int] = {s: i for i, s in enumerate(OrderStatus)}

SQUARE_FULFILLMENT: dict[str, OrderStatus] = {
    "PROPOSED": OrderStatus.PLACED,
    "RESERVED": OrderStatus.PREPARING,
    "PREPARED": OrderStatus.READY,
    "COMPLETED": OrderStatus.COMPLETED,
    "CANCELED": OrderStatus.CANCELED,
    "FAILED": OrderStatus.CANCELED,
}


def square_status(order_state: str, fulfillment_states: Sequence[str]) -> OrderStatus:
    """Normalize a Square order ``state`` plus its fulfillments' states."""
    state = order_state.upper()
    if state == "CANCELED":
        return OrderStatus.CANCELED
    if state == "COMPLETED":
        return OrderStatus.COMPLETED
    mapped = [SQUARE_FULFILLMENT.get(s.upper(), OrderStatus.PLACED) for s in fulfillment_states]
    if state == "DRAFT" or not mapped:
        return OrderStatus.PLACED
    live = [s for s in mapped if s is not OrderStatus.CANCELED]
    if not live:
        return OrderStatus.CANCELED
    return max(live, key=RANK.__getitem__)


def square_fulfillment_status(new_state: str) -> OrderStatus:
    """One Square fulfillment state on its own (a fulfillment.updated event)."""
    return SQUARE_FULFILLMENT.get(new_state.upper(), OrderStatus.PLACED)


def toast_status(
    *,
    voided: bool,
    deleted: bool,
    approval_status: str | None,
    check_payment_statuses: Sequence[str],
    selection_statuses: Sequence[str],
    delivery_state: str | None,
) -> OrderStatus:
    """Normalize a Toast order from its approval, check, selection and delivery fields."""
    approval = (approval_status or "APPROVED").upper()
    delivery = (delivery_state or "").upper()
    if voided or deleted or approval == "NOT_APPROVED":
        return OrderStatus.CANCELED
    if delivery == "DELIVERED":
        return OrderStatus.COMPLETED
    checks = [s.upper() for s in check_payment_statuses]
    delivery_pending = delivery in {"PENDING", "PICKED_UP", "OUT_FOR_DELIVERY", "IN_PROGRESS"}
    if checks and all(s == "CLOSED" for s in checks) and not delivery_pending:
        return OrderStatus.COMPLETED
    if delivery in {"PICKED_UP", "OUT_FOR_DELIVERY"}:
        return OrderStatus.OUT_FOR_DELIVERY
    if approval in {"NEEDS_APPROVAL", "FUTURE"}:
        return OrderStatus.PLACED
    selections = [s.upper() for s in selection_statuses]
    if selections and all(s == "READY" for s in selections):
        return OrderStatus.READY
    if any(s in {"SENT", "READY"} for s in selections):
        return OrderStatus.PREPARING
    return OrderStatus.ACCEPTED


@dataclass(frozen=True, order=True)
class StatusObservation:
    """One status a source reported for an order. Ordered by (version, at, status)."""

    version: int
    at: datetime
    status: OrderStatus


def _join(current: StatusObservation, new: StatusObservation) -> StatusObservation:
    cur_terminal, new_terminal = current.status.is_terminal, new.status.is_terminal
    if cur_terminal and new_terminal:
        return min(current, new)  # the first terminal state reached is final
    if cur_terminal:
        return current
    if new_terminal:
        return new
    if RANK[new.status] != RANK[current.status]:
        return new if RANK[new.status] > RANK[current.status] else current
    return min(current, new)  # same status: its first observation


def resolve_status(observations: Iterable[StatusObservation]) -> StatusObservation | None:
    """The current status given every observation, in any order and with duplicates.

    Non-terminal statuses only move forward (the furthest wins); a terminal status absorbs
    everything after it; between two terminals the earlier (by version, then time) wins.
    """
    result: StatusObservation | None = None
    for obs in observations:
        result = obs if result is None else _join(result, obs)
    return result
