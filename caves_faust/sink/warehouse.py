"""The sink in warehouse mode: each batch in one transaction, with the high-water marks that fence it.

`WarehouseSink.store` stores a classified batch durably, in three steps: read the partitions' high-water marks
(when Snowflake answers), deliver the dead letters not in the DLQ yet, then commit the rows above the marks in one
transaction with the marks' advance, so that a replay after a crash or a rebalance skips what is stored. It
returns only once done: an outage is retried with capped backoff (the intake takes no new batch meanwhile, so
memory stays bounded), a row Snowflake refuses for its content is dead-lettered, and a lock left by a dead worker
is released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Iterable, Protocol, Sequence

from faust.types import EventT

from caves_faust.dlq.writer import DeadLetters
from caves_faust.events.batch import Accepted, Classified
from caves_faust.events.letters import DeadLetter
from caves_faust.events.origin import Origin
from caves_faust.observability import metrics
from caves_faust.observability.logs import one_line
from caves_faust.sink.contract import (
    Once,
    Stored,
    count_inserted,
    count_snowflake_retry,
    deliver,
    new_life,
    or_minus_one,
    record_batch,
    rejected_letters,
)
from caves_faust.sink.replays import Copies, first_copies, for_stock, origins, replayed_letters
from caves_faust.sink.retry import Backoff, RetryPolicy
from caves_faust.sink.rows import letter_rows, replayed_sources, warehouse_row
from caves_faust.snowflake.connection import Batch
from caves_faust.snowflake.cost import WarehouseClock
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS, FencedOut, is_content_error, is_lock_conflict, is_outage

log = logging.getLogger(__name__)

# A row the table must accept: if it is refused too, the problem is the table or the account, not content.
PROBE_ROW = '{"m":{"probe":true},"c":{"event_type":"PROBE"}}'
BATCH_REFUSED = ("Snowflake refuses the batch's transaction but accepts each of its rows: a statement too large "
                 "(lower SINK_MAX_BATCH) or SINK_OFFSETS refusing the high-water marks")


class RowWriter(Protocol):
    """Where the rows go: transactions that insert rows and advance the partitions' high-water marks together.
    Blocking calls (the sink runs them in a thread); failures raise one of WAREHOUSE_ERRORS or FencedOut."""

    def bootstrap(self) -> None: ...

    def high_waters(self, topic: str, topic_id: str | None) -> dict[tuple[str | None, int], int]: ...

    def write(self, topic: str, topic_id: str | None, batch: Batch) -> None: ...

    def accepts(self, rows: list[str]) -> bool: ...

    def rejected(self, rows: list[str]) -> list[int]: ...

    def abort_stale_transactions(self, held_seconds: float) -> list[int]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class _Written:
    rows: list[Accepted]
    seconds: float
    replayed: Copies  # where the rows of the letters the batch replays are


@dataclass(frozen=True)
class _Refused:
    rows: list[Accepted]
    error: BaseException


@dataclass(frozen=True)
class _Failed:
    reason: str  # one of metrics.SNOWFLAKE_FAILURE_REASONS
    error: BaseException
    hint: str = ""


@dataclass(frozen=True)
class _Fenced:
    error: FencedOut


_Attempt = _Written | _Refused | _Failed | _Fenced

# How the streak's first log line puts each failure reason.
_STATES = {"outage": "unavailable", "lock_conflict": "blocked by another transaction's lock",
           "batch_refused": "refusing the whole batch"}


@dataclass
class WarehouseSink:
    writer: RowWriter
    dead_letters: DeadLetters
    topic: str
    retry: RetryPolicy
    stopping: Callable[[], bool]
    stale_lock_seconds: float
    what_to_check: str  # where the tables are and what to check when Snowflake refuses to create or read them
    # Where the rows of replayed dead letters are (blocking, like the writer's calls): see replays.py.
    find_replayed: Callable[[set[Origin]], Copies]
    clock: WarehouseClock | None = None  # the warehouse's up-time, for the cost estimate
    # partition -> highest offset stored in Snowflake (None: the partition has no row yet); absent: not read.
    _high_waters: dict[int, int | None] = field(default_factory=dict)
    _topic_id: str | None = None  # the life of the topic the marks are of (events.received.Received)
    _tables: Once = field(default_factory=Once)  # created (if missing) once
    _answering: bool = False  # whether the last Snowflake call succeeded

    batches_in_flight: ClassVar[int] = 1  # one transaction at a time: each batch reads the marks the last moved

    def forget(self, partitions: Iterable[int]) -> None:
        """On rebalance: re-read these partitions' high-water marks and DLQ tails before writing them again."""
        partitions = set(partitions)  # read twice: the rebalance handlers pass a generator
        for partition in partitions:
            self._high_waters.pop(partition, None)
        self.dead_letters.forget(partitions)

    async def store(self, batch: Classified) -> Stored:
        """Store a classified batch durably; returns only when done (retrying through outages)."""
        started = time.perf_counter()
        metrics.current_batch_size.set(len(batch.events))
        if batch.topic_id != self._topic_id:  # the topic was created again: none of the marks is of this one
            self.forget(set(self._high_waters))
            self._topic_id = batch.topic_id
        failure = await self._marks_if_reachable({e.message.partition for e in batch.events})
        dead_lettered = await self._deliver(batch.letters)
        backoff = Backoff("Snowflake", self.retry, self.stopping, count_snowflake_retry)
        if failure is not None:
            await self._failed(backoff, failure)
        outcome = replace(await self._write_rows(backoff, batch), dead_lettered=dead_lettered)
        metrics.snowflake_up.set(1)
        record_batch(batch, outcome, time.perf_counter() - started)
        return outcome

    async def _marks_if_reachable(self, partitions: set[int]) -> _Failed | None:
        """Step 1: the marks of these partitions, when Snowflake answered the last call: they bound the DLQ tail
        to read. Otherwise the dead letters go out without waiting for it (the tail is read to its bound); a
        failure is returned, for step 3 to report and retry before it tries again."""
        if self._answering:
            try:
                await self._read_marks(partitions)
            except WAREHOUSE_ERRORS as exc:
                return self._diagnose(exc)
        return None

    async def _deliver(self, letters: list[DeadLetter]) -> int:
        """Step 2 (and for the rows Snowflake refuses): the letters not in the DLQ yet, delivered."""
        marks = {p: or_minus_one(mark) for p, mark in self._high_waters.items()}  # unknown ones: -1
        return await deliver(self.dead_letters, letters, marks, self.retry, self.stopping)

    async def _write_rows(self, backoff: Backoff, batch: Classified) -> Stored:
        """Step 3: the rows above the marks committed with the marks' advance, refused rows dead-lettered."""
        refused: list[Accepted] = []
        letters = list(batch.letters)
        while True:
            refused_ids = {id(a) for a in refused}
            attempt = await self._attempt([a for a in batch.accepted if id(a) not in refused_ids], letters,
                                          batch.events)
            if isinstance(attempt, _Written):
                backoff.succeeded()
                kept = [a for a in batch.accepted if id(a) not in refused_ids]
                stored = for_stock(kept, attempt.replayed)  # the copies of a replayed letter not stored left out
                return Stored(stored, len(attempt.rows), len(kept) - len(attempt.rows), len(refused), 0,
                              attempt.seconds)
            if isinstance(attempt, _Fenced):
                log.warning("sink: %s; re-reading high-water marks", attempt.error)
                self.forget({e.message.partition for e in batch.events})
            elif isinstance(attempt, _Refused):
                metrics.snowflake_failures.labels(reason="rejected").inc()
                rejections = rejected_letters(attempt.rows, one_line(attempt.error))
                await self._deliver(rejections)
                letters += rejections
                refused.extend(attempt.rows)
            else:
                await self._failed(backoff, attempt)

    async def _attempt(self, accepted: list[Accepted], letters: list[DeadLetter], events: Sequence[EventT]
                       ) -> _Attempt:
        """One transaction: the rows and dead letters (for DLQ_EVENTS) not stored yet and the marks' advance."""
        try:
            await self._read_marks({e.message.partition for e in events})
        except WAREHOUSE_ERRORS as exc:
            return self._diagnose(exc)
        fresh = [a for a in accepted if a.offset > or_minus_one(self._high_waters[a.partition])]
        try:
            replayed = await asyncio.to_thread(self.find_replayed, origins(accepted))
        except WAREHOUSE_ERRORS as exc:
            return self._diagnose(exc)
        fresh = first_copies(fresh, replayed)
        new_letters = [d for d in letters if d.offset > or_minus_one(self._high_waters[d.partition])]
        batch = Batch([warehouse_row(a) for a in fresh], self._moves(events), letter_rows(new_letters),
                      replayed_sources(replayed_letters(fresh)))
        if not batch.high_waters:
            return _Written(fresh, 0.0, replayed)
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.writer.write, self.topic, self._topic_id, batch)
        except FencedOut as exc:
            return _Fenced(exc)
        except WAREHOUSE_ERRORS as exc:
            return await self._blame_rows(fresh, exc) if is_content_error(exc) else self._diagnose(exc)
        seconds = time.perf_counter() - started
        if self.clock is not None:
            self.clock.wrote(started, started + seconds)
        self._high_waters.update({p: new for p, (_, new) in batch.high_waters.items()})
        metrics.insert_duration.observe(seconds)
        metrics.last_commit_timestamp.set(time.time())
        count_inserted(fresh)
        if len(accepted) > len(fresh):
            metrics.duplicates_skipped.labels(topic=self.topic).inc(len(accepted) - len(fresh))
        return _Written(fresh, seconds, replayed)

    def _diagnose(self, exc: BaseException) -> _Failed:
        """Why a statement that is not a row write failed."""
        if is_lock_conflict(exc):
            return _Failed("lock_conflict", exc)
        # Refusing to create or read the tables is no content problem: the database or schema is missing or
        # not granted. The worker waits for it to be fixed, as for an outage.
        return _Failed("outage", exc, self.what_to_check if is_content_error(exc) else "")

    async def _blame_rows(self, fresh: list[Accepted], exc: BaseException) -> _Refused | _Failed:
        """The rows Snowflake refuses for their content, found by bisection; a failure when none is to blame."""
        try:
            if not await asyncio.to_thread(self.writer.accepts, [PROBE_ROW]):
                return _Failed("outage", exc, self.what_to_check)  # the table refuses even a plain row
            indexes = await asyncio.to_thread(self.writer.rejected, [warehouse_row(a) for a in fresh])
        except WAREHOUSE_ERRORS as probe_exc:
            return self._diagnose(probe_exc)
        if not indexes:
            return _Failed("batch_refused", exc, BATCH_REFUSED)
        return _Refused([fresh[i] for i in indexes], exc)

    async def _failed(self, backoff: Backoff, failure: _Failed) -> None:
        """Count a failed attempt and wait before the next; a lock held by a dead worker is released at once."""
        self._answering = False
        metrics.snowflake_up.set(0)
        metrics.snowflake_failures.labels(reason=failure.reason).inc()
        if failure.reason == "lock_conflict" and await self._abort_stale_transactions():
            return
        if failure.reason == "outage":
            self.writer.reset()
            # A partition's first mark is inserted, not advanced from a mark read (no fence): a first commit whose
            # answer the outage lost may have landed, so such a partition's mark is read again before the next try.
            for partition in [p for p, mark in self._high_waters.items() if mark is None]:
                del self._high_waters[partition]
        await backoff.retry(failure.reason, failure.error, failure.hint, state=_STATES[failure.reason])

    async def _abort_stale_transactions(self) -> bool:
        try:
            aborted = await asyncio.to_thread(self.writer.abort_stale_transactions, self.stale_lock_seconds)
        except WAREHOUSE_ERRORS as exc:
            log.warning("sink: could not list or abort stale transactions: %s", one_line(exc))
            if is_outage(exc):
                self.writer.reset()
            return False
        if aborted:
            log.warning("sink: lock conflict on the high-water marks: aborted %d transaction(s) of this user holding "
                        "the lock for over %.0fs, left open by a worker that died inside a write: %s",
                        len(aborted), self.stale_lock_seconds, ", ".join(map(str, aborted)))
        return bool(aborted)

    async def _read_marks(self, partitions: set[int]) -> None:
        await self._tables.run(lambda: asyncio.to_thread(self.writer.bootstrap))
        if not partitions <= self._high_waters.keys():
            try:
                every_life = await asyncio.to_thread(self.writer.high_waters, self.topic, self._topic_id)
            except BaseException:
                self._tables.undo()  # the tables may be missing or wrong: create what is missing next time
                raise
            stored = {p: mark for (life, p), mark in every_life.items() if life == self._topic_id}
            others = {life for life, p in every_life if life != self._topic_id and p in partitions}
            if others and not stored.keys() & partitions:
                new_life(self.topic, ", ".join(sorted(map(str, others))), self._topic_id)
            for partition in partitions - self._high_waters.keys():
                self._high_waters[partition] = stored.get(partition)
        self._answering = True

    def _moves(self, events: Sequence[EventT]) -> dict[int, tuple[int | None, int]]:
        """partition -> (stored high-water, new high-water) for partitions this batch moves forward."""
        newest: dict[int, int] = {}
        for event in events:
            partition, offset = event.message.partition, event.message.offset
            newest[partition] = max(offset, newest.get(partition, -1))
        return {
            p: (self._high_waters[p], offset)
            for p, offset in newest.items() if offset > or_minus_one(self._high_waters[p])
        }
