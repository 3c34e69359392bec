"""The dead-letter queue: one JSON message per invalid input, written once even across crashes.

A source partition's dead letters all go to one DLQ partition, in offset order, so the last dead letter
of a source partition in the DLQ tells how far an earlier run got: after a restart or a rebalance the
replayed inputs at or below it are not sent again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import EventT, TopicT

from caves_faust import metrics
from caves_faust.kafka_admin import partition_count
from caves_faust.validation import InvalidEvent

log = logging.getLogger(__name__)

# Keep each dead letter well under Kafka's default 1 MB message limit, so that the DLQ write itself
# cannot fail on an oversized input; the original size is recorded. The bounds hold for the JSON text, where a
# control character takes 6 bytes: a 1 MB input of them made a 1.5 MB letter the producer refused, forever.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_KEY_BYTES = 16 * 1024
# How far back to look in a shared DLQ partition for the last dead letter of a source partition.
TAIL_SCAN_LIMIT = 20_000
TAIL_SCAN_CHUNK = 500


def encode_bytes(raw: bytes | None) -> tuple[str | None, str]:
    """(text, encoding): UTF-8 text when it is, else base64."""
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def encode_bounded(raw: bytes | None, limit: int) -> tuple[str | None, str, bool]:
    """(text, encoding, truncated): `encode_bytes` of the longest prefix that takes at most `limit` bytes in JSON."""
    kept = raw[:limit] if raw is not None else None
    while True:
        text, encoding = encode_bytes(kept)
        size = len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2
        if kept is None or size <= limit:
            return text, encoding, raw is not None and len(kept) < len(raw)
        kept = kept[:len(kept) * limit // size]


@dataclass(frozen=True)
class Received:
    """An input event and where it came from."""

    event: EventT

    @property
    def partition(self) -> int:
        return self.event.message.partition

    @property
    def offset(self) -> int:
        return self.event.message.offset


@dataclass(frozen=True)
class DeadLetter(Received):
    error: InvalidEvent

    def to_json(self) -> bytes:
        message = self.event.message
        raw: bytes | None = message.value
        payload, encoding, truncated = encode_bounded(raw, MAX_PAYLOAD_BYTES)
        key, key_encoding, key_truncated = encode_bounded(message.key, MAX_KEY_BYTES)
        return json.dumps({
            "error_type": self.error.error_type,
            "error_message": self.error.message,
            "payload": payload,
            "payload_encoding": encoding,
            "payload_bytes": len(raw) if raw is not None else 0,
            "payload_truncated": truncated,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "timestamp": message.timestamp,
            "key": key,
            "key_encoding": key_encoding,
            "key_truncated": key_truncated,
        }, ensure_ascii=False).encode("utf-8")


class DeadLetters:
    """Writes dead letters for the partitions this worker owns, skipping those an earlier run wrote."""

    def __init__(self, topic: TopicT, source_topic: str, bootstrap: str):
        self.topic = topic
        self.source_topic = source_topic
        self.bootstrap = bootstrap
        # source partition -> highest offset found in the DLQ when this worker took the partition. Not moved
        # by our own sends: a batch may dead-letter a lower offset after a higher one (Snowflake rejections).
        self._written_before: dict[int, int] = {}
        # source partition -> highest offset of the letters sent in stream order since then: a message at or
        # below it is one Faust delivered again.
        self._sent_in_order: dict[int, int] = {}
        self._dlq_partitions = 0

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance (another worker may have written meanwhile) and after a failed send: re-read the tail."""
        for partition in partitions:
            self._written_before.pop(partition, None)
            self._sent_in_order.pop(partition, None)

    async def send(self, letters: list[DeadLetter], in_order: bool = True) -> int:
        """Write the letters not written yet and wait until the broker has them all. Returns how many were sent.
        `in_order`: the letters follow the stream's offset order (not so for Snowflake's later rejections)."""
        fresh = [
            letter for letter in letters if letter.offset > await self._high_water(letter.partition)
            and not (in_order and letter.offset <= self._sent_in_order.get(letter.partition, -1))
        ]
        if not fresh:
            return 0
        dlq_partitions = await self._partition_count()
        try:
            pending = [
                await self.topic.send(
                    key=f"{letter.event.message.topic}:{letter.partition}".encode(),
                    value=letter.to_json(),
                    partition=letter.partition % dlq_partitions,
                )
                for letter in fresh
            ]
            await asyncio.gather(*pending)
        except BaseException:
            # Some may have been delivered: the DLQ tail will tell which, before the retry.
            self.forget({letter.partition for letter in fresh})
            raise
        for letter in fresh:
            metrics.dlq_messages.labels(error_type=letter.error.error_type).inc()
            if in_order and letter.offset > self._sent_in_order.get(letter.partition, -1):
                self._sent_in_order[letter.partition] = letter.offset
        return len(fresh)

    async def _partition_count(self) -> int:
        if not self._dlq_partitions:
            name = self.topic.get_topic_name()
            self._dlq_partitions = await partition_count(self.bootstrap, name)
            if not self._dlq_partitions:
                raise RuntimeError(f"DLQ topic {name!r} does not exist")
        return self._dlq_partitions

    async def _high_water(self, partition: int) -> int:
        if partition not in self._written_before:
            self._written_before[partition] = await self._read_high_water(partition)
        return self._written_before[partition]

    async def _read_high_water(self, partition: int) -> int:
        """The source offset of the last dead letter of `partition`, or -1."""
        tp = TopicPartition(self.topic.get_topic_name(), partition % await self._partition_count())
        async with _Reader(self.bootstrap) as reader:
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            start = (await reader.beginning_offsets([tp]))[tp]
            stop = max(start, end - TAIL_SCAN_LIMIT)
            while end > stop:
                chunk_start = max(stop, end - TAIL_SCAN_CHUNK)
                found = await _last_letter_of(reader, tp, chunk_start, end, self.source_topic, partition)
                if found is not None:
                    return found
                end = chunk_start
        return -1


class _Reader:
    """A group-less consumer used to read the DLQ tail."""

    def __init__(self, bootstrap: str):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.consumer.start()
        return self.consumer

    async def __aexit__(self, *exc: Any) -> None:
        await self.consumer.stop()


async def _last_letter_of(
    reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, source_topic: str, partition: int,
) -> int | None:
    reader.seek(tp, start)
    best: int | None = None
    position = start
    while position < end:
        batch = await reader.getmany(tp, timeout_ms=5000)
        records = batch.get(tp, [])
        if not records:
            break
        for record in records:
            position = record.offset + 1
            if record.offset >= end:
                break
            try:
                letter = json.loads(record.value)
            except (ValueError, TypeError):
                continue
            if letter.get("topic") == source_topic and letter.get("partition") == partition:
                best = max(best if best is not None else -1, int(letter["offset"]))
    return best
