"""What every sink promises the intake, and the steps both modes take the same way.

`Sink.store` returns only once a classified batch is stored durably, retrying through outages (the intake takes no
new batch meanwhile, so memory stays bounded): each valid event exactly once in RAW_EVENTS_STREAM, each invalid one
once in the DLQ topic and DLQ_EVENTS, a row Snowflake refuses for its content dead-lettered as `snowflake_rejected`.
What it returns says which events moved into the warehouse, for the stock. `forget` is told the partitions a
rebalance moved: their state is read again before they are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, ClassVar, Iterable, Mapping, Protocol

from aiokafka.errors import KafkaError

from caves_faust.dlq.writer import DeadLetters
from caves_faust.events.batch import Accepted, Classified
from caves_faust.events.letters import DeadLetter
from caves_faust.events.validation import InvalidEvent
from caves_faust.observability import metrics
from caves_faust.sink.retry import RetryPolicy

log = logging.getLogger(__name__)

# What a failed DLQ write raises: the letters are kept and sent again.
DLQ_ERRORS = (KafkaError, OSError, asyncio.TimeoutError, RuntimeError)


@dataclass(frozen=True)
class Stored:
    """What storing a batch did."""

    # The valid events now in the warehouse: Kafka's replays of stored ones included, the copies of a replayed
    # dead letter other than the one stored not (they must not move the stock).
    stored: list[Accepted]
    rows: int  # rows this store wrote
    skipped: int  # replays of stored rows
    rejected: int  # rows Snowflake refused, dead-lettered
    dead_lettered: int  # letters of invalid events delivered
    insert_seconds: float
    # Partitions another writer took over meanwhile (streaming): their events are not this worker's to acknowledge.
    abandoned: frozenset[int] = frozenset()


class Sink(Protocol):
    """Where the intake stores its batches (`sink.warehouse.WarehouseSink`, `sink.streaming.StreamingSink`)."""

    # How many batches `store` may be given before the first returns (called in batch order).
    batches_in_flight: ClassVar[int]

    async def store(self, batch: Classified) -> Stored: ...

    def forget(self, partitions: Iterable[int]) -> None: ...


class Once:
    """A setup step (creating the tables) run until it first succeeds, and again after `undo`."""

    def __init__(self) -> None:
        self.done = False

    async def run(self, step: Callable[[], Awaitable[None]]) -> None:
        if not self.done:
            await step()
            self.done = True

    def undo(self) -> None:
        """What the step made may be gone or wrong: run it again next time."""
        self.done = False


async def deliver(dead_letters: DeadLetters, letters: list[DeadLetter], marks: Mapping[int, int], retry: RetryPolicy,
                  stopping: Callable[[], bool]) -> int:
    """The letters not in the DLQ topic yet, sent, retrying until done (see `DeadLetters.send` for `marks`)."""
    if not letters:
        return 0
    return await retry.call("Kafka DLQ", lambda: dead_letters.send(letters, marks), DLQ_ERRORS, reason="dlq_write",
                            stopping=stopping, counted=lambda reason: metrics.dlq_retries.inc())


def rejected_letters(rows: Iterable[Accepted], message: str) -> list[DeadLetter]:
    """The rows Snowflake refused for their content, as dead letters."""
    return [DeadLetter(a.event, InvalidEvent("snowflake_rejected", message), topic_id=a.topic_id) for a in rows]


def count_inserted(rows: Iterable[Accepted]) -> None:
    """Rows now in RAW_EVENTS_STREAM, by event type (once per batch: a labelled counter's lookup costs)."""
    for event_type, count in Counter(a.valid.event.event_type for a in rows).items():
        metrics.events_inserted.labels(event_type=event_type).inc(count)


def record_batch(batch: Classified, outcome: Stored, store_seconds: float) -> None:
    """A stored batch in the metrics and in its log line (either mode)."""
    metrics.batch_size.observe(len(batch.events))
    metrics.batch_duration.observe(batch.seconds + store_seconds)
    metrics.current_batch_size.set(0)
    log.info(
        "sink batch: events=%d rows=%d dlq=%d rejected=%d skipped_replays=%d partitions=%d "
        "validate_ms=%.1f insert_ms=%.1f store_ms=%.1f",
        len(batch.events), outcome.rows, outcome.dead_lettered, outcome.rejected, outcome.skipped,
        len({e.message.partition for e in batch.events}),
        batch.seconds * 1000, outcome.insert_seconds * 1000, store_seconds * 1000,
    )


_lives_said: set[tuple[str, str | None]] = set()


def new_life(topic: str, old: str | None, new: str | None) -> None:
    """Say once per life that the sales topic was deleted and created again, and what the sink does about it."""
    if (topic, new) not in _lives_said:
        _lives_said.add((topic, new))
        log.warning("sink: topic %s was deleted and created again (topic id %s, was %s): its offsets restart at 0, "
                    "so its events are stored, and move the stock, as new ones from its start; the old topic's rows "
                    "stay in RAW_EVENTS_STREAM and its dead letters on the DLQ", topic, new, old)


def count_snowflake_retry(reason: str) -> None:
    metrics.snowflake_retries.labels(reason=reason).inc()


def or_minus_one(value: int | None) -> int:
    return -1 if value is None else value
