"""The sink in streaming mode: every valid sales event exactly once in RAW_EVENTS_STREAM through Snowpipe
Streaming, every invalid one in the DLQ and DLQ_EVENTS. The same contract as `sink.warehouse.WarehouseSink`
(`store`, `forget`), on channels instead of transactions.

`store` appends a batch's rows to RAW_EVENTS_STREAM's channels and, at the same time, its dead letters to
DLQ_EVENTS's, waits until every channel's committed offset token covers what it was given, and then sends the
letters to the DLQ topic: rows first, so that a writer fenced out of a partition sends none of its letters (the
new owner does, the DLQ tail telling which are there already). A replayed dead letter is stored once
(replays.py); its DLQ_EVENTS row is marked REPLAYED once its row committed.

Several batches may be in the sink at once (up to SINK_IN_FLIGHT_BYTES of events, `batches_in_flight` at most):
the next ones are appended while this one waits for its commit (a second on the emulation, 5-10 s on a real
account), which would otherwise be the pipe's pace. They go to each pipe's channels one at a
time and in batch order, the next only once this one's rows were all handed over with nothing reopened since
(`sink/ordering.py`), and come out in batch order (the dead letters' tail state is one sender's at a time): a
batch whose predecessor failed is not acknowledged, and a partition the predecessor gave up is given up by it too.

Outages are retried with capped backoff, after which the channels are reopened and their tokens read again. A
partition fenced out while still assigned waits for the consumer to learn it was revoked (`sink/fencing.py`); rows
the service counts as errors are dead-lettered as `snowflake_rejected`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable, ClassVar, Iterable, Sequence, TypeVar

from caves_faust.dlq.writer import DeadLetters
from caves_faust.events.batch import Accepted, Classified
from caves_faust.events.letters import DeadLetter
from caves_faust.events.origin import origin_of
from caves_faust.events.received import Received
from caves_faust.observability import metrics
from caves_faust.sink import contract
from caves_faust.sink.channels import StreamingWriter, StreamRow, Written
from caves_faust.sink.contract import Once, Stored
from caves_faust.sink.fencing import Fencing, Held
from caves_faust.sink.ordering import Turn
from caves_faust.sink.replays import Copies, first_copies, for_stock, origins, replayed_letters, stored_copies
from caves_faust.sink.retry import Backoff, RetryPolicy, SinkStopped
from caves_faust.sink.rows import ingestion_time, letter_rows, letter_stream_row, replayed_sources, stream_row
from caves_faust.snowflake.connection import Warehouse
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS, is_content_error
from caves_faust.snowflake.streaming_client import ChannelFenced, StreamingRefused, StreamingUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Received)
T = TypeVar("T")

# Why rows are looked up that committed while the worker could not watch (an outage during the wait).
UNWATCHED = "refused by Snowpipe Streaming while the worker could not watch the commit (an outage)"
# Why replays are looked up that their channel committed before this worker opened it.
REFUSED_BEFORE_OPEN = "refused by Snowpipe Streaming before the channel was reopened (its writer stopped first)"


@dataclass
class _Rows:
    """What appending a batch's rows did."""

    written: list[Accepted] = field(default_factory=list)  # appended and committed
    rejections: list[DeadLetter] = field(default_factory=list)  # rows the service counted as errors
    replayed: Copies = field(default_factory=dict)  # where the rows of the letters the batch replays are
    seconds: float = 0.0


@dataclass
class StreamingSink:
    rows: StreamingWriter  # RAW_EVENTS_STREAM's channels
    letters: StreamingWriter  # DLQ_EVENTS's channels
    # Creates the tables; finds the refused rows and the replays' stored copies; files the refused rows' letters.
    warehouse: Warehouse
    dead_letters: DeadLetters
    topic: str
    retry: RetryPolicy
    stopping: Callable[[], bool]
    # The group's committed offset of a sales partition (None: never committed): events below it were acknowledged,
    # so their rows or letters are where they belong.
    kafka_committed: Callable[[int], int | None]
    what_to_check: str  # where the tables are and what to check when Snowflake refuses to create or read them
    fencing: Fencing  # which fenced partitions to give up, which to take back
    _tables: Once = field(default_factory=Once)  # created (if missing) once
    _warehouse_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one connection: one caller at a time
    _last: Turn | None = None  # the last batch that came in

    # A cap beside the intake's bound in bytes (SINK_IN_FLIGHT_BYTES), which is what holds it in practice.
    batches_in_flight: ClassVar[int] = 32

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance: reopen these partitions' channels and re-read their DLQ tails before writing them again."""
        partitions = set(partitions)
        self.fencing.moved(partitions)
        self.rows.forget(partitions)
        self.letters.forget(partitions)
        self.dead_letters.forget(partitions)

    async def store(self, batch: Classified) -> Stored:
        """Store a classified batch durably; returns only when done (retrying through outages). Called in batch
        order, at most `batches_in_flight` at once."""
        if batch.topic_id != self.rows.topic_id:  # the topic was created again: every channel is read again
            for writer in (self.rows, self.letters):
                writer.live(batch.topic_id)
        turn = self._last = Turn.after(self._last)
        try:
            outcome = await self._store(batch, turn)
            turn.stored = True
            return outcome
        finally:
            await asyncio.shield(self._finish(turn))

    async def _store(self, batch: Classified, turn: Turn) -> Stored:
        started = time.perf_counter()
        metrics.current_batch_size.set(len(batch.events))
        lost = turn.lost  # fenced out, and another worker holds them now: their events are not ours
        rows, _ = await _together(self._append_rows(batch.accepted, lost, turn),
                                  self._append_letters(batch.letters, lost, turn))
        if turn.previous is not None:
            await turn.previous.finished.wait()
            # What this batch skipped as handed over by the one before is not stored where that one gave up; nor
            # may this one's later events there move the stock ahead of that one's (the stock skips older offsets).
            lost |= turn.previous.lost
        if turn.previous_failed():
            raise SinkStopped("the batch before this one was not stored")
        refused = {id(d.event) for d in rows.rejections}
        kept = [a for a in batch.accepted if a.partition not in lost and id(a.event) not in refused]
        stored = for_stock(kept, rows.replayed)
        # The refused rows' letters even for a partition lost since: the new owner skips those rows as committed.
        letters = [d for d in batch.letters if d.partition not in lost] + rows.rejections
        # No marks: the committed tokens cover rows, not the letters between them; the DLQ tail says.
        dead_lettered = await contract.deliver(self.dead_letters, letters, {}, self.retry, self.stopping)
        await self._file_in_warehouse(rows.rejections, stored)
        # Replays of committed rows (and copies of replayed letters) in the partitions still ours.
        skipped = len(kept) - len([a for a in rows.written if a.partition not in lost])
        if skipped:
            metrics.duplicates_skipped.labels(topic=self.topic).inc(skipped)
        outcome = Stored(stored, len(rows.written), skipped, len(refused), dead_lettered, rows.seconds,
                         frozenset(lost))
        contract.record_batch(batch, outcome, time.perf_counter() - started)
        if lost:
            log.warning("sink: fenced out of partitions %s (their channels were reopened by another writer): "
                        "leaving their events to the new owner", sorted(lost))
        return outcome

    async def _finish(self, turn: Turn) -> None:
        """Out of the sink, stored or not: the next batch may append and come out (or learn it may not)."""
        if turn.stored:
            turn.previous = None  # nothing to hold on to
        turn.finished.set()
        for writer in (self.rows, self.letters):
            async with writer.turn:
                writer.turn.notify_all()

    async def _append_rows(self, accepted: list[Accepted], lost: set[int], turn: Turn) -> _Rows:
        """The rows their channels have not committed, first copies of replayed letters only, appended and
        committed; the ones the service refused found."""
        done = _Rows()
        started = time.perf_counter()

        async def first_of_replays(fresh: list[Accepted], committed: dict[int, int | None]) -> list[Accepted]:
            letters = origins(accepted)
            if not letters:  # most batches replay no dead letter: no lookup, no thread hop
                return fresh
            done.replayed = await self._in_warehouse(stored_copies, self.warehouse, letters)
            return first_copies(fresh, done.replayed)

        async def committed_now(appended: list[Accepted], result: Written) -> dict[int, int]:
            # Errors included: they are found before anything else happens (the token now covers them).
            rejections = await self._rejections(appended, result)
            ids = {id(d.event) for d in rejections}
            stored = [a for a in appended if id(a.event) not in ids]
            done.rejections += rejections
            done.written += stored
            contract.count_inserted(stored)
            return Counter(d.partition for d in rejections)

        async def refused_among(replays: list[Accepted]) -> None:
            # Copies of replayed dead letters are left out: all but the first are no rows of their own.
            suspects = [a for a in replays if origin_of(a.event.message.headers) is None]
            done.rejections += await self._rejections(
                suspects, Written(errors={a.partition: (0, REFUSED_BEFORE_OPEN) for a in suspects}))

        await self._append(self.rows, turn, accepted, stream_row, lost, first_of_replays, committed_now,
                           refused_among)
        metrics.snowflake_up.set(1)
        metrics.last_commit_timestamp.set(time.time())
        done.seconds = time.perf_counter() - started
        metrics.insert_duration.observe(done.seconds)
        return done

    async def _append_letters(self, letters: list[DeadLetter], lost: set[int], turn: Turn) -> None:
        """The letters their DLQ_EVENTS channels have not committed, appended and committed."""

        async def all_of_them(fresh: list[DeadLetter], committed: dict[int, int | None]) -> list[DeadLetter]:
            return fresh

        async def committed_now(appended: list[DeadLetter], result: Written) -> dict[int, int]:
            for partition, (count, message) in result.errors.items():  # a table altered since the worker made it
                if count:  # 0: rows committed while nobody watched, their errors not counted for us
                    log.error("sink: Snowpipe Streaming refused %d DLQ_EVENTS rows of partition %d (their letters go "
                              "to the DLQ topic all the same): %s", count, partition, message)
            return {partition: count for partition, (count, _) in result.errors.items()}

        if letters:
            await self._append(self.letters, turn, letters, letter_stream_row, lost, all_of_them, committed_now)
        else:
            turn.handed[self.letters] = None  # nothing of this batch's for the next one to follow

    async def _append(self, writer: StreamingWriter, turn: Turn, items: Sequence[R],
                      row: Callable[[R, str], StreamRow],
                      lost: set[int], narrow: Callable[[list[R], dict[int, int | None]], Awaitable[list[R]]],
                      committed_now: Callable[[list[R], Written], Awaitable[dict[int, int]]],
                      refused_among: Callable[[list[R]], Awaitable[None]] | None = None) -> None:
        """Append the items above their channels' committed offsets (as `narrow` keeps them), in the batch's turn,
        and wait for the commit, through outages and fencing; `committed_now` is told what each round committed and
        says how many of the errors reported were the batch's own; `refused_among` is given, once, the replays
        that may be rows the service refused before the channel was opened here. Partitions fenced out that
        another worker holds now are added to `lost`."""
        backoff = Backoff("Snowflake", self.retry, self.stopping, contract.count_snowflake_retry)  # Snowpipe Streaming
        held: Held = {}  # fenced out, still assigned to us
        unseen: list[R] = []  # appended, but the wait for their commit failed: stored or refused, nobody knows yet
        looked_up: set[int] = set()  # partitions whose replays went to `refused_among`
        while True:
            self.fencing.settle(writer, held, lost)
            partitions = {i.partition for i in items} - lost - held.keys()
            assignments = self.fencing.assignments.copy()  # a rebalance during the write changes them
            generation = writer.generation
            try:
                async with writer.turn:
                    await writer.turn.wait_for(lambda: turn.may_append(writer))
                    if turn.previous_failed():
                        raise SinkStopped("the batch before this one was not stored")
                    generation, epoch = writer.generation, writer.epoch
                    await self._tables.run(lambda: self._in_warehouse(self.warehouse.bootstrap))
                    committed = await writer.committed(partitions, partial(self._table_mark, writer))
                    if writer.other_lives:
                        contract.new_life(self.topic, ", ".join(sorted(writer.other_lives)), writer.topic_id)
                        writer.other_lives.clear()
                    lost |= partitions - committed.keys()  # fenced out by an earlier batch, not assigned since
                    covered = [i for i in unseen if i.partition in committed
                               and i.offset <= contract.or_minus_one(committed[i.partition])]
                    suspect = writer.refused_before_open(committed.keys() - looked_up) if refused_among else {}
                    acknowledged = {p: self.kafka_committed(p) or 0 for p in suspect}  # below: stored or lettered
                    own = {id(i) for i in covered}
                    replays = [i for i in items if i.partition in suspect
                               and acknowledged[i.partition] <= i.offset <= suspect[i.partition] and id(i) not in own]
                    handed = writer.handed_over(committed)  # the batch before may carry the same events
                    fresh = await narrow([i for i in items if i.partition in handed
                                          and i.offset > handed[i.partition]], committed)
                    unseen = covered + fresh  # the covered ones until looked up, the fresh ones until seen committed
                    now = ingestion_time()  # once for the rows handed over together
                    appended = await writer.append([row(i, now) for i in fresh])
                    if not held and not appended.written.fenced and writer.epoch == epoch:
                        turn.handed[writer] = epoch  # all handed over, nothing reopened: the next may follow
                        writer.turn.notify_all()
                if covered:  # committed while nobody watched: which of them the service refused is found now
                    await committed_now(covered, Written(errors={i.partition: (0, UNWATCHED) for i in covered}))
                if replays and refused_among is not None:
                    await refused_among(replays)
                looked_up |= suspect.keys()
                unseen = fresh
                result = await writer.until_committed(appended)
            except (StreamingUnavailable, StreamingRefused, *WAREHOUSE_ERRORS) as exc:
                if isinstance(exc, (StreamingUnavailable, StreamingRefused)):  # a warehouse error appended nothing
                    await self._reset(writer, generation)
                await self._reset_warehouse(exc)
                metrics.snowflake_up.set(0)
                metrics.snowflake_failures.labels(reason="outage").inc()
                await backoff.retry("outage", exc, self.what_to_check if is_content_error(exc) else "")
                continue
            unseen = []
            writer.accounted(appended, await committed_now([i for i in fresh if i.partition not in result.fenced],
                                                           result))
            for partition in result.fenced:
                held.setdefault(partition, (time.monotonic(), assignments[partition]))
            if not held:
                break
            await backoff.retry("fenced", ChannelFenced(f"channels of partitions {sorted(held)} reopened elsewhere"))
        backoff.succeeded()

    async def _table_mark(self, writer: StreamingWriter, partition: int) -> int | None:
        """The highest offset of the partition the writer's table holds: for a channel that opened without a token
        (expired after 30 days unused, with it), what it committed before."""
        marks = await self._until_answered(self.warehouse.stored_marks, self.topic, writer.topic_id, partition)
        return marks.rows if writer is self.rows else marks.letters

    async def _reset(self, writer: StreamingWriter, generation: int) -> None:
        """What was in flight may or may not be committed: read the tokens again (once, whichever batch saw it)."""
        async with writer.turn:
            if writer.generation == generation:
                writer.reset()

    async def _rejections(self, appended: list[Accepted], result: Written) -> list[DeadLetter]:
        """The rows the service counted as errors, as dead letters: those of the reporting partitions not in the
        table (one SELECT through the warehouse per such partition: rare, since validation comes first)."""
        letters: list[DeadLetter] = []
        for partition, (_, message) in result.errors.items():
            rows = [a for a in appended if a.partition == partition]
            offsets = [a.offset for a in rows]
            stored = await self._until_answered(self.warehouse.stored_offsets, self.topic, self.rows.topic_id,
                                                partition, min(offsets), max(offsets))
            rejections = contract.rejected_letters([a for a in rows if a.offset not in stored], message)
            if rejections:
                log.warning("sink: Snowpipe Streaming refused %d rows of partition %d: %s", len(rejections),
                            partition, message)
            letters += rejections
        return letters

    async def _file_in_warehouse(self, letters: list[DeadLetter], stored: list[Accepted]) -> None:
        """The refused rows' letters in DLQ_EVENTS, the replayed letters marked (rare: most batches do neither, and
        the warehouse stays suspended)."""
        if letters:
            metrics.snowflake_failures.labels(reason="rejected").inc()
        replayed = replayed_sources(replayed_letters(stored))
        if letters or replayed:
            await self._until_answered(self.warehouse.file_letters, letter_rows(letters), replayed)

    async def _until_answered(self, call: Callable[..., T], *args: Any) -> T:
        return await self.retry.call("Snowflake", lambda: self._in_warehouse(call, *args), WAREHOUSE_ERRORS,
                                     reason="outage", stopping=self.stopping, counted=contract.count_snowflake_retry,
                                     failed=self._reset_warehouse)

    async def _reset_warehouse(self, exc: BaseException) -> None:
        async with self._warehouse_lock:
            self.warehouse.reset()

    async def _in_warehouse(self, call: Callable[..., T], *args: Any) -> T:
        async with self._warehouse_lock:
            return await asyncio.to_thread(call, *args)



async def _together(*steps: Awaitable[Any]) -> list[Any]:
    """Run the steps concurrently; when one fails, the others are cancelled and its error raised."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
