"""The rows' formats: a streamed row is one NDJSON line holding the event's value, however a producer laid the
event out; the warehouse's row keeps the text as received."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from caves_faust.events.letters import DeadLetter
from caves_faust.events.validation import InvalidEvent
from caves_faust.intake.classify import classify
from caves_faust.sink.rows import letter_stream_row, stream_row, warehouse_row
from caves_faust.snowflake.tables import DDL
from tests.corpus import fake_event, order

EVENT = {**order(7, 1015), "product_name": "Crémant\u2028de Loire \u2029 \"brut\"", "note": "a\nb\tc"}
# As real producers write JSON: pretty-printed, CRLF line ends, a leading newline and trailing spaces, \u escapes.
LAYOUTS = {
    "indented": json.dumps(EVENT, indent=2, ensure_ascii=False),
    "crlf": json.dumps(EVENT, indent=4).replace("\n", "\r\n"),
    "padded": "\n" + json.dumps(EVENT, ensure_ascii=False) + "   \r\n",
    "escaped": json.dumps(EVENT, ensure_ascii=True, separators=(", ", " : ")),
}
BREAKS = ("\r", "\n", "\u2028", "\u2029")


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_a_streamed_row_is_one_line_with_the_event_s_value(text):
    batch = classify([fake_event(3, 41, text.encode(), key="clé\u2028".encode())])
    assert not batch.letters, batch.letters

    line = stream_row(batch.accepted[0]).line

    assert not any(b in line for b in BREAKS), repr(line)
    row = json.loads(line)
    assert row["EVENT_CONTENT"] == EVENT
    assert (row["EVENT_METADATA"]["partition"], row["EVENT_METADATA"]["offset"]) == (3, 41)
    assert row["EVENT_METADATA"]["key"] == "clé\u2028"


def test_a_streamed_row_has_a_value_for_every_column_of_the_table_ingestion_time_included():
    # The limitations page: a MATCH_BY_COLUMN_NAME pipe inserts NULL into the columns a row leaves out, not their
    # defaults; so the row leaves none out.
    before = datetime.now(timezone.utc).replace(microsecond=0)
    row = json.loads(stream_row(classify([fake_event(3, 41, json.dumps(EVENT).encode())]).accepted[0]).line)

    assert set(row) == set(re.findall(r"^\s+([A-Z_]+) ", DDL[0], re.MULTILINE))
    assert before <= datetime.fromisoformat(row["INGESTION_TIME"]) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_warehouse_row_keeps_the_text_as_received(text):
    accepted = classify([fake_event(3, 41, text.encode())]).accepted[0]

    row = warehouse_row(accepted)

    assert row.endswith(f',"c":{text}}}') and json.loads(row)["c"] == EVENT


def test_a_streamed_letter_is_one_line_with_its_payload():
    payload = "not\u2028json\r\n".encode()
    letter = DeadLetter(fake_event(3, 42, payload), InvalidEvent("not_json", "Expecting value"))

    line = letter_stream_row(letter).line

    assert not any(b in line for b in BREAKS), repr(line)
    assert json.loads(line)["PAYLOAD"] == payload.decode()
