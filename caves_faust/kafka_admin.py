"""Topic administration with a plain Kafka admin client (any broker: local Kafka, Redpanda, a cluster)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions `topic` has; 0 when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
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
