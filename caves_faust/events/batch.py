"""A batch read from the sales topic, classified: each distinct event either accepted (valid, on its way to the
warehouse) or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from faust.types import EventT

from caves_faust.events.letters import DeadLetter
from caves_faust.events.received import Received
from caves_faust.events.validation import ValidEvent


@dataclass(frozen=True, slots=True)
class Accepted(Received):
    """A valid event, on its way to the warehouse."""

    valid: ValidEvent


@dataclass(frozen=True)
class Classified:
    """A batch read from the sales topic, each distinct event either accepted or a dead letter."""

    events: Sequence[EventT]
    accepted: list[Accepted]
    letters: list[DeadLetter]
    seconds: float  # how long the classification took
    topic_id: str | None = None  # the life of the sales topic it was read from (events.received.Received)
    size_bytes: int = 0  # its distinct events' bytes as received (what SINK_IN_FLIGHT_BYTES bounds)


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
