"""Whatever a producer sends ends valid or dead-lettered: never both, never neither, never a crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caves_faust.events.letters import DeadLetter
from caves_faust.events.received import encode_bytes
from caves_faust.events.validation import InvalidEvent, validate
from caves_faust.intake.classify import classify
from caves_faust.sink.rows import warehouse_row
from tests.corpus import fake_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)

# Events shaped like real ones but with arbitrary values in the fields that matter.
near_valid = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["ORDER_CREATED", "INVENTORY_ADJUSTED", "OTHER"]) | json_values},
    optional={
        name: json_values | st.integers(-10, 10**12)
        for name in ["order_line_id", "customer_id", "product_id", "quantity", "event_id", "quantity_change",
                     "total_price", "discount", "unit_price"]
    } | {"adjustment_type": st.sampled_from(["REPLENISHMENT", "CORRECTION", "SPOILAGE", "THEFT"])},
)

payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_valid.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads)
def test_validate_answers_every_payload_with_a_result_or_an_invalid_event(payload):
    try:
        valid = validate(payload)
    except InvalidEvent as error:
        assert error.error_type and error.message
        letter = json.loads(DeadLetter(fake_event(0, 0, payload), error).to_json())
        assert letter["error_type"] == error.error_type and letter["offset"] == 0
    else:
        assert json.loads(valid.text) == json.loads(payload)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(payloads, max_size=20))
def test_every_input_of_a_batch_is_either_accepted_or_dead_lettered(batch):
    events = [fake_event(i % 3, i, p) for i, p in enumerate(batch)]
    classified = classify(events)
    accepted, letters = classified.accepted, classified.letters
    accepted_offsets = {a.offset for a in accepted}
    lettered_offsets = {letter.offset for letter in letters}
    assert accepted_offsets.isdisjoint(lettered_offsets)
    assert accepted_offsets | lettered_offsets == set(range(len(batch)))
    for a in accepted:
        assert json.loads(warehouse_row(a))["c"] == json.loads(batch[a.offset])


@settings(max_examples=200)
@given(key=st.none() | st.binary(max_size=30) | st.text(max_size=20).map(str.encode),
       timestamp=st.floats(0, 4_102_444_800, allow_nan=False), offset=st.integers(0, 2**62))
def test_a_row_is_json_holding_the_kafka_coordinates_and_key_of_its_event(key, timestamp, offset):
    payload = b'{"event_type": "INVENTORY_ADJUSTED", "event_id": "e", "product_id": 7, "quantity_change": -2, ' \
              b'"adjustment_type": "SPOILAGE"}'
    [accepted] = classify([fake_event(offset % 3, offset, payload, key, timestamp=timestamp)]).accepted
    text, encoding = encode_bytes(key)
    assert json.loads(warehouse_row(accepted)) == {
        "m": {"topic": "sales_events", "partition": offset % 3, "offset": offset, "timestamp": timestamp,
              "key": text, "key_encoding": encoding},
        "c": json.loads(payload),
    }
