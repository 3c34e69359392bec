"""Replayed dead letters, stored once: `dlq replay` sends a letter's payload back to the sales topic with headers
naming the letter; its row carries that origin in EVENT_METADATA (`replayed_from`), and the sink stores a letter's
first copy only, however often it is replayed (two operators, a replay killed and run again, overlapping filters).

Every copy of a letter goes to the letter's source partition, so all copies are written by that partition's one
owner, batch after batch, under the sink's high-water fencing: checking the warehouse for the origin just before
the write is enough. The copies not stored must not move the stock either: only the stored copy does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from caves_faust.events.origin import Origin, origin_of
from caves_faust.events.received import Received
from caves_faust.snowflake.connection import Warehouse
from caves_faust.snowflake.tables import STORED_COPIES

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
            for topic_id, letter_partition, letter_offset, partition, offset in cur.fetchall():
                origin = Origin(topic, int(letter_partition), int(letter_offset), topic_id=topic_id)
                copy = int(partition), int(offset)
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
