"""The worker's producer (caves_faust.faust_patches.Producer) against the real broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from caves_faust.faust_patches import App
from caves_faust.kafka_admin import create_topics

pytestmark = pytest.mark.integration

LINGER_SECONDS = 2.0  # how long a batch waits in the producer before it is sent: the refresh comes in between
WAIT_SECONDS = LINGER_SECONDS + 10


def test_a_letter_waiting_to_go_out_survives_a_metadata_refresh_that_does_not_ask_for_its_topic(pipeline):
    # The DLQ topic exists before the worker starts, the stock movements topic is created by it: the first refresh
    # after such a lookup used to ask for the movements only, and the letter's partition had no leader any more.
    delivered = asyncio.run(_letter_across_refresh(pipeline.stack.bootstrap, pipeline.dlq_topic,
                                                   f"{pipeline.name}-movements"))
    assert delivered.topic == pipeline.dlq_topic and delivered.offset == 0


async def _letter_across_refresh(bootstrap: str, dlq_topic: str, created_later: str):
    producer = App(f"{created_later}-app", broker=f"kafka://{bootstrap}", producer_linger=LINGER_SECONDS).producer
    await producer.start()
    try:
        letter = await producer.send(dlq_topic, None, b"letter", 0, None, None)  # lingers in the producer
        await create_topics(bootstrap, [created_later], 1)
        movement = await producer.send(created_later, None, b"movement", 0, None, None)  # looked up: a refresh
        await asyncio.wait_for(movement, WAIT_SECONDS)
        try:
            return await asyncio.wait_for(letter, WAIT_SECONDS)
        except asyncio.TimeoutError:
            raise AssertionError(f"the letter did not go out within {WAIT_SECONDS:.0f}s of the refresh") from None
    finally:
        with contextlib.suppress(asyncio.TimeoutError):  # a letter held in the producer holds its flush too
            await asyncio.wait_for(producer.stop(), WAIT_SECONDS)
