"""Topic administration with a plain Kafka admin client (any broker: local Kafka, Redpanda, a cluster)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC_POLL_SECONDS = 0.2


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions `topic` has; 0 when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        # Every topic's metadata, not this one by name: naming an absent topic may have the broker create it.
        described = [d for d in await admin.describe_topics() if d["topic"] == topic]
    finally:
        await admin.close()
    return len(described[0].get("partitions") or ()) if described else 0


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create the topics that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing])
    finally:
        await admin.close()


async def wait_for_topics(bootstrap: str, names: set[str], timeout: float) -> set[str]:
    """Wait until every topic is in the broker's metadata with a leader for each partition (a topic just
    created may not be yet); returns those still missing after `timeout` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            # Every topic's metadata, not these by name (see partition_count).
            ready = {d["topic"] for d in await admin.describe_topics() if _ready(d)}
            missing = names - ready
            if not missing or time.monotonic() >= deadline:
                return missing
            await asyncio.sleep(TOPIC_POLL_SECONDS)
    finally:
        await admin.close()


def _ready(described: dict) -> bool:
    partitions = described.get("partitions") or ()
    return described.get("error_code") == 0 and bool(partitions) and all(p["leader"] >= 0 for p in partitions)
