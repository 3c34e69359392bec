"""DLQ_EVENTS: the dead letters in Snowflake, one row per letter, for triage in SQL and the business dashboard.

A batch's letters are inserted in the batch's transaction, with its rows and the high-water marks' advance past
every event of the batch, valid or not: a letter's row is there exactly when its batch committed, and a batch read
again is at or below the marks, so each letter is written once, like the rows. A letter is marked REPLAYED in the
transaction that stores the event its replay sent (`dlq replay`), so it is marked exactly when that event is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from caves_faust.dlq import DeadLetter

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

# A letter is known by its source event's coordinates: one letter per invalid event.
MARK_REPLAYED = f"""UPDATE {DLQ_EVENTS_TABLE} SET REPLAYED = TRUE, REPLAYED_AT = CURRENT_TIMESTAMP()
    FROM (SELECT value:t::VARCHAR AS T, value:p::INTEGER AS P, value:o::INTEGER AS O
          FROM TABLE(FLATTEN(input => PARSE_JSON(?)))) s
    WHERE {DLQ_EVENTS_TABLE}.SOURCE_TOPIC = s.T AND {DLQ_EVENTS_TABLE}.SOURCE_PARTITION = s.P
      AND {DLQ_EVENTS_TABLE}.SOURCE_OFFSET = s.O AND NOT {DLQ_EVENTS_TABLE}.REPLAYED"""


def write(cur: Any, letters: list[str], replayed: str) -> None:
    """Within the batch's transaction (`cur`): insert its letters (`letter_rows`), mark the letters it replays
    (`replayed_sources`)."""
    if letters:
        cur.execute(INSERT_LETTERS, ("[" + ",".join(letters) + "]",))
    if replayed:
        cur.execute(MARK_REPLAYED, (replayed,))


def letter_rows(letters: Iterable[DeadLetter]) -> list[str]:
    """Each letter as JSON text, as it is on the DLQ topic."""
    return [letter.to_json().decode("utf-8") for letter in letters]


def replayed_sources(letters: Iterable[Origin]) -> str:
    """The source coordinates of replayed letters, as the JSON MARK_REPLAYED binds ("" for none)."""
    sources = [{"t": o.source[0], "p": o.source[1], "o": o.source[2]} for o in letters if o.source]
    return json.dumps(sources) if sources else ""
