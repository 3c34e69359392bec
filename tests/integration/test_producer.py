"""The worker's producer (caves_faust.faust_patches.Producer) against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP

from caves_faust.faust_patches import App
from caves_faust.kafka.admin import create_topics

pytestmark = pytest.mark.integration


def test_the_producer_keeps_the_metadata_of_the_topics_it_never_looked_up(pipeline):
    # Faust routes a table's web request by hashing the key onto the changelog's partitions, from the producer's
    # metadata; letters wait for the DLQ partitions' leaders in it. Such topics exist before the producer starts and
    # are never looked up. A lookup of a topic created since (the stock movements) narrowed every later refresh to
    # the topics looked up: the others were forgotten, the web request failed (HTTP 500), the letters waited.
    routed = asyncio.run(_key_partition_after_a_lookup(pipeline.stack.bootstrap, pipeline.dlq_topic,
                                                       f"{pipeline.name}-movements"))
    assert routed.topic == pipeline.dlq_topic and 0 <= routed.partition < pipeline.partitions


async def _key_partition_after_a_lookup(bootstrap: str, known: str, created_later: str) -> TP:
    producer = App(f"{created_later}-app", broker=f"kafka://{bootstrap}").producer
    await producer.start()
    try:
        await create_topics(bootstrap, [created_later], 1)
        await asyncio.wait_for(await producer.send(created_later, None, b"movement", 0, None, None), 30)
        return producer.key_partition(known, b"1001")
    finally:
        await producer.stop()
