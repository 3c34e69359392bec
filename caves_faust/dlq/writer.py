"""The dead-letter queue: one JSON message per invalid input (or row Snowflake refuses), written once.

A source partition's dead letters all go to one DLQ partition. Every letter of a batch is written before the
batch's Snowflake transaction commits, and that commit moves the partition's high-water mark past every event of
the batch: so every letter at or below the mark is in the DLQ already, and the letters above it are all after
the last of those in the DLQ partition. After a restart or a rebalance the sink reads them (the "tail") back
to the first letter at or below the mark, and sends only the letters not there. The tail read stops after
TAIL_SCAN_LIMIT messages of the DLQ partition: a letter written before those would be written again.

A letter names the life of its source topic (`topic_id`): the letters of a sales topic deleted and created again
under the same name, whose offsets restart at 0, do not stand for the new one's. A letter written before topic ids
were kept (no `topic_id`) is taken for the current life.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TopicT

from caves_faust.events.letters import DeadLetter
from caves_faust.kafka.admin import partition_count
from caves_faust.observability import metrics

# How far back to read a shared DLQ partition for the letters of a source partition above its high-water mark.
TAIL_SCAN_LIMIT = 20_000
TAIL_SCAN_CHUNK = 500


class DeadLetters:
    """Writes dead letters for the partitions this worker owns, skipping those already in the DLQ."""

    def __init__(self, topic: TopicT, source_topic: str, bootstrap: str):
        self.topic = topic
        self.source_topic = source_topic
        self.bootstrap = bootstrap
        # (source topic's id, source partition) -> (the high-water mark the tail was read down to, offsets of the
        # letters above it, those found in the DLQ and those sent since).
        self._written: dict[tuple[str | None, int], tuple[int, set[int]]] = {}
        self._dlq_partitions = 0

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance (another worker may have written meanwhile) and after a failed send: re-read the tail."""
        partitions = set(partitions)
        for known in [k for k in self._written if k[1] in partitions]:
            del self._written[known]

    async def send(self, letters: list[DeadLetter], stored: Mapping[int, int]) -> int:
        """Write the letters not in the DLQ yet and wait until the broker has them all; returns how many were sent.
        `stored`: per partition, the Snowflake high-water mark the batch is written against (-1 or absent: none known,
        so the whole bounded tail is read)."""
        fresh = [letter for letter in letters if not await self._is_written(letter, stored.get(letter.partition, -1))]
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
            self._written[(letter.topic_id, letter.partition)][1].add(letter.offset)
        return len(fresh)

    async def _is_written(self, letter: DeadLetter, high_water: int) -> bool:
        if letter.offset <= high_water:
            return True  # its batch committed after writing it
        source = (letter.topic_id, letter.partition)
        known = self._written.get(source)
        if known is None or known[0] > high_water:  # not read yet, or read down to a mark this batch is below
            known = (high_water, await self._read_tail(source, high_water))
            self._written[source] = known
        return letter.offset in known[1]

    async def _partition_count(self) -> int:
        if not self._dlq_partitions:
            name = self.topic.get_topic_name()
            self._dlq_partitions = await partition_count(self.bootstrap, name)
            if not self._dlq_partitions:
                raise RuntimeError(f"DLQ topic {name!r} does not exist")
        return self._dlq_partitions

    async def _read_tail(self, source: tuple[str | None, int], high_water: int) -> set[int]:
        """The source offsets above `high_water` of the letters of `source` (topic id, partition), read from the end
        of its DLQ partition back to the first letter at or below `high_water` (or TAIL_SCAN_LIMIT messages)."""
        partition = source[1]
        tp = TopicPartition(self.topic.get_topic_name(), partition % await self._partition_count())
        above: set[int] = set()
        async with _Reader(self.bootstrap) as reader:
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            start = (await reader.beginning_offsets([tp]))[tp]
            stop = max(start, end - TAIL_SCAN_LIMIT)
            while end > stop:
                chunk_start = max(stop, end - TAIL_SCAN_CHUNK)
                offsets = await _letter_offsets(reader, tp, chunk_start, end, self.source_topic, source)
                above.update(o for o in offsets if o > high_water)
                if any(o <= high_water for o in offsets):
                    break
                end = chunk_start
        return above


class _Reader:
    """A group-less consumer used to read the DLQ tail."""

    def __init__(self, bootstrap: str):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.consumer.start()
        return self.consumer

    async def __aexit__(self, *exc: Any) -> None:
        await self.consumer.stop()


async def _letter_offsets(
    reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, source_topic: str,
    source: tuple[str | None, int],
) -> list[int]:
    """The source offsets of the letters of `source` (topic id, partition) among the DLQ messages [start, end) of
    `tp`."""
    topic_id, partition = source
    reader.seek(tp, start)
    found: list[int] = []
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
            if (letter.get("topic") == source_topic and letter.get("partition") == partition
                    and letter.get("topic_id", topic_id) == topic_id):
                found.append(int(letter["offset"]))
    return found
