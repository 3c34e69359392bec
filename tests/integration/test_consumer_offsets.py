"""After a rebalance, a partition its group never committed is read again from its first offset (real broker).

Faust calls `seek_to_committed` after every rebalance so that records fetched but dropped when it began are read
again. The worker's consumer thread is driven here directly on a real aiokafka consumer whose positions are past
everything, as after such a drop; only the thread machinery (the call into its own event loop) is left out.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from caves_faust.faust_patches import ConsumerThread

pytestmark = pytest.mark.integration

COMMITTED, NEVER_COMMITTED, CHANGELOG = 0, 1, 2  # partitions of the sales topic, by the role they play here


def test_a_never_committed_partition_is_sought_back_to_its_first_offset(pipeline):
    pipeline.produce([b'{"n": %d}' % n for n in range(80)], keys=[b"%d" % n for n in range(80)])  # all partitions
    positions_by_aiokafka, positions_by_worker, ends = asyncio.run(_seek_back(pipeline))

    # aiokafka alone leaves a partition without a commit where it was: the dropped records are never read.
    assert positions_by_aiokafka[NEVER_COMMITTED] == ends[NEVER_COMMITTED] > 0 and ends[CHANGELOG] > 0
    assert positions_by_worker == {COMMITTED: 3, NEVER_COMMITTED: 0, CHANGELOG: ends[CHANGELOG]}


async def _seek_back(pipeline) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.stack.bootstrap, group_id=f"{pipeline.name}-seek",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(pipeline.sales_topic, p) for p in (COMMITTED, NEVER_COMMITTED, CHANGELOG)]
        consumer.assign(tps)
        await consumer.commit({tps[COMMITTED]: 3})
        ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
        thread = _thread_over(consumer)

        async def positions_after(seek: Any) -> dict[int, int]:
            await consumer.seek_to_end(*tps)  # as after records fetched, then dropped by a rebalance
            await seek(thread)
            return {tp.partition: await consumer.position(tp) for tp in tps}

        return (await positions_after(AIOKafkaConsumerThread.seek_to_committed),
                await positions_after(ConsumerThread.seek_to_committed), ends)
    finally:
        await consumer.stop()


def _thread_over(consumer: AIOKafkaConsumer) -> ConsumerThread:
    """The worker's consumer thread class around `consumer`, calling it on this loop instead of its own."""

    async def call_here(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    thread = object.__new__(ConsumerThread)
    thread._consumer = consumer
    thread.call_thread = call_here  # type: ignore[method-assign]
    thread.consumer = SimpleNamespace(_is_changelog_tp=lambda tp: tp.partition == CHANGELOG)  # type: ignore
    return thread
