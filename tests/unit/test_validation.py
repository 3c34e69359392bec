"""Each validation rule, each kind of bad input, and what a valid event keeps."""

from __future__ import annotations

import json

import pytest

from caves_faust.events.records import InventoryAdjusted, OrderCreated
from caves_faust.events.validation import MAX_DEPTH, InvalidEvent, validate

ORDER = {
    "event_type": "ORDER_CREATED", "order_line_id": 67890, "customer_id": 42, "product_id": 1015,
    "quantity": 6, "unit_price": 18.5, "discount": 0.15, "total_price": 94.35, "category": "Blanc",
    "product_name": "Chardonnay Réserve 🥂", "sales_channel": "E-com", "bottle_size_liters": 0.75,
}
ADJUSTMENT = {
    "event_type": "INVENTORY_ADJUSTED", "event_id": "adj-7", "product_id": 1015, "quantity_change": -3,
    "adjustment_type": "SPOILAGE", "warehouse": "Bordeaux",
}


def raw(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def error_of(payload: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        validate(payload)
    return caught.value.error_type


def test_valid_order_becomes_a_typed_record_and_keeps_its_text():
    valid = validate(raw(ORDER))
    assert isinstance(valid.event, OrderCreated)
    assert (valid.event.product_id, valid.event.quantity, valid.event.order_line_id) == (1015, 6, "67890")
    assert json.loads(valid.text) == ORDER


def test_valid_adjustment_becomes_a_typed_record():
    valid = validate(raw(ADJUSTMENT))
    assert isinstance(valid.event, InventoryAdjusted)
    assert (valid.event.quantity_change, valid.event.adjustment_type) == (-3, "SPOILAGE")


def test_undeclared_fields_are_allowed_and_kept_verbatim():
    event = {**ORDER, "loyalty": {"tier": "or", "points": [1, 2, 3]}, "note": "livraison 🍷"}
    assert json.loads(validate(raw(event)).text) == event


@pytest.mark.parametrize("payload, error_type", [
    (None, "empty_payload"),
    (b"", "empty_payload"),
    (b"\xff\xfe garbage", "not_utf8"),
    (b"not json", "not_json"),
    (b'{"event_type": "ORDER_CREATED",', "not_json"),
    (b'{"quantity": NaN}', "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b"null", "not_object"),
    (b'"ORDER_CREATED"', "not_object"),
    (b"[" * 100_000 + b"]" * 100_000, "not_json"),
    (b'{"event_type": "ORDER_CREATED", "event_type": "INVENTORY_ADJUSTED"}', "duplicate_key"),
])
def test_payloads_that_are_not_json_objects(payload, error_type):
    assert error_of(payload) == error_type


@pytest.mark.parametrize("event_type", [None, "ORDER_DELETED", 7, True, "order_created"])
def test_unknown_or_missing_event_type(event_type):
    event = {**ORDER, "event_type": event_type}
    assert error_of(raw(event)) in ("unknown_event_type", "missing_field")


@pytest.mark.parametrize("base", [ORDER, ADJUSTMENT])
def test_each_required_field_missing(base):
    for name in base:
        if name in ("event_type",) or name not in (
            "order_line_id", "customer_id", "product_id", "quantity",
            "event_id", "quantity_change", "adjustment_type",
        ):
            continue
        event = {k: v for k, v in base.items() if k != name}
        assert error_of(raw(event)) == "missing_field", name


@pytest.mark.parametrize("field, value", [
    ("product_id", True), ("product_id", "1015"), ("product_id", 10.5), ("product_id", [1015]),
    ("quantity", "six"), ("quantity", 2.5), ("quantity", "5"), ("quantity", True), ("quantity", 2.0),
    ("customer_id", False), ("customer_id", {"id": 4}),
    ("order_line_id", True), ("order_line_id", ""), ("order_line_id", 1.5),
    ("unit_price", "18.50"), ("total_price", True), ("product_name", 12),
])
def test_wrong_json_types_in_orders(field, value):
    assert error_of(raw({**ORDER, field: value})) == "wrong_type"


@pytest.mark.parametrize("field, value", [
    ("quantity", 0), ("quantity", -1), ("quantity", 10**30), ("product_id", -5), ("product_id", 2**40),
    ("discount", 1.5), ("discount", -0.1), ("total_price", -3),
])
def test_values_out_of_range_in_orders(field, value):
    assert error_of(raw({**ORDER, field: value})) == "out_of_range"


@pytest.mark.parametrize("field, value, error_type", [
    ("quantity_change", 0, "out_of_range"),
    ("quantity_change", "12", "wrong_type"),
    ("quantity_change", 1.5, "wrong_type"),
    ("adjustment_type", "THEFT", "out_of_range"),
    ("adjustment_type", "replenishment", "out_of_range"),
    ("event_id", None, "missing_field"),
])
def test_adjustment_rules(field, value, error_type):
    assert error_of(raw({**ADJUSTMENT, field: value})) == error_type


def test_error_messages_name_the_field():
    with pytest.raises(InvalidEvent) as caught:
        validate(raw({**ORDER, "quantity": "six"}))
    assert "'quantity'" in caught.value.message and "integer" in caught.value.message


def test_lone_surrogates_are_invalid_but_paired_ones_are_text():
    assert error_of(b'{"event_type": "ORDER_CREATED", "note": "\\ud800"}') == "not_json"
    paired = {**ORDER, "note": "\U0001f377"}
    escaped = json.dumps(paired).encode()  # ensure_ascii: the glass of wine as a surrogate pair
    assert b"\\ud83c" in escaped
    assert json.loads(validate(escaped).text)["note"] == "\U0001f377"


@pytest.mark.parametrize("base, field", [(ORDER, f) for f in ("product_name", "category", "sales_channel",
                                                              "event_timestamp")]
                         + [(ADJUSTMENT, f) for f in ("warehouse", "batch_number", "event_timestamp")])
def test_a_blank_optional_text_is_valid_and_kept_as_received(base, field):
    # A blank optional text once reached Faust's record validation, which refused it: validate() raised a
    # ValidationError and the sink stopped the worker, at every restart, on the same event.
    payload = raw({**base, field: ""})
    valid = validate(payload)
    assert getattr(valid.event, field) is None and json.loads(valid.text)[field] == ""


def _nested(depth: int) -> bytes:
    """An order whose containers (the event itself counted) nest `depth` levels, alternating objects and arrays."""
    inner = "1"
    for level in range(depth - 1):
        inner = f'{{"k": {inner}}}' if level % 2 else f"[{inner}]"
    return raw({**ORDER, "x": None}).replace(b"null", inner.encode())


def _at_stack_depth(frames: int, call):
    return call() if frames == 0 else _at_stack_depth(frames - 1, call)


@pytest.mark.parametrize("frames", [0, 400])
def test_nesting_limit_does_not_depend_on_the_callers_stack(frames):
    # Python's parser fails where stack plus nesting reach the recursion limit: the sink and the stock agent, at
    # different stack depths, disagreed on events nested ~900 deep (one stored it, the other dead-lettered it).
    assert _at_stack_depth(frames, lambda: validate(_nested(MAX_DEPTH)))
    for depth in (MAX_DEPTH + 1, 900, 5000):
        with pytest.raises(InvalidEvent) as caught:
            _at_stack_depth(frames, lambda depth=depth: validate(_nested(depth)))
        assert caught.value.error_type == "not_json" and "nested deeper" in caught.value.message
