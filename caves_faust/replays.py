"""R dead letters, stored once: `dlq replay` sends a letter's payload back to the sales topic with headers
naming the letter; its row carries that origin in EVENT_METADATA (`replayed_from`), and the sink stores a letter's
first copy only, however often it is replayed (two operators, a replay killed and run again, overlapping filters).

Every copy of a letter goes to the letter's source partition, so all copies are written by that partition's one
owner, batch after batch, under the sink's high-water fencing: checking the warehouse for the origin just before
the write is enough. The copies not stored must not move the stock either: only the stored copy does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from faust.types import Message

from caves_faust.received import Received
from caves_faust.warehouse import Warehouse

TOPIC_HEADER = "caves_faust.dlq.topic"
PARTITION_HEADER = "caves_faust.dlq.partition"
OFFSET_HEADER = "caves_faust.dlq.offset"
SOURCE_HEADERS = ("caves_faust.source.topic", "caves_faust.source.partition", "caves_faust.source.offset")

# Where the rows of replayed letters are: only the range of the letters' DLQ offsets at hand is read.
STORED_COPIES = """SELECT EVENT_METADATA:replayed_from:partition::INTEGER,
           EVENT_METADATA:replayed_from:offset::INTEGER,
           EVENT_METADATA:partition::INTEGER, EVENT_METADATA:offset::INTEGER
    FROM RAW_EVENTS_STREAM
    WHERE EVENT_METADATA:replayed_from:topic::VARCHAR = ?
      AND EVENT_METADATA:replayed_from:offset::INTEGER BETWEEN ? AND ?"""


@dataclass(frozen=True, order=True)
class Origin:
    """The dead letter a replayed event came from: its place in the DLQ topic (what identifies it here), and the
    coordinates of the event it was written for (what identifies it in DLQ_EVENTS)."""

    topic: str
    partition: int
    offset: int
    source: tuple[str, int, int] | None = field(default=None, compare=False)

    def headers(self) -> list[tuple[str, bytes]]:
        named = [(TOPIC_HEADER, self.topic), (PARTITION_HEADER, str(self.partition)), (OFFSET_HEADER, str(self.offset))]
        if self.source:
            named += zip(SOURCE_HEADERS, map(str, self.source), strict=True)
        return [(name, value.encode()) for name, value in named]

    def metadata(self) -> str:
        """The row metadata's `replayed_from` member, as JSON text to splice in (topic names need no escaping)."""
        return f',"replayed_from":{{"topic":"{self.topic}","partition":{self.partition},"offset":{self.offset}}}'


def origin_of(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> Origin | None:
    """The letter named by a message's headers, or None for an event that is no replay."""
    if not headers:
        return None
    named = dict(headers.items() if isinstance(headers, Mapping) else headers)
    try:
        letter = named[TOPIC_HEADER].decode(), int(named[PARTITION_HEADER]), int(named[OFFSET_HEADER])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    try:
        topic, partition, offset = (named[name] for name in SOURCE_HEADERS)
        source: tuple[str, int, int] | None = topic.decode(), int(partition), int(offset)
    except (KeyError, ValueError, UnicodeDecodeError):
        source = None
    return Origin(*letter, source=source)


def replay_metadata(message: Message) -> str:
    """What a row's metadata gains when its event is a replay ('' otherwise)."""
    origin = origin_of(message.headers)
    return origin.metadata() if origin else ""


R = TypeVar("R", bound=Received)
Copies = dict[Origin, tuple[int, int]]  # letter -> (partition, offset) of the copy stored


def origins(events: Iterable[Received]) -> set[Origin]:
    """The letters these events replay."""
    return {o for e in events if (o := origin_of(e.event.message.headers))}


def stored_copies(warehouse: Warehouse, letters: set[Origin]) -> Copies:
    """Where the rows of these letters are (blocking: run it in a thread); no query for no letter."""
    found: Copies = {}
    for topic in {o.topic for o in letters}:
        offsets = [o.offset for o in letters if o.topic == topic]
        with warehouse.cursor() as cur:
            cur.execute(STORED_COPIES, (topic, min(offsets), max(offsets)))
            for letter_partition, letter_offset, partition, offset in cur.fetchall():
                origin, copy = Origin(topic, int(letter_partition), int(letter_offset)), (int(partition), int(offset))
                found[origin] = min(found.get(origin, copy), copy)
    return found


def first_copies(fresh: list[R], stored: Copies) -> list[R]:
    """The events to write: all but replays of letters already stored, or replayed earlier in this batch. `stored`
    gains the copies kept."""
    kept = []
    for event in fresh:
        origin = origin_of(event.event.message.headers)
        if origin is not None:
            if origin in stored:
                continue
            stored[origin] = (event.partition, event.offset)
        kept.append(event)
    return kept


def replayed_letters(written: Iterable[R]) -> list[Origin]:
    """The letters whose replay these written events store."""
    return [o for e in written if (o := origin_of(e.event.message.headers))]


def for_stock(events: Iterable[R], stored: Copies) -> list[R]:
    """The events that move the stock: all but the copies of replayed letters that were not the one stored."""
    return [e for e in events
            if (origin := origin_of(e.event.message.headers)) is None or stored.get(origin) == (e.partition, e.offset)]
