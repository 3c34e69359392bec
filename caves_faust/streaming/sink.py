"""The sink in streaming mode: every valid sales event exactly once in RAW_EVENTS_STREAM through Snowpipe
Streaming, every invalid one in the DLQ. The same contract as `caves_faust.sink.SnowflakeSink` (`store`,
`forget`), on channels instead of transactions.

`store` returns only once the batch's rows are covered by their channels' committed offset tokens, then its dead
letters are delivered: rows first, so that a writer fenced out of a partition sends none of its letters either
(the new owner does). Outages are retried with capped backoff, after which the channels are reopened and their
tokens read again. A partition fenced out while still assigned waits for the consumer to learn it was revoked
(`_settle_fenced`); rows the service counts as errors are dead-lettered as `snowflake_rejected`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from aiokafka.errors import KafkaError

from caves_faust import metrics
from caves_faust.dlq import DeadLetter, DeadLetters
from caves_faust.retry import Backoff, RetryPolicy
from caves_faust.sink import Stored, count_snowflake_retry, or_minus_one, record_batch
from caves_faust.streaming.channels import ChannelFenced, StreamingRefused, StreamingUnavailable
from caves_faust.streaming.writer import StreamingWriter, Written
from caves_faust.triage import Accepted, Classified
from caves_faust.validation import InvalidEvent
from caves_faust.warehouse import WAREHOUSE_ERRORS, Warehouse, is_content_error

log = logging.getLogger(__name__)


@dataclass
class StreamingSink:
    writer: StreamingWriter
    warehouse: Warehouse  # creates the tables; looks up which rows the service refused
    dead_letters: DeadLetters
    topic: str
    retry: RetryPolicy
    stopping: Callable[[], bool]
    owned: Callable[[], set[int]]  # the sales partitions the consumer holds now
    rebalancing: Callable[[], bool]  # whether a rebalance is under way (it waits for our unacknowledged events)
    fence_wait_seconds: float  # how long a fenced partition still assigned to us waits before it is reopened
    what_to_check: str  # where the tables are and what to check when Snowflake refuses to create or read them
    _assignments: Counter[int] = field(default_factory=Counter)  # partition -> times revoked or assigned
    _bootstrapped: bool = False

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance: reopen these partitions' channels and re-read their DLQ tails before writing them again."""
        partitions = set(partitions)
        self._assignments.update(partitions)
        self.writer.forget(partitions)
        self.dead_letters.forget(partitions)

    async def store(self, batch: Classified) -> Stored:
        """Store a classified batch durably; returns only when done (retrying through outages)."""
        started = time.perf_counter()
        metrics.current_batch_size.set(len(batch.events))
        rows, skipped, refused, insert_seconds, lost = await self._stream(batch.accepted)
        letters = [d for d in batch.letters if d.partition not in lost]
        # No marks: the committed tokens cover rows only, not the letters between them; the DLQ tail says.
        dead_lettered = await self._deliver(letters) if letters else 0
        stored = [a for a in batch.accepted if a.partition not in lost and id(a) not in refused]
        outcome = Stored(stored, rows, skipped, len(refused), dead_lettered, insert_seconds, frozenset(lost))
        record_batch(batch, outcome, time.perf_counter() - started)
        if lost:
            log.warning("sink: fenced out of partitions %s (their channels were reopened by another writer): "
                        "leaving their events to the new owner", sorted(lost))
        return outcome

    async def _stream(self, accepted: list[Accepted]) -> tuple[int, int, set[int], float, set[int]]:
        """Append the rows their channels have not committed and wait for the commit; returns (rows written,
        replays skipped, ids of the rows rejected, append seconds, partitions fenced out for good)."""
        backoff = Backoff("Snowflake", self.retry, self.stopping, count_snowflake_retry)  # Snowpipe Streaming
        written = 0
        rejected: set[int] = set()
        lost: set[int] = set()  # fenced out, and another worker holds them now: their events are not ours
        held: dict[int, tuple[float, int]] = {}  # fenced out, still assigned to us: since when, at which assignment
        started = time.perf_counter()
        while True:
            self._settle_fenced(held, lost)
            partitions = {a.partition for a in accepted} - lost - held.keys()
            assignments = self._assignments.copy()  # a rebalance during the write changes them
            try:
                await self._bootstrap()
                committed = await self.writer.committed(partitions)
                lost |= partitions - committed.keys()  # fenced out by an earlier batch, not assigned since
                fresh = [a for a in accepted if a.partition in committed
                         and a.offset > or_minus_one(committed[a.partition])]
                result = await self.writer.write([a.stream_row() for a in fresh])
            except (StreamingUnavailable, StreamingRefused, *WAREHOUSE_ERRORS) as exc:
                self.writer.reset()  # what was in flight may or may not be committed: read the tokens again
                self.warehouse.reset()
                metrics.snowflake_up.set(0)
                metrics.snowflake_failures.labels(reason="outage").inc()
                await backoff.retry("outage", exc, self.what_to_check if is_content_error(exc) else "")
                continue
            # Committed now, errors included: they are found and dead-lettered before anything else happens.
            refused = {id(a) for a in await self._dead_letter_errors(fresh, result)}
            stored = [a for a in fresh if a.partition not in result.fenced and id(a) not in refused]
            written += len(stored)
            rejected |= refused
            _count_inserted(stored)
            for partition in result.fenced:
                held.setdefault(partition, (time.monotonic(), assignments[partition]))
            if not held:
                break
            await backoff.retry("fenced", ChannelFenced(f"channels of partitions {sorted(held)} reopened elsewhere"))
        backoff.succeeded()
        metrics.snowflake_up.set(1)
        metrics.last_commit_timestamp.set(time.time())
        skipped = len([a for a in accepted if a.partition not in lost]) - written - len(rejected)
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
        owned, rebalancing = self.owned(), self.rebalancing()
        for partition, (since, assignment) in list(held.items()):
            if rebalancing or partition not in owned or self._assignments[partition] != assignment:
                lost.add(partition)
                del held[partition]
            elif time.monotonic() - since >= self.fence_wait_seconds:
                self.writer.forget({partition})
                del held[partition]

    async def _dead_letter_errors(self, fresh: list[Accepted], result: Written) -> list[Accepted]:
        """The rows the service counted as errors: those of the reporting partitions not in the table,
        dead-lettered (one SELECT through the warehouse per such partition: rare, since validation comes first)."""
        refused: list[Accepted] = []
        reasons: dict[int, str] = {}
        for partition, (count, message) in result.errors.items():
            rows = [a for a in fresh if a.partition == partition]
            stored = await self._stored_offsets(partition, rows[0].offset, rows[-1].offset)
            log.warning("sink: Snowpipe Streaming refused %d rows of partition %d: %s", count, partition, message)
            refused += [a for a in rows if a.offset not in stored]
            reasons[partition] = message
        if refused:
            metrics.snowflake_failures.labels(reason="rejected").inc()
            await self._deliver([DeadLetter(a.event, InvalidEvent("snowflake_rejected", reasons[a.partition]))
                                 for a in refused])
        return refused

    async def _stored_offsets(self, partition: int, low: int, high: int) -> set[int]:
        backoff = Backoff("Snowflake", self.retry, self.stopping, count_snowflake_retry)
        while True:
            try:
                stored = await asyncio.to_thread(self.warehouse.stored_offsets, self.topic, partition, low, high)
            except WAREHOUSE_ERRORS as exc:
                self.warehouse.reset()
                await backoff.retry("outage", exc)
                continue
            backoff.succeeded()
            return stored

    async def _bootstrap(self) -> None:
        if not self._bootstrapped:
            await asyncio.to_thread(self.warehouse.bootstrap)
            self._bootstrapped = True

    async def _deliver(self, letters: list[DeadLetter]) -> int:
        backoff = Backoff("Kafka DLQ", self.retry, self.stopping, lambda reason: metrics.dlq_retries.inc())
        while True:
            try:
                sent = await self.dead_letters.send(letters, {})
            except (KafkaError, OSError, asyncio.TimeoutError, RuntimeError) as exc:  # keep the events, try again
                await backoff.retry("dlq_write", exc)
                continue
            backoff.succeeded()
            return sent


def _count_inserted(rows: list[Accepted]) -> None:
    for event_type, count in Counter(a.valid.event.event_type for a in rows).items():
        metrics.events_inserted.labels(event_type=event_type).inc(count)

