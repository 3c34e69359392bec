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
from tests.corpus import MAX_DEPTH, Case, adjustment, order, valid_events
from tests.delivery import Sent, assert_exactly_once

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
def valid_with_extras(draw) -> Case:
    """A valid event whose optional and undeclared fields are hostile (invalid, as not_json, when nested too deep)."""
    n = draw(st.integers(0, 10**6))
    event = order(n, 1000 + n % 7) if draw(st.booleans()) else adjustment(n, 1000 + n % 7, draw(st.integers(1, 50)))
    for name in draw(st.lists(st.sampled_from(["product_name", "sales_channel", "warehouse", "batch_number",
                                               "event_timestamp", "category"]), max_size=3)):
        if name in event or draw(st.booleans()):
            event[name] = draw(any_text)
    event.update(draw(st.dictionaries(any_text.filter(lambda k: k not in event and k != "nested"), json_values,
                                      max_size=4)))
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    error_type = None
    if draw(st.booleans()):  # deep nesting in an undeclared field, as raw JSON text
        nesting = draw(deep_nesting)
        text = text[:-1] + ', "nested": ' + nesting + "}"
        error_type = "not_json" if nesting.count("[") + 1 > MAX_DEPTH else None  # the event is a level too
    return Case(text.encode("utf-8"), error_type)


def json_value_case(value: object) -> Case:
    """A JSON value that is no sales event, and why (the contract's reasons)."""
    if not isinstance(value, dict):
        error_type = "not_object"
    elif value.get("event_type") is None:
        error_type = "missing_field"
    else:
        error_type = "unknown_event_type"  # hostile text, never one of the two event types
    return Case(json.dumps(value).encode(), error_type)


invalid_payloads = (
    st.binary(max_size=200).map(lambda raw: Case(b"\xff" + raw, "not_utf8"))
    | st.text(max_size=100).map(lambda text: Case(f"x{text}".encode(), "not_json"))
    | json_values.map(json_value_case)
    | st.builds(lambda d: Case(("[" * d + "]" * d).encode(), "not_json"), st.integers(1000, 200_000))
    | st.sampled_from([
        Case(b'{"event_type": "ORDER_CREATED", "product_id": 1e400}', "missing_field"),
        Case(b'{"event_type": "ORDER_CREATED", "quantity": ' + b"9" * 5000 + b"}", "not_json"),
        Case(b'{"event_type": "\\ud800"}', "not_json"),
        Case(SQL.encode(), "not_json"),
    ])
)
payloads = valid_with_extras() | invalid_payloads

# What SQL text makes of each field of order(1, 1001) and adjustment(2, 1002, 6): where the contract wants a
# number or a fixed word the event is invalid; text fields and identifiers take it.
SQL_IN_FIELD = {"event_type": "unknown_event_type", "customer_id": "wrong_type", "product_id": "wrong_type",
                "quantity": "wrong_type", "unit_price": "wrong_type", "total_price": "wrong_type",
                "quantity_change": "wrong_type", "adjustment_type": "out_of_range"}


def sql_in_every_field() -> list[Case]:
    """SQL text in every field a producer controls: valid where the field takes text, invalid where it does not."""
    corpus = []
    for base in (order(1, 1001), adjustment(2, 1002, 6)):
        for field in base:
            corpus.append(Case(json.dumps({**base, field: SQL}).encode(), SQL_IN_FIELD.get(field)))
        corpus.append(Case(json.dumps({**base, SQL: SQL, "note": f"{SQL} %s %(x)s ? :1 $$ \\'; --"}).encode()))
    return corpus


@pytest.fixture
def running_worker(pipeline, start_worker, sink_mode):
    return start_worker(SINK_MODE=sink_mode)


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


def laid_out(event: dict, n: int) -> bytes:
    """The event as real producers lay JSON out, one way in four: pretty-printed, CRLF line ends, a leading newline
    and trailing spaces, \\u escapes; a U+2028 inside a string in each."""
    event = {**event, "note": f"ligne\u2028{n}"}
    text = [json.dumps(event, indent=2, ensure_ascii=False), json.dumps(event, indent=4).replace("\n", "\r\n"),
            "\n" + json.dumps(event, ensure_ascii=False) + "   \r\n", json.dumps(event, ensure_ascii=True)][n % 4]
    return text.encode()


def test_valid_events_laid_out_over_several_lines_are_each_one_row(pipeline, start_worker, sink_mode):
    worker = start_worker(SINK_MODE=sink_mode)
    sent = Sent()
    sent.produce(pipeline, [Case(laid_out(event, n)) for n, event in enumerate(valid_events(600))])

    assert_exactly_once(pipeline, sent, worker, timeout=120)  # every one a row with its content, none a letter


def test_messages_up_to_the_broker_limit(pipeline, start_worker):
    worker = start_worker()
    filler = BROKER_MAX_BYTES - 2000
    big_valid = {**order(1, 1001), "product_name": "é" * (filler // 2)}
    big_escaped = {**order(2, 1001), "note": "\x01" * (filler // 6)}  # every character escaped in the JSON text
    corpus = [
        Case(json.dumps(big_valid, ensure_ascii=False).encode()),
        Case(json.dumps(big_escaped).encode()),
        Case(b"\x01" * filler, "not_json"),  # UTF-8, and each byte is 6 once escaped in the dead letter's JSON
        Case(b"\xff" * filler, "not_utf8"),  # base64 in the dead letter
        Case(b"[" * filler, "not_json"),  # nested far beyond any parser's depth
    ]
    sent = Sent()
    sent.produce(pipeline, corpus)
    sent.produce(pipeline, [Case(b"{}", "missing_field")], keys=[b"\x02" * (filler // 2)])  # a huge key, escaped

    with pytest.raises(MessageSizeTooLargeError):  # the broker's limit is the only one
        pipeline.produce([b"x" * (BROKER_MAX_BYTES + 1)])
    print(assert_exactly_once(pipeline, sent, worker, timeout=90))


FORWARDED = ("prod.py", "sql")  # the dashboard's one execute, of what `read(sql, ...)` was given


def test_no_value_is_ever_formatted_into_sql():
    """Every statement the product executes is a constant (a literal, or a module constant built only from other
    constants, such as table names): values always travel as bound parameters."""
    executed = []
    package = Path(caves_faust.__file__).parent
    # The worker's modules; devstack (local services, the test harness's ad-hoc queries) never runs in the worker.
    paths = set(package.rglob("*.py")) - set((package / "devstack").rglob("*.py"))
    trees = {path: ast.parse(path.read_text()) for path in paths}
    # Each module's constants (upper-case names assigned at its top): a name imported from a module of the package is
    # one of its constants (statements live in snowflake/: tables.py, history_tables.py).
    module_constants = {
        "caves_faust." + ".".join(path.relative_to(package).with_suffix("").parts): {
            t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
        for path, tree in trees.items()}
    shared = {name: value for found in module_constants.values() for name, value in found.items()}
    for path, tree in trees.items():
        constants = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
        constants |= {alias.asname or alias.name: module_constants[node.module][alias.name] for node in tree.body
                      if isinstance(node, ast.ImportFrom) and node.module in module_constants
                      for alias in node.names if alias.name in module_constants[node.module]}
        loops = {node.target.id: node.iter.id for node in ast.walk(tree)
                 if isinstance(node, (ast.For, ast.comprehension))
                 and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name)}
        for call in ast.walk(tree):
            executes = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in (
                "execute", "executemany", "execute_string", "execute_async")
            # The dashboard's reads go through `read(sql, ...)`, which hands its `sql` to one execute: its callers'
            # statements are checked here instead, by the same rule.
            reads = isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "read" \
                and path.parent.name == "dashboard"
            if executes or reads:
                statement = call.args[0]
                if isinstance(statement, ast.Subscript):  # one of a constant mapping's statements
                    statement = statement.value
                name = getattr(statement, "id", None)
                name = loops.get(name, name)
                where = f"{path.name}:{call.lineno}"
                if (path.name, name) == FORWARDED:
                    continue
                if isinstance(statement, ast.JoinedStr):  # an f-string of constants only
                    assert all(isinstance(part, ast.Constant) or (isinstance(part, ast.FormattedValue) and isinstance(
                        part.value, ast.Name) and part.value.id in constants) for part in statement.values), where
                    executed.append(where)
                    continue
                assert isinstance(statement, ast.Constant) or name in constants, f"{where}: SQL from a variable"
                if name in constants:
                    for part in ast.walk(constants[name]):
                        if isinstance(part, ast.FormattedValue):
                            assert isinstance(part.value, ast.Name) and part.value.id in constants | shared, (
                                f"{where}: {name} formats a non-constant into SQL")
                        assert not (isinstance(part, ast.BinOp) and isinstance(part.op, ast.Mod)), where
                executed.append(where)
    assert len(executed) >= 8, executed  # the check saw the warehouse's statements


def _sent_by(pipeline) -> Sent:
    if not hasattr(pipeline, "sent"):
        pipeline.sent = Sent()
    return pipeline.sent
