"""A dead letter's DLQ_EVENTS row in streaming mode: the letter as the DLQ topic carries it, keyed by column name,
every column of the table with its value (a default pipe inserts NULL into the others, the limitations page says),
the source timestamp as ISO 8601 in UTC, the channel's offset token the letter's source offset."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from caves_faust.events.letters import DeadLetter
from caves_faust.events.validation import InvalidEvent
from caves_faust.sink.rows import letter_stream_row
from caves_faust.snowflake.tables import DLQ_EVENTS_DDL
from tests.corpus import fake_event


def letter(value: bytes, timestamp: float | None) -> DeadLetter:
    event = fake_event(5, 1234, value, key=b"\xff42", timestamp=timestamp)
    return DeadLetter(event, InvalidEvent("missing_field", "no product_id"))


def test_a_streamed_letter_fills_every_column_of_dlq_events_from_the_letter():
    before = datetime.now(timezone.utc)
    row = letter_stream_row(letter('{"event_type": "ORDER_CREATED", "vin": "Chablis"}'.encode(), 1764590400.25))
    after = datetime.now(timezone.utc)

    assert (row.partition, row.offset) == (5, 1234)
    values = json.loads(row.line)
    ingested = datetime.fromisoformat(values.pop("INGESTION_TIME"))
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= ingested <= after
    assert values == {
        "ERROR_TYPE": "missing_field", "ERROR_MESSAGE": "no product_id",
        "PAYLOAD": '{"event_type": "ORDER_CREATED", "vin": "Chablis"}', "PAYLOAD_ENCODING": "utf-8",
        "PAYLOAD_BYTES": 49, "PAYLOAD_TRUNCATED": False, "SOURCE_TOPIC": "sales_events", "SOURCE_TOPIC_ID": None,
        "SOURCE_PARTITION": 5,
        "SOURCE_OFFSET": 1234, "SOURCE_TIMESTAMP": "2025-12-01T12:00:00.250+00:00", "SOURCE_KEY": "/zQy",
        "SOURCE_KEY_ENCODING": "base64", "REPLAYED": False, "REPLAYED_AT": None,
    }
    columns = set(re.findall(r"^\s+([A-Z_]+) ", DLQ_EVENTS_DDL, re.MULTILINE))
    assert set(json.loads(row.line)) == columns


def test_a_letter_without_timestamp_has_a_null_source_timestamp():
    assert json.loads(letter_stream_row(letter(b"\x00", None)).line)["SOURCE_TIMESTAMP"] is None
