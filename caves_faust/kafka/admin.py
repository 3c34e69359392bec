"""Topic administration with a plain Kafka admin client (any broker: local Kafka, Redpanda, a cluster)."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REQUEST_TIMEOUT_MS = 15_000
TOPIC_POLL_SECONDS = 0.2


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _described_topics(admin: AIOKafkaAdminClient) -> list[dict]:
    # Every topic's metadata, never some by name: naming an absent topic may have the broker create it.
    return await admin.describe_topics()


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions `topic` has; 0 when it does not exist."""
    async with _admin(bootstrap) as admin:
        described = [d for d in await _described_topics(admin) if d["topic"] == topic]
    return len(described[0].get("partitions") or ()) if described else 0


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """partition -> the consumer group's committed offset on `topic` (partitions it never committed are absent)."""
    async with _admin(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create the topics that do not exist yet."""
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing])


async def wait_for_topics(bootstrap: str, names: set[str], timeout: float) -> set[str]:
    """Wait until every topic is in the broker's metadata with a leader for each partition (a topic just
    created may not be yet); returns those still missing after `timeout` seconds."""
    async with _admin(bootstrap) as admin:
        deadline = time.monotonic() + timeout
        while True:
            ready = {d["topic"] for d in await _described_topics(admin) if _ready(d)}
            missing = names - ready
            if not missing or time.monotonic() >= deadline:
                return missing
            await asyncio.sleep(TOPIC_POLL_SECONDS)


def _ready(described: dict) -> bool:
    partitions = described.get("partitions") or ()
    return described.get("error_code") == 0 and bool(partitions) and all(p["leader"] >= 0 for p in partitions)
