"""The rows' formats: a valid event as a RAW_EVENTS_STREAM row (a JSON text for the warehouse's INSERT, or keyed by
column name for Snowpipe Streaming), a dead letter as a DLQ_EVENTS row, replayed letters as MARK_REPLAYED binds them.

The event's content is spliced in exactly as received (it parsed as a JSON object): it is never parsed into
Python and written again, so the stored content is the event's own text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone

from caves_faust.events.batch import Accepted
from caves_faust.events.letters import DeadLetter
from caves_faust.events.origin import Origin, replay_metadata
from caves_faust.events.received import encode_bytes
from caves_faust.sink.channels import StreamRow

_json_text = json.JSONEncoder(ensure_ascii=False).encode

# A streamed row is one NDJSON line. In valid JSON a raw CR or LF can only be whitespace between tokens (a string
# may not hold one unescaped: validation parses strictly), and U+2028/U+2029 only characters of a string, where
# their escapes mean the same: so the row keeps the event's value on one line, whatever a producer's layout.
_LINE_BREAKS = re.compile("[\r\n\u2028\u2029]")
_ON_ONE_LINE = str.maketrans({"\r": " ", "\n": " ", "\u2028": "\\u2028", "\u2029": "\\u2029"})

# DLQ_EVENTS's columns a streamed letter fills: column -> the letter's field (`DeadLetter.fields`).
STREAMED_COLUMNS = {
    "ERROR_TYPE": "error_type", "ERROR_MESSAGE": "error_message", "PAYLOAD": "payload",
    "PAYLOAD_ENCODING": "payload_encoding", "PAYLOAD_BYTES": "payload_bytes", "PAYLOAD_TRUNCATED": "payload_truncated",
    "SOURCE_TOPIC": "topic", "SOURCE_TOPIC_ID": "topic_id", "SOURCE_PARTITION": "partition",
    "SOURCE_OFFSET": "offset", "SOURCE_KEY": "key",
    "SOURCE_KEY_ENCODING": "key_encoding",
}


def warehouse_row(accepted: Accepted) -> str:
    """The row as the warehouse's INSERT reads it: {"m": metadata, "c": the content as received}."""
    return f'{{"m":{_metadata(accepted)},"c":{accepted.valid.text}}}'


def stream_row(accepted: Accepted, ingested: str | None = None) -> StreamRow:
    """The row for Snowpipe Streaming: keyed by column name, as the table's default pipe maps them, on one line.
    Every column has its value, INGESTION_TIME too (the moment the worker hands the row over): Snowflake's
    limitations page says a MATCH_BY_COLUMN_NAME pipe inserts NULL into the columns left out, not their defaults.
    `ingested`: `ingestion_time()` once for the rows handed over together (now, when not given)."""
    event = accepted.valid.event
    customer = getattr(event, "customer_id", None)
    return StreamRow(accepted.partition, accepted.offset, on_one_line(
        f'{{"EVENT_TYPE":"{event.event_type}","PRODUCT_ID":{event.product_id},'
        f'"CUSTOMER_ID":{"null" if customer is None else customer},"EVENT_METADATA":{_metadata(accepted)},'
        f'"EVENT_CONTENT":{accepted.valid.text},"INGESTION_TIME":"{ingested or ingestion_time()}"}}'))


def ingestion_time() -> str:
    """Now, as a TIMESTAMP_LTZ column reads it (ISO 8601 with its offset, milliseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def on_one_line(text: str) -> str:
    """Valid JSON text with the same value, on one line (most events are: one scan, no copy)."""
    return text.translate(_ON_ONE_LINE) if _LINE_BREAKS.search(text) else text


def _metadata(accepted: Accepted) -> str:
    """Formatted around the one part that needs JSON escaping, the key: topic names need none, Kafka allows only
    [a-zA-Z0-9._-] in them."""
    message = accepted.event.message
    key, key_encoding = encode_bytes(message.key)
    life = "" if accepted.topic_id is None else f',"topic_id":"{accepted.topic_id}"'
    return (f'{{"topic":"{message.topic}"{life},"partition":{message.partition},"offset":{message.offset},'
            f'"timestamp":{message.timestamp!r},"key":{_json_text(key)},"key_encoding":"{key_encoding}"'
            f'{replay_metadata(message)}}}')


def letter_stream_row(letter: DeadLetter, ingested: str | None = None) -> StreamRow:
    """The letter's DLQ_EVENTS row for Snowpipe Streaming, keyed by column name as the table's default pipe maps
    them, every column with its value (not replayed yet, ingested now: see `stream_row`); its offset token is the
    letter's source offset, so each is written once like the rows."""
    fields = letter.fields()
    row: dict[str, object] = {column: fields[name] for column, name in STREAMED_COLUMNS.items()}
    timestamp = fields["timestamp"]
    row["SOURCE_TIMESTAMP"] = (None if timestamp is None else
                               datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds"))
    row.update(REPLAYED=False, REPLAYED_AT=None, INGESTION_TIME=ingested or ingestion_time())
    return StreamRow(letter.partition, letter.offset, on_one_line(json.dumps(row, ensure_ascii=False)))


def letter_rows(letters: Iterable[DeadLetter]) -> list[str]:
    """Each letter as JSON text, as it is on the DLQ topic (INSERT_LETTERS binds them as one array)."""
    return [letter.to_json().decode("utf-8") for letter in letters]


def replayed_sources(letters: Iterable[Origin]) -> str:
    """The source coordinates of replayed letters, as the JSON MARK_REPLAYED binds ("" for none)."""
    sources = [{"t": o.source[0], "p": o.source[1], "o": o.source[2]} for o in letters if o.source]
    return json.dumps(sources) if sources else ""
