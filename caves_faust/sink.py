"""The Snowflake sink: every valid sales event exactly once in RAW_EVENTS_STREAM, every invalid one in the DLQ.

`SnowflakeSink.flush` stores a batch of raw events durably: dead letters delivered to the DLQ topic, rows
committed in Snowflake together with the per-partition high-water marks that make a replay after a crash or
rebalance skip what is stored. It never raises on an outage: it retries with capped backoff and, while it does,
the intake takes no new events, so memory stays bounded by the batch size.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence, Set, TypeVar

from aiokafka.errors import KafkaError
from faust.types import TP, AppT, EventT

from caves_faust import metrics
from caves_faust.app import abandon, app, dlq_topic, settings
from caves_faust.cost import WarehouseClock
from caves_faust.dlq import DeadLetter, DeadLetters, Received, encode_bytes
from caves_faust.streaming.auth import Credentials
from caves_faust.streaming.channels import ChannelFenced, StreamingClient, StreamingRefused, StreamingUnavailable
from caves_faust.streaming.writer import StreamingWriter, StreamRow
from caves_faust.validation import InvalidEvent, ValidEvent, validate
from caves_faust.warehouse import WAREHOUSE_ERRORS, Batch, FencedOut, Warehouse, is_content_error

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_RETRY_SECONDS = 0.5
# A row the table must accept: if it is refused too, the problem is the table or the account, not content.
PROBE_ROW = '{"m":{"probe":true},"c":{"event_type":"PROBE"}}'


@dataclass(frozen=True)
class Accepted(Received):
    valid: ValidEvent

    def row(self) -> str:
        """The row as JSON text: the content is spliced in exactly as received (it parsed as a JSON object)."""
        return f'{{"m":{self._metadata()},"c":{self.valid.text}}}'

    def stream_row(self) -> StreamRow:
        """The row for Snowpipe Streaming: keyed by column name, as the table's default pipe maps them."""
        event = self.valid.event
        customer = getattr(event, "customer_id", None)
        return StreamRow(self.partition, self.offset, (
            f'{{"EVENT_TYPE":"{event.event_type}","PRODUCT_ID":{event.product_id},'
            f'"CUSTOMER_ID":{"null" if customer is None else customer},"EVENT_METADATA":{self._metadata()},'
            f'"EVENT_CONTENT":{self.valid.text}}}'))

    def _metadata(self) -> str:
        """Formatted around the one part that needs JSON escaping, the key (json.dumps of the whole was ~3% of the
        worker's GIL time): topic names need none, Kafka allows only [a-zA-Z0-9._-] in them."""
        message = self.event.message
        key, key_encoding = encode_bytes(message.key)
        return (f'{{"topic":"{message.topic}","partition":{message.partition},"offset":{message.offset},'
                f'"timestamp":{message.timestamp!r},"key":{_json_text(key)},"key_encoding":"{key_encoding}"}}')


_json_text = json.JSONEncoder(ensure_ascii=False).encode


def classify(events: Sequence[EventT]) -> tuple[list[Accepted], list[DeadLetter]]:
    accepted: list[Accepted] = []
    letters: list[DeadLetter] = []
    metrics.event_size.observe_many([len(e.message.value or b"") for e in events])
    for event in events:
        raw = event.message.value
        try:
            valid = validate(raw)
        except InvalidEvent as error:
            letters.append(DeadLetter(event, error))
            continue
        accepted.append(Accepted(event, valid))
    # Counted once per batch: a labelled counter's lookup per event was a measurable share of the event loop.
    for event_type, count in Counter(a.valid.event.event_type for a in accepted).items():
        metrics.events_consumed.labels(event_type=event_type, status="valid").inc(count)
    if letters:
        metrics.events_consumed.labels(event_type="INVALID", status="invalid").inc(len(letters))
    return accepted, letters


def distinct(events: Sequence[EventT]) -> list[EventT]:
    """The first copy of each message: after a rebalance Faust may hand a stream the message at a partition's
    committed offset twice (its read-offset check admits the offset it last delivered), in one batch or two."""
    seen: set[tuple[int, int]] = set()
    first: list[EventT] = []
    for event in events:
        coordinate = (event.message.partition, event.message.offset)
        if coordinate not in seen:
            seen.add(coordinate)
            first.append(event)
    return first


@dataclass(frozen=True)
class SortedBatch:
    """A batch read from the sales topic, sorted into valid events and dead letters, ready to be stored."""

    events: Sequence[EventT]
    accepted: list[Accepted]
    letters: list[DeadLetter]
    validate_seconds: float


@dataclass(frozen=True)
class Stored:
    """A batch stored: its valid events (replays already stored included), for the stock, and the events to
    acknowledge (all but those of partitions another writer took over: they are not ours to commit)."""

    accepted: list[Accepted]
    events: list[EventT]


class SinkStopped(Exception):
    """The worker is shutting down while a write is still failing: leave the batch unacknowledged."""


class Backoff:
    """Capped exponential backoff with one log line when a failure streak starts and one when it ends."""

    def __init__(self, what: str, max_seconds: float, stopping: Callable[[], bool]):
        self.what = what
        self.max_seconds = max_seconds
        self.stopping = stopping
        self.failures = 0
        self.started = 0.0

    async def retry(self, reason: str, exc: BaseException) -> None:
        if self.stopping():
            # Unacknowledged, so uncommitted: the next run replays the batch, and the high-water marks
            # make that replay write each event once.
            raise SinkStopped(f"{self.what} still failing at shutdown: {_one_line(exc)}")
        if self.failures == 0:
            self.started = time.monotonic()
            log.warning("%s unavailable, retrying with backoff: reason=%s error=%s", self.what, reason, _one_line(exc))
        self.failures += 1
        metrics.snowflake_retries.labels(reason=reason).inc()
        await asyncio.sleep(min(self.max_seconds, FIRST_RETRY_SECONDS * 2 ** (self.failures - 1)))

    def succeeded(self) -> None:
        if self.failures:
            log.warning("%s back after %d retries in %.1fs", self.what, self.failures, time.monotonic() - self.started)
            self.failures = 0


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]


class SnowflakeSink:
    def __init__(self, warehouse: Warehouse, dead_letters: DeadLetters, topic: str, retry_max_seconds: float,
                 stopping: Callable[[], bool], streaming: StreamingWriter | None = None,
                 owned: Callable[[], set[int]] = set, rebalancing: Callable[[], bool] = lambda: False,
                 fence_wait_seconds: float = 30.0,
                 clock: WarehouseClock | None = None):
        self.stats = SessionStats()
        self.warehouse = warehouse
        self.streaming = streaming  # None: rows go through the warehouse
        self.owned = owned  # the sales partitions the consumer holds now
        self.rebalancing = rebalancing  # whether a rebalance is under way (it waits for our unacknowledged events)
        self.fence_wait_seconds = fence_wait_seconds
        self._assignments: Counter[int] = Counter()  # partition -> times revoked or assigned
        self.clock = clock
        self.dead_letters = dead_letters
        self.topic = topic
        self.retry_max_seconds = retry_max_seconds
        self.stopping = stopping
        # partition -> highest offset stored in Snowflake (None: the partition has no row yet); absent: not read.
        self._high_waters: dict[int, int | None] = {}
        self._bootstrapped = False

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance: re-read these partitions' high-water marks before writing them again."""
        partitions = set(partitions)  # read twice: the rebalance handlers pass a generator
        for partition in partitions:
            self._high_waters.pop(partition, None)
            self._assignments[partition] += 1
        self.dead_letters.forget(partitions)
        if self.streaming is not None:
            self.streaming.forget(partitions)

    def sort(self, events: Sequence[EventT]) -> SortedBatch:
        """Sort a batch into valid events and dead letters (CPU only: the intake runs it while the previous batch
        is being written)."""
        started = time.perf_counter()
        accepted, letters = classify(distinct(events))
        self.stats.count(accepted, letters)
        return SortedBatch(events, accepted, letters, time.perf_counter() - started)

    async def store(self, batch: SortedBatch) -> Stored:
        """Store a sorted batch durably; returns only when done (retrying through outages)."""
        started = time.perf_counter()
        events = batch.events
        metrics.current_batch_size.set(len(events))
        fenced: set[int] = set()
        if self.streaming is None:
            dead_lettered = await self._send_letters(batch.letters)
            rows, skipped, rejected, insert_seconds = await self._store(batch.accepted, events)
        else:
            # Rows first: a writer fenced out of a partition sends none of its letters either (the new owner
            # does); a crash in between is harmless, replayed letters above the DLQ's tail are sent again.
            rows, skipped, rejected, insert_seconds, fenced = await self._stream(batch.accepted)
            dead_lettered = await self._send_letters([d for d in batch.letters if d.partition not in fenced])
        store_seconds = time.perf_counter() - started
        metrics.batch_size.observe(len(events))
        metrics.batch_duration.observe(batch.validate_seconds + store_seconds)
        metrics.current_batch_size.set(0)
        log.info(
            "sink batch: events=%d rows=%d dlq=%d rejected=%d skipped_replays=%d partitions=%d "
            "validate_ms=%.1f insert_ms=%.1f store_ms=%.1f",
            len(events), rows, dead_lettered, rejected, skipped, len({e.message.partition for e in events}),
            batch.validate_seconds * 1000, insert_seconds * 1000, store_seconds * 1000,
        )
        if fenced:
            log.warning("sink: fenced out of partitions %s (their channels were reopened by another writer): "
                        "leaving their events to the new owner", sorted(fenced))
            abandon(e.message for e in events if e.message.partition in fenced)
        return Stored([a for a in batch.accepted if a.partition not in fenced],
                      [e for e in events if e.message.partition not in fenced])

    async def _send_letters(self, letters: list[DeadLetter]) -> int:
        return await self._until_done("Kafka DLQ", lambda: self.dead_letters.send(letters)) if letters else 0

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(what, self.retry_max_seconds, self.stopping)
        while True:
            try:
                result = await attempt()
            except (KafkaError, OSError, asyncio.TimeoutError, RuntimeError) as exc:  # keep the events, try again
                await backoff.retry("dlq_write", exc)
                continue
            backoff.succeeded()
            return result

    async def _store(self, accepted: list[Accepted], events: Sequence[EventT]) -> tuple[int, int, int, float]:
        """Write the rows not stored yet; returns (rows written, replays skipped, rows rejected, insert seconds)."""
        backoff = Backoff("Snowflake", self.retry_max_seconds, self.stopping)
        rejected = 0
        while True:
            try:
                await self._prepare([e.message.partition for e in events])
                fresh = [a for a in accepted if a.offset > _or_minus_one(self._high_waters[a.partition])]
                batch = Batch([a.row() for a in fresh], self._moves(events))
                started = time.perf_counter()
                if batch.high_waters:
                    await asyncio.to_thread(self.warehouse.write, self.topic, batch)
                insert_seconds = time.perf_counter() - started
                if batch.high_waters and self.clock is not None:
                    self.clock.wrote(started, started + insert_seconds)
            except FencedOut as exc:
                log.warning("sink: %s; re-reading high-water marks", exc)
                self.forget({e.message.partition for e in events})
                continue
            except WAREHOUSE_ERRORS as exc:
                refused = await self._refused_rows(fresh, exc) if is_content_error(exc) else None
                if refused is None:  # unreachable, restarting, or the table itself failing: wait
                    self.warehouse.reset()
                    metrics.snowflake_up.set(0)
                    metrics.snowflake_failures.labels(reason="outage").inc()
                    await backoff.retry("outage", exc)
                    continue
                metrics.snowflake_failures.labels(reason="rejected").inc()
                rejected += len(refused)
                refused_ids = {id(a) for a in refused}
                accepted = [a for a in accepted if id(a) not in refused_ids]
                continue
            break
        backoff.succeeded()
        metrics.snowflake_up.set(1)
        self._high_waters.update({p: new for p, (_, new) in batch.high_waters.items()})
        if batch.high_waters:
            metrics.insert_duration.observe(insert_seconds)
            metrics.last_commit_timestamp.set(time.time())
        self._count_inserted(fresh)
        skipped = len(accepted) - len(fresh)
        if skipped:
            metrics.duplicates_skipped.labels(topic=self.topic).inc(skipped)
        return len(fresh), skipped, rejected, insert_seconds

    async def _stream(self, accepted: list[Accepted]) -> tuple[int, int, int, float, set[int]]:
        """Append the rows their channels have not committed and wait for the commit; returns (rows written,
        replays skipped, rows rejected, append seconds, partitions fenced out)."""
        assert self.streaming is not None
        backoff = Backoff("Snowflake", self.retry_max_seconds, self.stopping)  # its Snowpipe Streaming API
        written = rejected = 0
        lost: set[int] = set()  # fenced out, and another worker holds them now: their events are not ours
        held: dict[int, tuple[float, int]] = {}  # fenced out, still assigned to us: since when, at which assignment
        started = time.perf_counter()
        while True:
            self._settle_fenced(held, lost)
            partitions = {a.partition for a in accepted} - lost - held.keys()
            assignments = self._assignments.copy()  # a rebalance during the write changes them
            try:
                await self._prepare([])
                committed = await self.streaming.committed(partitions)
                lost |= partitions - committed.keys()  # fenced out by an earlier batch, not assigned since
                fresh = [a for a in accepted if a.partition in committed
                         and a.offset > _or_minus_one(committed[a.partition])]
                result = await self.streaming.write([a.stream_row() for a in fresh])
            except (StreamingUnavailable, StreamingRefused, *WAREHOUSE_ERRORS) as exc:
                self.streaming.reset()  # what was in flight may or may not be committed: read the tokens again
                metrics.snowflake_up.set(0)
                metrics.snowflake_failures.labels(reason="outage").inc()
                await backoff.retry("outage", exc)
                continue
            # Committed now, errors included: they are found and dead-lettered before anything else happens.
            refused = {id(a) for a in await self._stream_errors(fresh, result.errors)}
            written += result.rows - len(refused)
            rejected += len(refused)
            self._count_inserted([a for a in fresh if a.partition not in result.fenced and id(a) not in refused])
            for partition in result.fenced:
                held.setdefault(partition, (time.monotonic(), assignments[partition]))
            if not held:
                break
            await backoff.retry("fenced", ChannelFenced(f"channels of partitions {sorted(held)} reopened elsewhere"))
        backoff.succeeded()
        metrics.snowflake_up.set(1)
        metrics.last_commit_timestamp.set(time.time())
        skipped = len([a for a in accepted if a.partition not in lost]) - written - rejected
        if skipped:
            metrics.duplicates_skipped.labels(topic=self.topic).inc(skipped)
        seconds = time.perf_counter() - started
        metrics.insert_duration.observe(seconds)
        return written, skipped, rejected, seconds, lost

    def _settle_fenced(self, held: dict[int, tuple[float, int]], lost: set[int]) -> None:
        """A partition fenced out while assigned to us is the new owner's once a rebalance starts or went by (a
        zombie learns it was revoked within a heartbeat; the rebalance waits for these events, and if the
        partition stays ours Faust reads them again from the committed offset); still ours after a whole
        session timeout without one, the writer that reopened its channel was the zombie: reopen it."""
        assert self.streaming is not None
        owned, rebalancing = self.owned(), self.rebalancing()
        for partition, (since, assignment) in list(held.items()):
            if rebalancing or partition not in owned or self._assignments[partition] != assignment:
                lost.add(partition)
                del held[partition]
            elif time.monotonic() - since >= self.fence_wait_seconds:
                self.streaming.forget({partition})
                del held[partition]

    async def _stream_errors(self, fresh: list[Accepted], errors: dict[int, tuple[int, str]]) -> list[Accepted]:
        """Dead-letter the rows the service counted as errors: those of the reporting partitions not in the table."""
        if not errors:
            return []
        refused: list[Accepted] = []
        backoff = Backoff("Snowflake", self.retry_max_seconds, self.stopping)
        for partition, (count, message) in errors.items():
            rows = [a for a in fresh if a.partition == partition]
            while True:
                try:
                    stored = await asyncio.to_thread(self.warehouse.stored_offsets, self.topic, partition,
                                                     rows[0].offset, rows[-1].offset)
                    break
                except WAREHOUSE_ERRORS as exc:
                    self.warehouse.reset()
                    await backoff.retry("outage", exc)
            backoff.succeeded()
            missing = [a for a in rows if a.offset not in stored]
            log.warning("sink: Snowpipe Streaming refused %d rows of partition %d: %s", count, partition, message)
            refused += missing
        letters = [DeadLetter(a.event, InvalidEvent("snowflake_rejected", message)) for a in refused
                   for message in [errors[a.partition][1]]]
        await self._until_done("Kafka DLQ", lambda: self.dead_letters.send(letters, in_order=False))
        metrics.snowflake_failures.labels(reason="rejected").inc()
        return refused

    def _count_inserted(self, fresh: list[Accepted]) -> None:
        for event_type, count in Counter(a.valid.event.event_type for a in fresh).items():
            metrics.events_inserted.labels(event_type=event_type).inc(count)

    async def _prepare(self, partitions: list[int]) -> None:
        if not self._bootstrapped:
            await asyncio.to_thread(self.warehouse.bootstrap)
            self._bootstrapped = True
        if any(p not in self._high_waters for p in partitions):
            stored = await asyncio.to_thread(self.warehouse.high_waters, self.topic)
            for partition in set(partitions) - self._high_waters.keys():
                self._high_waters[partition] = stored.get(partition)

    def _moves(self, events: Sequence[EventT]) -> dict[int, tuple[int | None, int]]:
        """partition -> (stored high-water, new high-water) for partitions this batch moves forward."""
        newest: dict[int, int] = {}
        for event in events:
            partition, offset = event.message.partition, event.message.offset
            newest[partition] = max(offset, newest.get(partition, -1))
        return {
            p: (self._high_waters[p], offset)
            for p, offset in newest.items() if offset > _or_minus_one(self._high_waters[p])
        }

    async def _refused_rows(self, fresh: list[Accepted], exc: BaseException) -> list[Accepted] | None:
        """Dead-letter the rows Snowflake refuses for their content; None when it refuses even a plain row."""
        try:
            if not await asyncio.to_thread(self.warehouse.accepts, [PROBE_ROW]):
                return None
            indexes = await asyncio.to_thread(self.warehouse.rejected, [a.row() for a in fresh])
        except WAREHOUSE_ERRORS:
            return None
        refused = [fresh[i] for i in indexes]
        letters = [DeadLetter(a.event, InvalidEvent("snowflake_rejected", _one_line(exc))) for a in refused]
        await self._until_done("Kafka DLQ", lambda: self.dead_letters.send(letters, in_order=False))
        return refused


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value


class SessionStats:
    """Running totals since start, logged at most once per STATS_LOG_SECONDS when they changed."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self._logged: Counter[str] = Counter()

    def count(self, accepted: list[Accepted], letters: list[DeadLetter]) -> None:
        self.totals.update(a.valid.event.event_type for a in accepted)
        self.totals.update(f"invalid:{letter.error.error_type}" for letter in letters)

    def log_if_changed(self) -> None:
        if self.totals != self._logged:
            self._logged = self.totals.copy()
            log.info("session totals: %s", " ".join(f"{k}={v}" for k, v in sorted(self.totals.items())))


def _streaming_writer() -> StreamingWriter | None:
    if settings.sink_mode != "streaming":
        return None
    client = StreamingClient(Credentials.from_settings(settings), settings.snowflake_database,
                             settings.snowflake_schema, settings.snowflake_pipe, settings.snowflake_timeout_seconds)
    # One channel per source partition, per consumer group: <app id>_<topic>_<partition>.
    return StreamingWriter(client, f"{settings.app_id}_{settings.sales_topic}", settings.snowflake_timeout_seconds)


sink = SnowflakeSink(
    Warehouse(settings),
    DeadLetters(dlq_topic, settings.sales_topic, settings.kafka_bootstrap),
    settings.sales_topic,
    settings.sink_retry_max_seconds,
    stopping=lambda: app.should_stop,
    streaming=_streaming_writer(),
    owned=lambda: {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.sales_topic},
    rebalancing=lambda: not app.flow_control.is_active(),
    fence_wait_seconds=settings.session_timeout_seconds,
    clock=WarehouseClock(settings.snowflake_auto_suspend_seconds, settings.warehouse_credits_per_hour),
)


@app.on_partitions_revoked.connect
async def _forget_revoked(app: AppT, revoked: Set[TP], **kwargs: object) -> None:
    sink.forget(tp.partition for tp in revoked if tp.topic == settings.sales_topic)


@app.on_partitions_assigned.connect
async def _forget_assigned(app: AppT, assigned: Set[TP], **kwargs: object) -> None:
    sink.forget(tp.partition for tp in assigned if tp.topic == settings.sales_topic)


@app.timer(settings.stats_log_seconds)
async def _log_session_totals() -> None:
    sink.stats.log_if_changed()
