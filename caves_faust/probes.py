"""Timers that keep the gauges behind /metrics true: consumer lag per partition, stock per product.

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
from faust.types import TP, AppT
from faust.types.transports import ConsumerT
from prometheus_client import Gauge

from caves_faust import metrics
from caves_faust.app import app, settings
from caves_faust.stock import local_stock, tables_ready

log = logging.getLogger(__name__)

# Well under Prometheus' 15 s scrape interval, and cheap: one offset fetch and one ListOffsets per probe.
PROBE_SECONDS = 5.0
REQUEST_TIMEOUT_MS = 15_000


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


lag_probe = LagProbe(settings.kafka_bootstrap, app.conf.id)


@app.timer(PROBE_SECONDS)
async def measure_consumer_lag() -> None:
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.sales_topic]
        lags = await lag_probe.measure(app.consumer, assigned) if assigned else {}
    except Exception as exc:  # broker unreachable, consumer restarting: no number is better than a stale one
        metrics.consumer_lag.clear()
        await lag_probe.failed(exc)
        return
    lag_probe.succeeded()
    export_exactly(metrics.consumer_lag, {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()})


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _close_lag_probe(app: AppT, **kwargs: object) -> None:
    await lag_probe.close()


@app.timer(PROBE_SECONDS)
async def export_stock_levels() -> None:
    """The stock of the products this worker owns now, the only place the gauge is set: it also fills it after a
    restart and drops the products whose partition went to another worker."""
    if not tables_ready():
        return  # partial figures would show as drops
    export_exactly(metrics.stock_level, {(product_id,): stock for product_id, stock in local_stock().items()})
