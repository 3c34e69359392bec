"""Hostile input against a running worker: never a crash, never a stall, content stored verbatim, SQL never built
from values. Hypothesis generates the payloads; the worker, the broker and Snowflake are real."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import caves_faust
from tests.delivery import Sent, assert_exactly_once
from tests.integration.events import adjustment, order

pytestmark = pytest.mark.integration

SQL = "'); DROP TABLE RAW_EVENTS_STREAM; --"
# Kafka's default message.max.bytes: the largest record batch the broker accepts (record overhead included).
BROKER_MAX_BYTES = 1_048_588

# Text from every Unicode plane (the BMP, the astral planes, private use, noncharacters, controls, NUL);
# lone surrogates cannot be encoded in UTF-8, so they come as JSON escapes below instead.
any_text = st.text(st.characters(codec="utf-8"), max_size=60) | st.just(SQL)
huge_numbers = (
    st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**38, 1.7976931348623157e308, 5e-324, -0.0, 1e-7])
)
json_values = st.recursive(
    st.none() | st.booleans() | huge_numbers | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
deep_nesting = st.integers(min_value=1, max_value=5000).map(lambda depth: "[" * depth + "]" * depth)


@st.composite
def valid_with_extras(draw) -> bytes:
    """A valid event whose optional and undeclared fields are hostile."""
    n = draw(st.integers(0, 10**6))
    event = order(n, 1000 + n % 7) if draw(st.booleans()) else adjustment(n, 1000 + n % 7, draw(st.integers(1, 50)))
    for name in draw(st.lists(st.sampled_from(["product_name", "sales_channel", "warehouse", "batch_number",
                                               "event_timestamp", "category"]), max_size=3)):
        if name in event or draw(st.booleans()):
            event[name] = draw(any_text)
    event.update(draw(st.dictionaries(any_text.filter(lambda k: k not in event), json_values, max_size=4)))
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):  # deep nesting in an undeclared field, as raw JSON text
        text = text[:-1] + ', "nested": ' + draw(deep_nesting) + "}"
    return text.encode("utf-8")


invalid_payloads = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(lambda d: ("[" * d + "]" * d).encode(), st.integers(1000, 200_000))
    | st.sampled_from([
        b'{"event_type": "ORDER_CREATED", "product_id": 1e400}',
        b'{"event_type": "ORDER_CREATED", "quantity": ' + b"9" * 5000 + b"}",
        b'{"event_type": "\\ud800"}',
        SQL.encode(),
    ])
)
payloads = valid_with_extras() | invalid_payloads


def sql_in_every_field() -> list[bytes]:
    """SQL text in every field a producer controls: valid where the field takes text, invalid where it does not."""
    events = []
    for base in (order(1, 1001), adjustment(2, 1002, 6)):
        for field in base:
            events.append({**base, field: SQL})
        events.append({**base, SQL: SQL, "note": f"{SQL} %s %(x)s ? :1 $$ \\'; --"})
    return [json.dumps(event).encode() for event in events]


@pytest.fixture
def running_worker(pipeline, start_worker):
    return start_worker()


# The examples share one topic and worker (a running system), so a failure cannot be shrunk: no shrink phase.
@settings(max_examples=10, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(payloads, min_size=1, max_size=25))
@example(batch=sql_in_every_field())
def test_hostile_payloads_are_stored_or_dead_lettered_verbatim(pipeline, running_worker, batch):
    # Examples accumulate on the same topic and worker: after each one, everything sent so far is checked.
    sent = _sent_by(pipeline)
    sent.produce(pipeline, batch, keys=[SQL.encode()] * len(batch))

    assert_exactly_once(pipeline, sent, running_worker, timeout=60, refused_by_snowflake=True)
    assert running_worker.process.poll() is None


def test_messages_up_to_the_broker_limit(pipeline, start_worker):
    worker = start_worker()
    filler = BROKER_MAX_BYTES - 2000
    big_valid = {**order(1, 1001), "product_name": "é" * (filler // 2)}
    big_escaped = {**order(2, 1001), "note": "\x01" * (filler // 6)}  # every character escaped in the JSON text
    payloads = [
        json.dumps(big_valid, ensure_ascii=False).encode(),
        json.dumps(big_escaped).encode(),
        b"\x01" * filler,  # invalid, UTF-8, and each byte is 6 once escaped in the dead letter's JSON
        b"\xff" * filler,  # invalid, not UTF-8: base64 in the dead letter
        b"[" * filler,  # nested far beyond any parser's depth
    ]
    sent = Sent()
    sent.produce(pipeline, payloads)
    sent.produce(pipeline, [b"{}"], keys=[b"\x02" * (filler // 2)])  # a huge key, escaped in the dead letter

    with pytest.raises(MessageSizeTooLargeError):  # the broker's limit is the only one
        pipeline.produce([b"x" * (BROKER_MAX_BYTES + 1)])
    print(assert_exactly_once(pipeline, sent, worker, timeout=90))


def test_no_value_is_ever_formatted_into_sql():
    """Every statement the product executes is a constant (a literal, or a module constant built only from other
    constants, such as table names): values always travel as bound parameters."""
    executed = []
    package = Path(caves_faust.__file__).parent
    # The worker's modules; devstack (local services, the test harness's ad-hoc queries) never runs in the worker.
    for path in set(package.rglob("*.py")) - set((package / "devstack").rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
        loops = {node.target.id: node.iter.id for node in ast.walk(tree)
                 if isinstance(node, (ast.For, ast.comprehension))
                 and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name)}
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in (
                    "execute", "executemany", "execute_string", "execute_async"):
                statement = call.args[0]
                name = getattr(statement, "id", None)
                name = loops.get(name, name)
                where = f"{path.name}:{call.lineno}"
                assert isinstance(statement, ast.Constant) or name in constants, f"{where}: SQL from a variable"
                if name in constants:
                    for part in ast.walk(constants[name]):
                        if isinstance(part, ast.FormattedValue):
                            assert isinstance(part.value, ast.Name) and part.value.id in constants, (
                                f"{where}: {name} formats a non-constant into SQL")
                        assert not (isinstance(part, ast.BinOp) and isinstance(part.op, ast.Mod)), where
                executed.append(where)
    assert len(executed) >= 8, executed  # the check saw the warehouse's statements


def _sent_by(pipeline) -> Sent:
    if not hasattr(pipeline, "sent"):
        pipeline.sent = Sent()
    return pipeline.sent
