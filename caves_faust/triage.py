"""Triage of a batch read from the sales topic: valid events become rows for the warehouse, invalid ones dead
letters. CPU only, no I/O: the intake runs it on the next batch while the previous one is being written."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from faust.types import EventT

from caves_faust import metrics
from caves_faust.dlq import DeadLetter
from caves_faust.received import Received, encode_bytes
from caves_faust.replays import replay_metadata
from caves_faust.streaming.writer import StreamRow
from caves_faust.validation import InvalidEvent, ValidEvent, validate

_json_text = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True)
class Accepted(Received):
    """A valid event, on its way to the warehouse."""

    valid: ValidEvent

    def row(self) -> str:
        """The row as JSON text: the content is spliced in exactly as received (it parsed as a JSON object)."""
        return f'{{"m":{self._metadata()},"c":{self.valid.text}}}'

    def stream_row(self) -> StreamRow:
        """The row for Snowpipe Streaming: keyed by column name, as the table's default pipe maps them."""
        event = self.valid.event
        customer = getattr(event, "customer_id", None)
        return StreamRow(self.partition, self.offset, (
            f'{{"EVENT_TYPE":"{event.event_type}","PRODUCT_ID":{event.product_id},'
            f'"CUSTOMER_ID":{"null" if customer is None else customer},"EVENT_METADATA":{self._metadata()},'
            f'"EVENT_CONTENT":{self.valid.text}}}'))

    def _metadata(self) -> str:
        """Formatted around the one part that needs JSON escaping, the key: topic names need none, Kafka allows
        only [a-zA-Z0-9._-] in them."""
        message = self.event.message
        key, key_encoding = encode_bytes(message.key)
        return (f'{{"topic":"{message.topic}","partition":{message.partition},"offset":{message.offset},'
                f'"timestamp":{message.timestamp!r},"key":{_json_text(key)},"key_encoding":"{key_encoding}"'
                f'{replay_metadata(message)}}}')


@dataclass(frozen=True)
class Classified:
    """A batch read from the sales topic, each distinct event either accepted or a dead letter."""

    events: Sequence[EventT]
    accepted: list[Accepted]
    letters: list[DeadLetter]
    seconds: float  # how long the classification took


session_stats = metrics.SessionStats()


def classify(events: Sequence[EventT]) -> Classified:
    """Validate each distinct event of a batch; counted once per batch in the metrics and the session totals (a
    labelled counter's lookup per event was a measurable share of the event loop)."""
    started = time.perf_counter()
    accepted: list[Accepted] = []
    letters: list[DeadLetter] = []
    distinct_events = distinct(events)
    metrics.event_size.observe_many([len(e.message.value or b"") for e in distinct_events])
    for event in distinct_events:
        try:
            valid = validate(event.message.value)
        except InvalidEvent as error:
            letters.append(DeadLetter(event, error))
            continue
        accepted.append(Accepted(event, valid))
    valid_types = Counter(a.valid.event.event_type for a in accepted)
    for event_type, count in valid_types.items():
        metrics.events_consumed.labels(event_type=event_type, status="valid").inc(count)
    if letters:
        metrics.events_consumed.labels(event_type="INVALID", status="invalid").inc(len(letters))
    session_stats.count(valid_types + Counter(f"invalid:{letter.error.error_type}" for letter in letters))
    return Classified(events, accepted, letters, time.perf_counter() - started)


def distinct(events: Sequence[EventT]) -> list[EventT]:
    """The first copy of each message: after a rebalance Faust may hand a stream the message at a partition's
    committed offset twice (its read-offset check admits the offset it last delivered), in one batch or two."""
    seen: set[tuple[int, int]] = set()
    first: list[EventT] = []
    for event in events:
        coordinate = (event.message.partition, event.message.offset)
        if coordinate not in seen:
            seen.add(coordinate)
            first.append(event)
    return first
