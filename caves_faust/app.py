"""The Faust application, configured from settings (importing this reads and checks every setting)."""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT, Message
from faust.types.transports import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from caves_faust.kafka_admin import wait_for_topics
from caves_faust.settings import load_settings

log = logging.getLogger(__name__)

settings = load_settings()

METADATA_REFRESH_MS = 10_000
TOPICS_VISIBLE_SECONDS = 30


class _Consumer(aiokafka_driver.Consumer):
    async def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe once every topic is in the broker's metadata. Faust creates its internal topics (stock
        movements, changelogs) just before subscribing; a topic the broker does not show yet is left out of
        the group's assignment, and when it comes in at a later rebalance its consumption did not start at
        the beginning: movements were skipped and the stock came out wrong."""
        topics = set(topics)
        missing = await wait_for_topics(settings.kafka_bootstrap, topics, TOPICS_VISIBLE_SECONDS)
        if missing:
            log.warning("topics not in the broker's metadata after %ss, subscribing anyway: %s",
                        TOPICS_VISIBLE_SECONDS, ", ".join(sorted(missing)))
        await super().subscribe(topics)

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every stream partition the group never committed (or committed at 0) to its first offset.

        After each rebalance Faust seeks back to the committed offsets, so that records it fetched but dropped
        when the rebalance began are read again. aiokafka only seeks when the committed offset is above 0: a
        partition without a commit kept its fetch position, past the dropped records, and nothing read them.
        Stock movements went missing that way when a second worker joined before the first commit (2.8 s
        after start). The first offset is what `auto_offset_reset="earliest"` means; what was processed
        already is replayed and recognised (the sink's high-water marks, the stock's applied offsets).
        """
        committed = await super().seek_to_committed()
        # Changelog partitions are positioned by table recovery, never from the group's offsets.
        never_committed = [tp for tp, offset in committed.items()
                           if not offset and not self.consumer._is_changelog_tp(tp)]
        if never_committed:
            await self.seek_to_beginning(*never_committed)
        return committed


class _Transport(aiokafka_driver.Transport):
    Consumer = _Consumer


class _FlowControl(FlowControlEvent):
    def resume(self) -> None:
        """Clear the agents' buffers only when the flow was suspended (a rebalance), not when it already runs.

        Faust's recovery resumes the flow twice after an assignment, the second time once the stream partitions
        were seeked: clearing then dropped events fetched since the first resume, while their partitions stay
        assigned, so nothing read them again. After a restart under load, offsets 420-421 of every partition
        were never stored that way (the crash tests, about 1 run in 20).
        """
        if self.is_active():
            return
        super().resume()


class App(faust.App):
    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _FlowControl(loop=self.loop)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    def FlowControlQueue(self, maxsize: int | None = None, *, clear_on_resume: bool = False) -> ThrowableQueue:
        return _AbandoningQueue(maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume)


class _AbandoningQueue(ThrowableQueue):
    """An agent's buffer whose events, when Faust clears it (rebalance, shutdown), are abandoned, not leaked.

    Faust drops the buffered events, then, before the rebalance or the shutdown goes on, waits until each
    event it handed over is acked or garbage-collected: one still referenced elsewhere held the worker there
    (it hung when two agents shared each event). Forgetting them here does not depend on the garbage
    collector. The events waiting to get in (the buffer was full) are dropped too, so they count as well.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._putting: dict[int, Any] = {}

    async def put(self, value: Any) -> None:
        self._putting[id(value)] = value
        try:
            await super().put(value)
        finally:
            self._putting.pop(id(value), None)

    def clear(self) -> None:
        abandon(e.message for e in [*self._queue, *self._putting.values()] if isinstance(e, EventT))  # type: ignore
        super().clear()


def abandon(messages: Iterable[Message]) -> None:
    """Stop waiting for messages this worker will not finish: they stay unacknowledged, so their offsets are not
    committed and they are read again after the rebalance or restart, but Faust no longer waits for their acks
    (it waits for every message handed to an agent before a rebalance or shutdown goes on)."""
    dropped = list(messages)
    if dropped:
        app.consumer.unacked.difference_update(dropped)


app = App(
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
)

sales_topic = app.topic(settings.sales_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
dlq_topic = app.topic(settings.dlq_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
