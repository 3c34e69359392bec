"""The DLQ topic read back: every dead letter with where it sits in the DLQ (for the audit and `dlq` commands).

A letter is the JSON object `dlq.DeadLetter.to_json` wrote; `topic`, `partition` and `offset` name its source event.
A DLQ message that is not such an object (written by hand, another program) is kept as unreadable, never dropped
silently. A letter can sit in the topic twice: a broker that wrote it and went down before answering leaves the
producer to send it again. Readers count it once, by the source event it stands for (`once`).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from caves_faust.kafka.admin import partition_count
from caves_faust.kafka.topic_log import group_less_consumer, records


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter as it sits in the DLQ topic."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    dlq_timestamp: int  # ms, when the worker wrote it
    fields: dict[str, Any]  # the letter itself; empty when unreadable

    @property
    def readable(self) -> bool:
        return bool(self.fields)

    @property
    def source(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the event it stands for."""
        f = self.fields
        if isinstance(f.get("topic"), str) and isinstance(f.get("partition"), int) and isinstance(f.get("offset"), int):
            return f["topic"], f["partition"], f["offset"]
        return None

    @property
    def topic_id(self) -> str | None:
        """Which life of its source topic (`events.received.Received`); None when the letter does not say."""
        topic_id = self.fields.get("topic_id")
        return topic_id if isinstance(topic_id, str) else None

    @property
    def error_type(self) -> str:
        return str(self.fields.get("error_type", "unreadable"))

    def payload(self) -> bytes | None:
        """The payload as received (truncated letters hold its first part only)."""
        text, encoding = self.fields.get("payload"), self.fields.get("payload_encoding")
        if text is None:
            return None
        return base64.b64decode(text) if encoding == "base64" else str(text).encode("utf-8")

    def key(self) -> bytes | None:
        text, encoding = self.fields.get("key"), self.fields.get("key_encoding")
        if text is None:
            return None
        return base64.b64decode(text) if encoding == "base64" else str(text).encode("utf-8")


def _parse(value: bytes | None) -> dict[str, Any]:
    try:
        letter = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return {}
    return letter if isinstance(letter, dict) else {}


async def read_letters(bootstrap: str, dlq_topic: str) -> AsyncIterator[StoredLetter]:
    """Every message now on the DLQ topic, partition by partition, in offset order."""
    partitions = await partition_count(bootstrap, dlq_topic)
    async with group_less_consumer(bootstrap) as consumer:
        for partition in range(partitions):
            tp = TopicPartition(dlq_topic, partition)
            async for record in records(consumer, tp):
                yield StoredLetter(dlq_topic, tp.partition, record.offset, record.timestamp, _parse(record.value))


async def once(letters: AsyncIterable[StoredLetter], repeated: Counter[tuple[str, int, int]] | None = None
               ) -> AsyncIterator[StoredLetter]:
    """Each letter once, by its source event (the first copy in DLQ order; the same coordinates in two lives of a
    topic are two events); the copies left out are counted in `repeated` (source -> copies), when given. An
    unreadable message names no source: each one is passed on."""
    seen: set[tuple[str | None, tuple[str, int, int]]] = set()
    async for letter in letters:
        source = letter.source
        if source is not None:
            if (letter.topic_id, source) in seen:
                if repeated is not None:
                    repeated[source] += 1
                continue
            seen.add((letter.topic_id, source))
        yield letter
