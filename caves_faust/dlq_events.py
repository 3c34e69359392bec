"""DLQ_EVENTS: the dead letters in Snowflake, one row per letter, for triage in SQL and the business dashboard.

Warehouse mode: a batch's letters are inserted in the batch's transaction, with its rows and the high-water marks'
advance past every event of the batch, valid or not: a letter's row is there exactly when its batch committed, and
a batch read again is at or below the marks, so each letter is written once, like the rows. A letter is marked
REPLAYED in the transaction that stores the event its replay sent (`dlq replay`), so it is marked exactly when that
event is stored.

Streaming mode: the letters of invalid events stream through a channel per source partition of their own, whose
offset token is the letter's source offset (`stream_row`), so each is written once like the rows. The rows
Snowflake refuses are only known once their batch committed, below letters the channel may have committed already:
they are inserted through the warehouse unless there (`missing_only`, rare). The REPLAYED mark is set once the
replay's row is committed, before the batch is acknowledged: set again, if need be, when a crash replays it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from caves_faust.dlq import DeadLetter
from caves_faust.streaming.writer import StreamRow

if TYPE_CHECKING:  # replays.py reads the warehouse, which writes this table
    from caves_faust.replays import Origin

DLQ_EVENTS_TABLE = "DLQ_EVENTS"

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {DLQ_EVENTS_TABLE} (
        ERROR_TYPE VARCHAR(64) NOT NULL,
        ERROR_MESSAGE VARCHAR,
        PAYLOAD VARCHAR,
        PAYLOAD_ENCODING VARCHAR(16),
        PAYLOAD_BYTES INTEGER,
        PAYLOAD_TRUNCATED BOOLEAN,
        SOURCE_TOPIC VARCHAR NOT NULL,
        SOURCE_PARTITION INTEGER NOT NULL,
        SOURCE_OFFSET INTEGER NOT NULL,
        SOURCE_TIMESTAMP TIMESTAMP_LTZ,
        SOURCE_KEY VARCHAR,
        SOURCE_KEY_ENCODING VARCHAR(16),
        REPLAYED BOOLEAN DEFAULT FALSE NOT NULL,
        REPLAYED_AT TIMESTAMP_LTZ,
        INGESTION_TIME TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )""",
]

# The batch's letters bound as one JSON array (each the letter as on the DLQ topic), like the rows.
INSERT_LETTERS = f"""INSERT INTO {DLQ_EVENTS_TABLE} (ERROR_TYPE, ERROR_MESSAGE, PAYLOAD, PAYLOAD_ENCODING,
        PAYLOAD_BYTES, PAYLOAD_TRUNCATED, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, SOURCE_TIMESTAMP,
        SOURCE_KEY, SOURCE_KEY_ENCODING)
    SELECT value:error_type::VARCHAR, value:error_message::VARCHAR, value:payload::VARCHAR,
           value:payload_encoding::VARCHAR, value:payload_bytes::INTEGER, value:payload_truncated::BOOLEAN,
           value:topic::VARCHAR, value:partition::INTEGER, value:offset::INTEGER,
           TO_TIMESTAMP_LTZ(ROUND(value:timestamp::NUMBER(38, 3) * 1000)::INTEGER, 3),
           value:key::VARCHAR, value:key_encoding::VARCHAR
    FROM TABLE(FLATTEN(input => PARSE_JSON(?)))"""
INSERT_MISSING_LETTERS = INSERT_LETTERS + f"""
    WHERE NOT EXISTS (SELECT 1 FROM {DLQ_EVENTS_TABLE} d WHERE d.SOURCE_TOPIC = value:topic::VARCHAR
                      AND d.SOURCE_PARTITION = value:partition::INTEGER AND d.SOURCE_OFFSET = value:offset::INTEGER)"""

# DLQ_EVENTS's columns a streamed letter fills: column -> the letter's field (`DeadLetter.fields`).
STREAMED_COLUMNS = {
    "ERROR_TYPE": "error_type", "ERROR_MESSAGE": "error_message", "PAYLOAD": "payload",
    "PAYLOAD_ENCODING": "payload_encoding", "PAYLOAD_BYTES": "payload_bytes", "PAYLOAD_TRUNCATED": "payload_truncated",
    "SOURCE_TOPIC": "topic", "SOURCE_PARTITION": "partition", "SOURCE_OFFSET": "offset", "SOURCE_KEY": "key",
    "SOURCE_KEY_ENCODING": "key_encoding",
}

# A letter is known by its source event's coordinates: one letter per invalid event.
MARK_REPLAYED = f"""UPDATE {DLQ_EVENTS_TABLE} SET REPLAYED = TRUE, REPLAYED_AT = CURRENT_TIMESTAMP()
    FROM (SELECT value:t::VARCHAR AS T, value:p::INTEGER AS P, value:o::INTEGER AS O
          FROM TABLE(FLATTEN(input => PARSE_JSON(?)))) s
    WHERE {DLQ_EVENTS_TABLE}.SOURCE_TOPIC = s.T AND {DLQ_EVENTS_TABLE}.SOURCE_PARTITION = s.P
      AND {DLQ_EVENTS_TABLE}.SOURCE_OFFSET = s.O AND NOT {DLQ_EVENTS_TABLE}.REPLAYED"""


def write(cur: Any, letters: list[str], replayed: str, missing_only: bool = False) -> None:
    """Insert the letters (`letter_rows`; with `missing_only`, those not in the table yet) and mark the letters
    replayed (`replayed_sources`): within the batch's transaction (`cur`) in warehouse mode, on their own in
    streaming mode."""
    if letters:
        array = ("[" + ",".join(letters) + "]",)
        if missing_only:  # one constant statement per execute: the SQL check reads them
            cur.execute(INSERT_MISSING_LETTERS, array)
        else:
            cur.execute(INSERT_LETTERS, array)
    if replayed:
        cur.execute(MARK_REPLAYED, (replayed,))


def stream_row(letter: DeadLetter) -> StreamRow:
    """The letter's row for Snowpipe Streaming, keyed by column name as the table's default pipe maps them."""
    fields = letter.fields()
    row = {column: fields[name] for column, name in STREAMED_COLUMNS.items()}
    if fields["timestamp"] is not None:
        row["SOURCE_TIMESTAMP"] = datetime.fromtimestamp(fields["timestamp"], timezone.utc).isoformat(
            timespec="milliseconds")
    return StreamRow(letter.partition, letter.offset, json.dumps(row, ensure_ascii=False))


def letter_rows(letters: Iterable[DeadLetter]) -> list[str]:
    """Each letter as JSON text, as it is on the DLQ topic."""
    return [letter.to_json().decode("utf-8") for letter in letters]


def replayed_sources(letters: Iterable[Origin]) -> str:
    """The source coordinates of replayed letters, as the JSON MARK_REPLAYED binds ("" for none)."""
    sources = [{"t": o.source[0], "p": o.source[1], "o": o.source[2]} for o in letters if o.source]
    return json.dumps(sources) if sources else ""
