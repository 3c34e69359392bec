"""Topics read from outside the worker's consumer group, for the audit and the `dlq` commands.

Every consumer here is group-less with auto-commit off: it never joins the worker's group, never commits, and so
can never move the worker's offsets, whatever it reads and however it stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

FETCH_TIMEOUT_MS = 5_000
# Empty fetches in a row after which a range is taken as read to its end (the log no longer holds the rest).
EMPTY_FETCHES = 3


@asynccontextmanager
async def group_less_consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def log_bounds(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
    """tp -> (first offset the log holds, end offset)."""
    starts = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    return {tp: (starts[tp], ends[tp]) for tp in tps}


async def records(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[ConsumerRecord]:
    """The records of `tp` at offsets in [start, end) (`end`: the log's end now), in order: fewer where the log
    no longer holds some (retention, compaction, transaction markers)."""
    (log_start, log_end), = (await log_bounds(consumer, [tp])).values()
    start, end = max(start, log_start), log_end if end is None else min(end, log_end)
    if start >= end:
        return
    consumer.assign([tp])
    consumer.seek(tp, start)
    empty = 0
    while await consumer.position(tp) < end and empty < EMPTY_FETCHES:
        fetched = (await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)).get(tp, [])
        empty = 0 if fetched else empty + 1
        for record in fetched:
            if record.offset >= end:
                return
            yield record
