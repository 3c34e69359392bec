"""Corrections to Faust's internals (faust-streaming 0.15), each with the failure or the cost it prevents, and the
batch path past Faust's per-message delivery (`App.batches`): the one module that touches a private name of Faust,
mode or aiokafka (tests/unit/test_library_privates.py checks each one is still there).

Only Faust, mode and aiokafka here: the app passes in what a correction needs, nothing of the domain is imported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import Any, AsyncIterator, Coroutine, Generator, Iterable, Mapping, NoReturn, cast

import faust
from aiokafka import AIOKafkaClient
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, AppT, EventT, Message, StreamT, TopicT
from faust.types.transports import TransportT
from mode.services import WaitResults
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent, FlowControlQueue, ThrowableQueue

from caves_faust.kafka.admin import wait_for_topics

log = logging.getLogger(__name__)

TOPICS_VISIBLE_SECONDS = 30


class Consumer(aiokafka_driver.Consumer):
    async def _wait_next_records(self, timeout: float) -> tuple[Mapping[TP, list] | None, set[TP] | None]:
        """Fetched records of a topic read in batches (`App.batches`) go to its `Batches` whole, each partition's
        as one list; the others go on to Faust's per-message delivery (~95 us a message on this machine, against
        ~6 us for aiokafka to hand a record over). What the per-message path does per message is kept, per
        partition: only records at or after the read offset, the gaps in the offsets recorded (so that commits
        go past them), the read offset moved, the commit every `broker_commit_every` acknowledgements."""
        records, active = await super()._wait_next_records(timeout)
        sources = cast(App, self.app).batch_sources
        if not records or not sources or not any(tp.topic in sources for tp in records):
            return records, active
        fetched = dict(records)
        mine = {tp: fetched.pop(tp) for tp in list(fetched) if tp.topic in sources}
        generation = self.app.consumer_generation_id
        for tp, tp_records in mine.items():
            if not self.flow_active or self.should_stop or generation != self.app.consumer_generation_id:
                break  # Faust's getmany seeks back to the committed offsets when the flow is not active
            if active is None or tp in active or tp in self._buffered_partitions:
                await self._deliver_batch(sources[tp.topic], tp, tp_records, generation)
        return fetched, active

    async def _deliver_batch(self, batches: "Batches", tp: TP, records: list, generation: int) -> None:
        read = self._read_offset[tp]
        acks = self.app.topics.acks_enabled_for(tp.topic)
        to_message = self._to_message
        app = self.app
        events: list[EventT] = []
        for record in records:
            message = to_message(tp, record)
            offset = message.offset
            if read is None or offset >= read:
                if acks and read and offset - read > 1:
                    await self._add_gap(tp, read + 1, offset)
                events.append(faust.Event(app, message.key, message.value, message.headers or NO_HEADERS, message))
                read = offset
        if not events:
            return
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()
        # A rebalance may have begun during the awaits above: then nothing is handed over, and the read offset is
        # left to the seek back to the committed offsets (moved past these records, it would skip them).
        if self.flow_active and generation == self.app.consumer_generation_id and not self.suspend_flow.is_set():
            batches.put(tp, events)
            self._read_offset[tp] = read

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe once every topic is in the broker's metadata. Faust creates its internal topics (stock
        movements, changelogs) just before subscribing; a topic the broker does not show yet is left out of
        the group's assignment, and when it comes in at a later rebalance its consumption does not start at
        the beginning: movements would be skipped and the stock come out wrong."""
        topics = set(topics)
        missing = await wait_for_topics(bootstrap_servers(self.app), topics, TOPICS_VISIBLE_SECONDS)
        if missing:
            log.warning("topics not in the broker's metadata after %ss, subscribing anyway: %s",
                        TOPICS_VISIBLE_SECONDS, ", ".join(sorted(missing)))
        await super().subscribe(topics)

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Faust's fetcher delivers each message with `wait_first(callback(message), suspend_flow.wait())`, a race
        of four tasks (the callback, the flow's suspension, the consumer's stop and crash) then three
        cancellations, ~125 us a message on this machine when loaded, for a callback that almost always ends at
        once (a put into a buffer with room). Run the callback first, up to its first suspension: finished, that
        is the race's outcome; suspended (a full buffer), it continues in the very same race."""
        first, *others = coros
        if timeout is not None or not asyncio.iscoroutine(first) or self._interrupted():
            return await super().wait_first(*coros, timeout=timeout)
        try:
            waiting = first.send(None)
        except StopIteration as finished:
            for other in others:
                if asyncio.iscoroutine(other):
                    other.close()  # the race it would have run in never starts
            return WaitResults([first], [finished.value], False)
        return await super().wait_first(Continue(first, waiting), *others)

    def _interrupted(self) -> bool:
        return self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set()


class Continue:
    """Awaiting this continues `coro`, which was already run up to its first suspension, where it yielded
    `waiting` (what asyncio's Task then waits on); its result, exceptions and cancellation pass through."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, Any]:
        waiting = self.waiting
        while True:
            thrown: BaseException | None = None
            try:
                yield waiting
            except BaseException as exc:  # thrown in by the awaiting task: its cancellation
                thrown = exc
            try:
                waiting = self.coro.send(None) if thrown is None else self.coro.throw(thrown)
            except StopIteration as finished:
                return finished.value


def committed_offset(app: AppT, tp: TP) -> int | None:
    """The group's committed offset of `tp` as this consumer last read or committed it (None: never committed)."""
    return cast(Consumer, app.consumer)._committed_offset.get(tp)


def bootstrap_servers(app: AppT) -> str:
    """The app's broker URLs as host:port pairs, for plain Kafka clients."""
    return ",".join(f"{url.host}:{url.port}" for url in app.conf.broker)


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every stream partition the group never committed (or committed at 0) to its first offset.

        After each rebalance Faust seeks back to the committed offsets, so that records it fetched but dropped
        when the rebalance began are read again. aiokafka only seeks when the committed offset is above 0: a
        partition without a commit kept its fetch position, past the dropped records, and nothing read them.
        The first offset is what `auto_offset_reset="earliest"` means; what was processed already is replayed
        and recognised (the sink's high-water marks, the stock's applied offsets).
        """
        committed = await super().seek_to_committed()
        # Changelog partitions are positioned by table recovery, never from the group's offsets.
        never_committed = [tp for tp, offset in committed.items()
                           if not offset and not self.consumer._is_changelog_tp(tp)]
        if never_committed:
            await self.seek_to_beginning(*never_committed)
        return committed


class Producer(aiokafka_driver.Producer):
    """Faust's producer (stock movements, changelogs, dead letters), on a `ProducerClient`."""

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        producer = super()._new_producer(transactional_id)
        producer.client.__class__ = ProducerClient  # before it starts: nothing of its own to set up
        return producer


class ProducerClient(AIOKafkaClient):
    """The producer's client: it keeps the metadata of every topic, and paces the updates that fail.

    Every topic: aiokafka's refreshes ask only for the topics it had to look up and forget the others, among them
    those it knew from its first metadata: the DLQ topic (letters then wait for a leader no refresh asks for, and
    every commit behind them) and the changelogs Faust's table routing reads (`key_partition`). The cost is a
    larger answer per refresh on a cluster with many topics.

    Paced: while a batch's partition has no leader, aiokafka's sender asks again as soon as an update is over,
    and with the broker away each fails at once: it spun on the worker's event loop for the whole outage.
    """

    def add_topic(self, topic: str) -> asyncio.Future:
        """Learn a topic without narrowing the refreshes to the topics looked up (they stay: all of them)."""
        if self.cluster.partitions_for_topic(topic) is not None:
            known: asyncio.Future = self._loop.create_future()
            known.set_result(True)
            return known
        return self.force_metadata_update()

    async def _metadata_update(self, cluster_metadata: Any, topics: Any) -> bool:
        updated: bool = await super()._metadata_update(cluster_metadata, topics)
        if not updated:
            await asyncio.sleep(self._retry_backoff)
        return updated


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer
    Producer = Producer


class FlowControl(FlowControlEvent):
    def resume(self) -> None:
        """Clear the agents' buffers only when the flow was suspended (a rebalance), not when it already runs.

        Faust's recovery resumes the flow twice after an assignment, the second time once the stream partitions
        were seeked: clearing then dropped events fetched since the first resume, while their partitions stay
        assigned, so nothing read them again.
        """
        if self.is_active():
            return
        super().resume()


class AbandoningQueue(ThrowableQueue):
    """An agent's buffer whose events, when Faust clears it (rebalance, shutdown), are abandoned, not leaked.

    Faust drops the buffered events, then, before the rebalance or the shutdown goes on, waits until each
    event it handed over is acked or garbage-collected: one still referenced elsewhere held the worker there.
    Forgetting them here does not depend on the garbage collector. The events waiting to get in (the buffer
    was full) are dropped too, so they count as well.
    """

    def __init__(self, app: AppT, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app
        self._putting: dict[int, Any] = {}

    async def put(self, value: Any) -> None:
        self._putting[id(value)] = value
        try:
            await super().put(value)
        finally:
            self._putting.pop(id(value), None)

    def clear(self) -> None:
        buffered = [*self._queue, *self._putting.values()]  # type: ignore[attr-defined]
        abandon(self.app, (e.message for e in buffered if isinstance(e, EventT)))
        super().clear()


def abandon(app: AppT, messages: Iterable[Message]) -> None:
    """Stop waiting for messages this worker will not finish: they stay unacknowledged, so their offsets are not
    committed and they are read again after the rebalance or restart, but Faust no longer waits for their acks
    (it waits for every message handed to an agent before a rebalance or shutdown goes on)."""
    dropped = list(messages)
    if dropped:
        app.consumer.unacked.difference_update(dropped)


def acknowledge(app: AppT, messages: Iterable[Message]) -> None:
    """Acknowledge messages handed over by `Batches` (each once: Faust commits past a partition's offsets once
    every one before them is acknowledged), and count them out as Faust's streams do."""
    consumer = app.consumer
    message_out = app.sensors.on_message_out
    for message in messages:
        if consumer.ack(message):
            message_out(message.tp, message.offset, message)


class NoHeaders(dict):
    """The headers of every event handed over whose message has none: one shared, unchangeable dict rather than a
    new one per event (Faust's Event makes one when given none; 64 bytes an event held)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an event's headers without headers are shared: they cannot be changed")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse


NO_HEADERS = NoHeaders()
NOTHING_EVALUATED: frozenset[str] = frozenset()
_LAZY_FIELDS: dict[type, bool] = {}  # per Record class: whether a field of it is coerced lazily


def shed_evaluated_fields(record: faust.Record) -> None:
    """Give a Record whose fields are all set once (none coerced lazily) the shared empty set of lazily evaluated
    fields instead of the new one Faust's `__init__` gives each instance (216 bytes an event held). Only Faust's
    descriptors of lazily coerced fields read it: a record with one is left as it is."""
    kind = type(record)
    lazy = _LAZY_FIELDS.get(kind)
    if lazy is None:
        lazy = _LAZY_FIELDS[kind] = any(d.lazy_coercion for d in kind._options.descriptors.values())
    if not lazy:
        record.__evaluated_fields__ = NOTHING_EVALUATED  # type: ignore[assignment]  # read, never added to


class Batches:
    """The events of one topic, handed over as the consumer fetched them instead of one by one through Faust's
    Conductor, channel queue and Stream (that path's cost per message was the worker's ceiling).

    Kept as a stream keeps them: each partition's events in offset order; an event is tracked (so a rebalance
    or a shutdown waits for it or for its abandonment) from its hand-over until `acknowledge` or `abandon`;
    nothing is acknowledged here, so nothing is committed before its reader says so. Bounded as an agent's buffer
    is: once `max_buffered` events wait, the topic's partitions are taken out of the fetch (`on_buffer_full`)
    until half of them were handed over, while the other topics are fetched as usual. A rebalance clears what
    waits (the flow control manages this buffer as it does the agents'): those events were not handed over, and
    are fetched again from the committed offsets; an event of an earlier generation is never handed over.
    """

    def __init__(self, app: AppT, topic: str, max_buffered: int) -> None:
        self.app = app
        self.topic = topic
        self.max_buffered = max_buffered
        self.waiting: deque[EventT] = deque()
        self.arrivals: deque[list] = deque()  # [monotonic time, events left of that delivery], oldest first
        self.arrived = asyncio.Event()
        self.paused: set[TP] = set()  # partitions taken out of the fetch while this buffer is full
        app.flow_control.manage_queue(cast(FlowControlQueue, self))

    def __len__(self) -> int:
        return len(self.waiting)

    def put(self, tp: TP, events: list[EventT]) -> None:
        """Add a partition's fetched events; past `max_buffered`, stop fetching the topic for now."""
        self.waiting.extend(events)
        self.arrivals.append([time.monotonic(), len(events)])
        self.arrived.set()
        if len(self.waiting) >= self.max_buffered and not self.paused:
            consumer = self.app.consumer
            # Every partition of the topic at once, so that no other fetch comes in past the bound; as Faust's own
            # TPs (fetched records are keyed by aiokafka's TopicPartition, equal but not one, and the consumer's
            # set of fetched partitions admits Faust's only: an assertion stops the fetcher).
            self.paused = {TP(t.topic, t.partition) for t in consumer.assignment() if t.topic == self.topic}
            for paused in self.paused:
                consumer.on_buffer_full(paused)

    def clear(self) -> None:
        """Drop what waits (not handed over, so neither tracked nor acknowledged). The partitions it paused are
        forgotten: the assignment that follows sets the fetched partitions afresh."""
        self.waiting.clear()
        self.arrivals.clear()
        self.paused.clear()

    async def take(self, max_events: int, within: float) -> AsyncIterator[list[EventT]]:
        """Batches of up to `max_events`: what waits once `max_events` are there, or `within` seconds after the
        oldest of them arrived."""
        while True:
            while not self.waiting:
                self.arrived.clear()
                await self.arrived.wait()
            while len(self.waiting) < max_events and (left := self.arrivals[0][0] + within - time.monotonic()) > 0:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
                if not self.waiting:  # cleared by a rebalance meanwhile
                    break
            await self.app.flow_control.acquire()
            batch = self.hand_over(max_events)
            if batch:
                yield batch

    def hand_over(self, max_events: int) -> list[EventT]:
        events, arrivals = self.waiting, self.arrivals
        taken = min(max_events, len(events))
        generation = self.app.consumer_generation_id
        batch = [e for e in (events.popleft() for _ in range(taken)) if e.message.generation_id == generation]
        while taken and arrivals:
            used = min(taken, arrivals[0][1])
            arrivals[0][1] -= used
            taken -= used
            if not arrivals[0][1]:
                arrivals.popleft()
        consumer = self.app.consumer
        if self.paused and len(events) <= self.max_buffered // 2:
            for tp in self.paused:
                consumer.on_buffer_drop(tp)
            self.paused.clear()
        for event in batch:
            event.message.tracked = True
            consumer.track_message(event.message)
        monitor = self.app.monitor
        now = time.monotonic()
        for tp in {event.message.tp for event in batch}:  # once per partition, not per event
            monitor.stream_inbound_time[tp] = now
        monitor.events_total += len(batch)
        monitor.events_by_stream[self.topic] += len(batch)
        return batch


class App(faust.App):
    """faust.App with the corrections above."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)

    @cached_property
    def batch_sources(self) -> dict[str, Batches]:
        """The topics read in batches, by name (see Consumer._wait_next_records)."""
        return {}

    def batches(self, topic: TopicT, max_buffered: int) -> Batches:
        """Read `topic` a fetched batch at a time: it is subscribed to and acknowledged like an agent's topic,
        and its records go to the returned `Batches`, never to Faust's per-message delivery."""
        self.topics.add(topic)
        source = self.batch_sources[topic.get_topic_name()] = Batches(self, topic.get_topic_name(), max_buffered)
        return source

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    def FlowControlQueue(self, maxsize: int | None = None, *, clear_on_resume: bool = False) -> ThrowableQueue:
        return AbandoningQueue(self, maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume)

    def _create_directories(self) -> None:
        """Create the data directory with its missing parents, as a user giving F_DATADIR=a/b/c expects (Faust
        creates only the last level, and the worker ended on a FileNotFoundError traceback)."""
        self.conf.datadir.mkdir(parents=True, exist_ok=True)
        super()._create_directories()


class ScrapeTimeMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor, the same series and values, with the per-message counts kept in Faust's plain
    Monitor fields and handed to prometheus_client when /metrics is read (`sync`), not on every message: each of
    prometheus_client's updates takes a lock, and Faust's sensor made ten of them per message."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._exported: Counter[Any] = Counter()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> dict | None:
        return Monitor.on_stream_event_in(self, tp, offset, stream, event)

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT, event: EventT,
                            state: dict | None = None) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(state["time_total"]))

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def sync(self) -> None:
        """Bring the per-message series up to the Monitor's counts (called on the event loop, so in one step)."""
        metrics = self._metrics
        self._advance(metrics.messages_received, "messages", self.messages_received_total)
        self._advance(metrics.total_events, "events", self.events_total)
        for topic, count in self.messages_received_by_topic.items():
            self._advance(metrics.messages_received_per_topics.labels(topic=topic), ("topic", topic), count)
        labels = {name: self._stream_label(stream) for stream, name in self.stream_lookup.items()}
        for name, count in self.events_by_stream.items():
            series = metrics.total_events_per_stream.labels(stream=f"stream.{labels.get(name, name)}.events")
            self._advance(series, ("stream", name), count)
        for tp, offset in self.tp_read_offsets.items():
            metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        metrics.active_messages.set(self.messages_active)
        metrics.total_active_events.set(self.events_active)

    def _advance(self, counter: Any, key: Any, total: int) -> None:
        delta = total - self._exported[key]
        if delta > 0:
            counter.inc(delta)
            self._exported[key] = total
