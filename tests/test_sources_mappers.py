"""The pure mappers: vendor JSON in, domain events out, typed errors with field paths."""

from __future__ import annotations

import contextlib
import copy
import re
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cards import luhn_valid, may_hold_card_number, scrub_json, scrub_text
from domain.events import CustomersMerged, CustomerUpserted, OrderFetchNeeded, OrderStatusObserved
from domain.model import OrderStatus
from domain.money import to_minor_units
from domain.order_status import square_status, toast_status
from domain.sources import hubspot, salesforce, square, toast
from domain.sources.common import Node, ParseError, parse_timestamp
from tests.ingest_support import (
    square_customer_event,
    square_order,
    square_thin_order_event,
    toast_order_event,
)


def test_a_square_merge_becomes_an_upsert_of_the_winner_and_a_merge() -> None:
    payload = {
        "merchant_id": "M",
        "type": "customer.created",
        "event_id": "e",
        "created_at": "2025-06-14T18:22:41Z",
        "data": {
            "type": "customer",
            "id": "N3V8",
            "object": {
                "customer": {"id": "N3V8", "given_name": "Dana", "creation_source": "MERGE"},
                "event_context": {
                    "merge": {"from_customer_ids": ["7Y4E", "Q1W2"], "to_customer_id": "N3V8"}
                },
            },
        },
    }
    upsert, merged = square.parse_event(payload).events
    assert isinstance(upsert, CustomerUpserted)
    assert merged == CustomersMerged(square.SOURCE, "N3V8", ("7Y4E", "Q1W2"))


def test_a_square_fulfillment_update_is_a_fetch_plus_an_immediate_status() -> None:
    event = square_thin_order_event(
        "o1", version=5, kind="order.fulfillment.updated", fulfillment=("RESERVED", "PREPARED")
    )
    fetch, status = square.parse_event(event).events
    assert fetch == OrderFetchNeeded(square.SOURCE, "o1", 5)
    assert isinstance(status, OrderStatusObserved)
    assert (status.status, status.version) == (OrderStatus.READY, 5)


def test_square_quantities_are_strings_and_may_be_decimal() -> None:
    order = square.parse_order(square_order("o1", quantity="1.5"))
    assert order.lines[0].quantity == Decimal("1.5")


def test_a_square_order_without_money_names_the_missing_field() -> None:
    raw = square_order("o1")
    del raw["total_money"]
    with pytest.raises(ParseError) as caught:
        square.parse_order(raw)
    assert caught.value.path == "order.total_money"


def test_a_toast_order_with_a_non_numeric_price_names_the_field() -> None:
    event = toast_order_event("o1")
    event["details"]["order"]["checks"][0]["taxAmount"] = "lots"
    with pytest.raises(ParseError) as caught:
        toast.parse_event(event)
    assert caught.value.path == "details.order.checks[0].taxAmount"


def test_hubspot_merge_and_privacy_deletion() -> None:
    deliveries = hubspot.parse_batch(
        [
            {
                "eventId": 1,
                "subscriptionType": "contact.merge",
                "objectId": 7,
                "primaryObjectId": 7,
                "mergedObjectIds": [8, 9],
                "occurredAt": 1718389362004,
            },
            {
                "eventId": 2,
                "subscriptionType": "contact.privacyDeletion",
                "objectId": 9,
                "occurredAt": 1718389362004,
            },
        ]
    )
    assert deliveries[0].events == [CustomersMerged(hubspot.SOURCE, "7", ("8", "9"))]
    assert deliveries[1].events[0].erase is True  # type: ignore[union-attr]


def test_a_salesforce_delete_with_a_master_record_is_a_merge() -> None:
    payload = {
        "ChangeEventHeader": {
            "entityName": "Contact",
            "recordIds": ["loser"],
            "changeType": "DELETE",
            "commitTimestamp": 1718389361000,
            "transactionKey": "t",
            "sequenceNumber": 1,
        },
        "MasterRecordId": "winner",
    }
    envelope = salesforce.parse_event(payload)
    assert envelope.event_id == "t:1"
    assert envelope.events[-1] == CustomersMerged(salesforce.SOURCE, "winner", ("loser",))


@pytest.mark.parametrize(
    ("state", "fulfillments", "expected"),
    [
        ("DRAFT", ["PREPARED"], OrderStatus.PLACED),
        ("OPEN", [], OrderStatus.PLACED),
        ("OPEN", ["PROPOSED"], OrderStatus.PLACED),
        ("OPEN", ["RESERVED"], OrderStatus.PREPARING),
        ("OPEN", ["PREPARED"], OrderStatus.READY),
        ("OPEN", ["CANCELED", "FAILED"], OrderStatus.CANCELED),
        ("OPEN", ["CANCELED", "PREPARED"], OrderStatus.READY),
        ("COMPLETED", ["COMPLETED"], OrderStatus.COMPLETED),
        ("CANCELED", ["PREPARED"], OrderStatus.CANCELED),
    ],
)
def test_square_status_mapping(state: str, fulfillments: list[str], expected: OrderStatus) -> None:
    assert square_status(state, fulfillments) is expected


def test_toast_status_mapping() -> None:
    def status(**overrides: object) -> OrderStatus:
        fields: dict[str, object] = {
            "voided": False,
            "deleted": False,
            "approval_status": "APPROVED",
            "check_payment_statuses": ["OPEN"],
            "selection_statuses": ["NEW"],
            "delivery_state": None,
        }
        fields.update(overrides)
        return toast_status(**fields)  # type: ignore[arg-type]

    assert status() is OrderStatus.ACCEPTED
    assert status(approval_status="NEEDS_APPROVAL") is OrderStatus.PLACED
    assert status(selection_statuses=["SENT", "NEW"]) is OrderStatus.PREPARING
    assert status(selection_statuses=["READY", "READY"]) is OrderStatus.READY
    assert status(delivery_state="PICKED_UP") is OrderStatus.OUT_FOR_DELIVERY
    assert status(check_payment_statuses=["CLOSED"]) is OrderStatus.COMPLETED
    assert status(delivery_state="DELIVERED") is OrderStatus.COMPLETED
    assert status(voided=True) is OrderStatus.CANCELED
    assert status(approval_status="NOT_APPROVED") is OrderStatus.CANCELED


@given(
    cents=st.integers(min_value=-(10**9), max_value=10**9),
    currency=st.sampled_from(["USD", "EUR", "JPY", "KWD"]),
)
def test_toast_decimal_money_round_trips_exactly_through_minor_units(
    cents: int, currency: str
) -> None:
    exponent = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}[currency]
    decimal_text = str(Decimal(cents).scaleb(-exponent))
    assert to_minor_units(float(decimal_text), currency) == cents


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_card_scrubbing_keeps_shape_and_is_idempotent(value: object) -> None:
    once = scrub_json(value)
    assert scrub_json(once) == once
    assert type(once) is type(value)


def test_card_numbers_are_tokenized_but_other_digit_runs_are_kept() -> None:
    assert luhn_valid("4111111111111111")
    text = "pan 4111-1111-1111-1111, order 1718389361512, phone 4155550123"
    scrubbed = scrub_text(text)
    assert "[card ****1111]" in scrubbed
    assert "1718389361512" in scrubbed  # 13 digits but not Luhn-valid
    assert "4155550123" in scrubbed


def test_a_uuid_is_an_identifier_never_a_card_number() -> None:
    # "86105-3213-4405-924" inside this guid is a Luhn-valid 16-digit run
    guid = "85a86105-3213-4405-924e-426a0ef9bcab"
    assert luhn_valid("8610532134405924")
    assert scrub_text(guid) == guid
    assert scrub_json({"order": {"guid": guid}}) == {"order": {"guid": guid}}
    # a card number next to a UUID is still found
    assert scrub_text(f"{guid} 4111 1111 1111 1111") == f"{guid} [card ****1111]"
    assert scrub_text(f"{guid}/4111111111111111") == f"{guid}/[card ****1111]"


@given(st.data())
def test_parsers_raise_only_parse_errors_on_arbitrary_json(data: st.DataObject) -> None:
    value = data.draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda c: (
                st.lists(c, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "event_id",
                            "type",
                            "data",
                            "object",
                            "guid",
                            "details",
                            "eventType",
                            "order",
                            "timestamp",
                            "id",
                        ]
                    ),
                    c,
                    max_size=5,
                )
            ),
            max_leaves=15,
        )
    )
    for parse in (
        square.parse_event,
        toast.parse_event,
        hubspot.parse_batch,
        salesforce.parse_event,
    ):
        with contextlib.suppress(ParseError):
            parse(value)  # type: ignore[operator]


def test_the_published_json_schema_names_every_canonical_event_type() -> None:
    import json
    from pathlib import Path

    from domain.sources import canonical

    schema = json.loads(
        (Path(__file__).parent.parent / "docs" / "canonical-events.schema.json").read_text()
    )
    assert tuple(schema["$defs"]["event"]["properties"]["type"]["enum"]) == canonical.EVENT_TYPES
    assert schema["properties"]["events"]["maxItems"] == canonical.MAX_BATCH


_ANY_13_DIGIT_RUN = re.compile(rb"[0-9](?:[ -]?[0-9]){12}")  # the pre-check's definition

# digit groups with what may sit between them: runs near 13 digits, single and double
# separators, letters and JSON punctuation
_digit_runs = st.lists(
    st.tuples(
        st.text(alphabet="0123456789", min_size=1, max_size=7),
        st.sampled_from(["", " ", "-", "  ", "--", " -", "x", '"', ",", "\\"]),
    ),
    max_size=6,
).map(lambda parts: "".join(digits + between for digits, between in parts))


@given(st.binary(max_size=80) | _digit_runs.map(str.encode))
def test_the_card_pre_check_says_yes_exactly_when_a_13_digit_run_is_there(
    serialized: bytes,
) -> None:
    assert may_hold_card_number(serialized) is (_ANY_13_DIGIT_RUN.search(serialized) is not None)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON serializers take
        | _digit_runs
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(_digit_runs | st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_the_card_pre_check_never_misses_a_card_number_in_any_string(value: object) -> None:
    serialized = orjson.dumps(value)
    held = may_hold_card_number(serialized)
    assert held is (_ANY_13_DIGIT_RUN.search(serialized) is not None)
    if not held:  # nothing for the scrubber to take
        assert scrub_json(value) == value


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "x4111111111111111y",
        "5500 0000 0000 0004",
        "4222222222222",  # 13 digits
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "6011-0009-9013-9424-009",  # 19 digits
    ],
)
def test_a_card_number_in_a_string_key_or_value_is_always_caught(text: str) -> None:
    for value in ({"note": f"paid with {text}"}, {text: 1}, [[{"a": text}]]):
        serialized = orjson.dumps(value)
        assert may_hold_card_number(serialized)
        assert scrub_json(value) != value


@pytest.mark.parametrize(
    "text", ["4111 1111 1111", "4111  1111 1111 1111", "4111 -1111-1111-1111", "2026-06-14T18"]
)
def test_digit_runs_broken_by_double_separators_are_not_candidates(text: str) -> None:
    assert not may_hold_card_number(orjson.dumps({"note": text}))


def _error(parse: Any, payload: Any) -> str:
    with pytest.raises(ParseError) as caught:
        parse(payload)
    assert str(caught.value) == (
        f"{caught.value.path}: {caught.value.message}"
        if caught.value.path
        else caught.value.message
    )
    return str(caught.value)


def _with(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    value = copy.deepcopy(value)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return value


def test_parse_errors_name_the_field_path_in_every_form() -> None:
    order = square_order("o1")
    event = toast_order_event("t1")
    toast_order = {**event["details"]["order"], "restaurantGuid": "r"}
    customer = square_customer_event()
    assert _error(square.parse_event, {"type": "x"}) == "event_id: is required"
    assert _error(square.parse_event, []) == "expected an object"
    assert (
        _error(square.parse_order, _with(order, ("line_items", 0, "total_money", "currency"), 7))
        == "order.line_items[0].total_money.currency: not an ISO 4217 currency: '7'"
    )
    assert (
        _error(
            square.parse_order, _with(order, ("line_items", 0, "total_money", "currency"), "EUR")
        )
        == "order.line_items[0].total_money: currency differs from the order's USD"
    )
    assert (
        _error(square.parse_order, _with(order, ("line_items", 0, "base_price_money"), [1]))
        == "order.line_items[0].base_price_money: expected an object"
    )
    assert (
        _error(square.parse_order, _with(order, ("line_items", 0, "quantity"), "two"))
        == "order.line_items[0].quantity: expected a number"
    )
    assert (
        _error(square.parse_order, _with(order, ("fulfillments", 0, "state"), ""))
        == "order.fulfillments[0].state: must not be empty"
    )
    assert _error(square.parse_order, _with(order, ("fulfillments",), {})) == (
        "order.fulfillments: expected an array"
    )
    assert (
        _error(square.parse_order, _with(order, ("line_items",), [[]]))
        == "order.line_items[0]: expected an object"
    )
    assert (
        _error(square.parse_order, _with(order, ("updated_at",), "June"))
        == "order.updated_at: not a timestamp: 'June'"
    )
    assert (
        _error(square.parse_order, _with(order, ("total_money", "amount"), "1.5"))
        == "order.total_money.amount: expected an integer"
    )
    assert (
        _error(square.parse_event, _with(customer, ("data", "object", "customer", "id"), None))
        == "data.object.customer.id: is required"
    )
    assert (
        _error(
            toast.parse_event,
            _with(event, ("details", "order", "checks", 0, "selections", 0, "quantity"), 0),
        )
        == "details.order.checks[0].selections[0].quantity: must be positive"
    )
    assert (
        _error(
            lambda o: toast.parse_order(o, restaurant_guid="r"),
            _with(toast_order, ("checks", 0, "payments"), [{"tipAmount": "lots"}]),
        )
        == "order.checks[0].payments[0].tipAmount: expected a number"
    )
    assert (
        _error(
            lambda o: toast.parse_order(o, restaurant_guid="r"),
            _with(toast_order, ("modifiedDate",), "soon"),
        )
        == "order.modifiedDate: not a timestamp: 'soon'"
    )
    assert _error(lambda v: parse_timestamp(v), "soon") == "not a timestamp: 'soon'"


@given(
    st.text(max_size=6),
    st.lists(st.integers(min_value=0, max_value=12) | st.text(max_size=6), max_size=8),
)
def test_a_node_path_is_its_keys_joined_as_the_error_messages_write_them(
    root: str, keys: list[int | str]
) -> None:
    # built the way the mappers walk a payload: objects by key, arrays by index
    value: Any = "leaf"
    for key in reversed(keys):
        value = [*([None] * key), value] if isinstance(key, int) else {key: value}
    node = Node(value, root)
    expected = root
    for key in keys:
        node = node.children()[key] if isinstance(key, int) else node.get(key)
        if isinstance(key, int):
            expected = f"{expected}[{key}]"
        else:
            expected = f"{expected}.{key}" if expected else key
    assert node.path == expected
    with pytest.raises(ParseError) as caught:
        node.integer()
    assert str(caught.value) == (f"{expected}: " if expected else "") + "expected an integer"
