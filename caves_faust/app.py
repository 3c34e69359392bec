"""The Faust application, configured from settings (importing this reads and checks every setting)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from faust.types import ConsumerT

from caves_faust.settings import load_settings

settings = load_settings()

METADATA_REFRESH_MS = 10_000
SHUTDOWN_POLL_SECONDS = 0.05

class CavesApp(faust.App):
    """Faust's App, with a bounded drain of in-flight events at shutdown and none at rebalances."""

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        # Faust calls this (faust-streaming 0.15, App._stop_consumer and the revocation handler) to wait,
        # without a deadline, until every in-flight event is acked. At a rebalance that wait can last forever
        # on events Faust dropped from its own queues (seen in benchmarks), and replays are skipped by offset
        # anyway: do not wait. At shutdown, fetching has stopped and the agents' batches are still being
        # stored: give them until the next flush plus one Snowflake call, then commit what they acked.
        if not self.should_stop:
            return
        deadline = time.monotonic() + settings.sink_flush_seconds + settings.snowflake_timeout_seconds
        while consumer._unacked_messages and time.monotonic() < deadline:  # type: ignore[attr-defined]
            await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
        logger.info("Committing what was stored before shutdown")
        await consumer.commit()


app = CavesApp(
    settings.app_id,
    broker=settings.kafka_broker,
    store=settings.store,
    topic_partitions=settings.topic_partitions,
    # at_least_once + an idempotent Snowflake sink: exactly_once covers Kafka outputs only and wants 3 brokers.
    processing_guarantee="at_least_once",
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=settings.session_timeout_seconds / 10,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host=settings.web_host,
    # Table lookups are routed to the worker owning the key's partition through this URL.
    canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    table_cleanup_interval=settings.stock_window_seconds,
    # Faust creates its internal topics just before subscribing; when the broker's metadata lags behind, the
    # assignment skips them ("Ignoring missing topic") until the next metadata refresh: make that seconds, not 5 min.
    consumer_metadata_max_age_ms=METADATA_REFRESH_MS,
    # The consumer's own unbounded wait at stop is replaced by CavesApp._consumer_wait_empty.
    stream_wait_empty=False,
)

sales_topic = app.topic(settings.sales_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
dlq_topic = app.topic(settings.dlq_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
