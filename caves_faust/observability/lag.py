"""Consumer lag per partition, measured against the broker, and gauges refilled in one step.

Consumer lag of a sales partition this worker holds = its end offset minus the consumer group's committed
offset (what `kafka-consumer-groups --describe` shows): the messages not yet durably processed. The sink
commits nothing before Snowflake has the rows, so during an outage the lag grows even though Faust has
already fetched the messages. The committed offsets are asked of the broker, not taken from Faust's
consumer, which forgets them from a rebalance until its table recovery is over. Partitions no longer
assigned lose their series, so each partition is reported by exactly one worker.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP
from faust.types.transports import ConsumerT
from prometheus_client import Gauge

from caves_faust.kafka.admin import REQUEST_TIMEOUT_MS

log = logging.getLogger(__name__)

# How often the gauges are refilled: well under Prometheus' 15 s scrape interval, and cheap (one offset fetch and
# one ListOffsets per lag probe).
PROBE_SECONDS = 5.0


class LagProbe:
    """Measures consumer lag through one admin connection, reopened after a failure."""

    def __init__(self, bootstrap: str, group_id: str):
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._admin: AIOKafkaAdminClient | None = None
        self._failing = False

    async def measure(self, consumer: ConsumerT, partitions: Iterable[TP]) -> dict[TP, int]:
        """Messages between the group's committed offset and the end of each partition."""
        tps = list(partitions)
        ends = await consumer.highwaters(*tps)
        committed = await self._committed(tps)
        never_committed = [tp for tp in tps if committed.get(tp, -1) < 0]
        if never_committed:
            # A group that never committed a partition reads it from the start (auto_offset_reset=earliest).
            committed.update(await consumer.earliest_offsets(*never_committed))
        return {tp: max(0, ends[tp] - committed[tp]) for tp in tps}

    async def _committed(self, tps: list[TP]) -> dict[TP, int]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
            await admin.start()
            self._admin = admin
        offsets = await self._admin.list_consumer_group_offsets(
            self.group_id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in tps])
        return {TP(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()

    async def failed(self, exc: Exception) -> None:
        """One warning when measuring starts failing (not one per probe); reconnect next time."""
        if not self._failing:
            log.warning("consumer lag unavailable: %s: %s", type(exc).__name__, exc)
            self._failing = True
        await self.close()

    def succeeded(self) -> None:
        if self._failing:
            log.warning("consumer lag available again")
            self._failing = False


def export_exactly(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    """Make `values` (label values -> value) the gauge's only series.

    Clear and refill happen in one synchronous step: /metrics is served on the same event loop, so a
    scrape never sees the gauge half-filled.
    """
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
