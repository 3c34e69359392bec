"""The dead letter a replayed event came from: `dlq replay` sends a letter's payload back to the sales topic with
headers naming the letter, and the event's row carries that origin in EVENT_METADATA (`replayed_from`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from faust.types import Message

TOPIC_HEADER = "caves_faust.dlq.writer.topic"
TOPIC_ID_HEADER = "caves_faust.dlq.writer.topic_id"
PARTITION_HEADER = "caves_faust.dlq.writer.partition"
OFFSET_HEADER = "caves_faust.dlq.writer.offset"
SOURCE_HEADERS = ("caves_faust.source.topic", "caves_faust.source.partition", "caves_faust.source.offset")

@dataclass(frozen=True, order=True)
class Origin:
    """The dead letter a replayed event came from: its place in the DLQ topic (what identifies it here: in the life
    `topic_id` of the DLQ topic, since a DLQ topic deleted and created again restarts its offsets at 0), and the
    coordinates of the event it was written for (what identifies it in DLQ_EVENTS)."""

    topic: str
    partition: int
    offset: int
    source: tuple[str, int, int] | None = field(default=None, compare=False)
    topic_id: str | None = field(default=None, kw_only=True)

    def headers(self) -> list[tuple[str, bytes]]:
        named = [(TOPIC_HEADER, self.topic), (PARTITION_HEADER, str(self.partition)), (OFFSET_HEADER, str(self.offset))]
        if self.topic_id:
            named.append((TOPIC_ID_HEADER, self.topic_id))
        if self.source:
            named += zip(SOURCE_HEADERS, map(str, self.source), strict=True)
        return [(name, value.encode()) for name, value in named]

    def metadata(self) -> str:
        """The row metadata's `replayed_from` member, as JSON text to splice in (topic names need no escaping)."""
        life = "" if self.topic_id is None else f',"topic_id":"{self.topic_id}"'
        return (f',"replayed_from":{{"topic":"{self.topic}"{life},"partition":{self.partition},'
                f'"offset":{self.offset}}}')


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
    topic_id = named.get(TOPIC_ID_HEADER)
    return Origin(*letter, source=source, topic_id=topic_id.decode(errors="replace") if topic_id else None)


def replay_metadata(message: Message) -> str:
    """What a row's metadata gains when its event is a replay ('' otherwise)."""
    origin = origin_of(message.headers)
    return origin.metadata() if origin else ""
