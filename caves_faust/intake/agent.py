"""The one reader of the sales topic: each event is read, decoded and validated once, then stored and counted.

It takes the raw events a fetched batch at a time (`App.batches`: past Faust's per-message delivery, which cost
more than everything else the worker does per event), unacknowledged, so nothing is committed to Kafka before its
batch is stored by the sink (dead letters on the DLQ, rows in Snowflake) and its stock movements are handed to the
producer, which Faust flushes before it commits. One reader rather than one per concern: the validation is paid
once per event.

The next batch is read and classified while one is being written. The sink takes up to `batches_in_flight` at
once (the streaming sink appends the next ones while the ones before wait for their commit), as long as their
events add up to at most SINK_IN_FLIGHT_BYTES as received (one batch always goes), and stores them in offset
order, each acknowledged once stored: at most one batch more than that is held in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Sequence, Set

from faust.types import TP, AppT, EventT

from caves_faust.events.batch import Classified
from caves_faust.faust_app import app, sales_topic, settings
from caves_faust.faust_patches import abandon, acknowledge
from caves_faust.intake.classify import classify, session_stats
from caves_faust.intake.topic_life import TopicLife
from caves_faust.intake.wiring import build_sink
from caves_faust.sink.retry import RetryPolicy, SinkStopped
from caves_faust.snowflake.connection import describe
from caves_faust.stock.tables import send_movements

log = logging.getLogger(__name__)

sink = build_sink()
sales_batches = app.batches(sales_topic, max_buffered=settings.sink_max_batch)
topic_life = TopicLife(settings.kafka_bootstrap, settings.sales_topic, RetryPolicy(settings.sink_retry_max_seconds),
                       stopping=lambda: app.should_stop)


@app.task
async def sales_intake() -> None:
    log.info("intake: writing %s to Snowflake %s", settings.sales_topic, describe(settings))
    storing: deque[tuple[asyncio.Task[bool], int]] = deque()  # (its store, its events' bytes), in batch order
    in_flight = 0  # the bytes of the batches in `storing`
    try:
        async for events in sales_batches.take(settings.sink_max_batch, within=settings.sink_flush_seconds):
            try:
                topic_id = await topic_life.current()
            except SinkStopped:
                abandon(app, (e.message for e in events))
                return
            try:
                batch = classify(events, topic_id)
            except Exception as exc:
                await _stop_worker(exc, events)
                return
            while storing and (len(storing) == sink.batches_in_flight
                               or in_flight + batch.size_bytes > settings.sink_in_flight_bytes):
                stored, held = storing.popleft()
                in_flight -= held
                if not await stored:
                    abandon(app, (e.message for e in events))
                    return
            in_flight += batch.size_bytes
            storing.append((asyncio.create_task(_store(batch, storing[-1][0] if storing else None)),
                            batch.size_bytes))
    finally:
        # Stopping (or crashed): the batches being stored stay unacknowledged, hence replayed, and the sink's
        # high-water marks (or channels' offset tokens) make that replay write each event once.
        for task, _ in storing:
            task.cancel()


async def _store(batch: Classified, previous: asyncio.Task[bool] | None) -> bool:
    """Store a batch, hand the stock movements of its stored events over once the batch before has handed its
    own (the stock applies a source partition's movements in offset order, skipping older ones as replays), then
    acknowledge it; False when the worker must stop."""
    try:
        outcome = await sink.store(batch)
        if previous is not None and not await asyncio.shield(previous):
            raise SinkStopped("the batch before this one was not stored")
        await send_movements(((a.valid, a.event) for a in outcome.stored), batch.topic_id)
        abandon(app, (e.message for e in batch.events if e.message.partition in outcome.abandoned))
    except SinkStopped as stopped:
        log.warning("intake: %s; the batch stays uncommitted and will be replayed", stopped)
        abandon(app, (e.message for e in batch.events))
        return False
    except Exception as exc:
        await _stop_worker(exc, batch.events)
        return False
    acknowledge(app, (e.message for e in batch.events if e.message.partition not in outcome.abandoned))
    return True


async def _stop_worker(exc: Exception, events: Sequence[EventT]) -> None:
    """Faust would restart a crashed agent past these unacknowledged events, blocking commits: stop the
    worker instead, so that it restarts from the committed offsets."""
    log.error("intake: unexpected failure, stopping the worker", exc_info=exc)
    abandon(app, (e.message for e in events))
    await app.crash(exc)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _forget_revoked(app: AppT, revoked: Set[TP], **kwargs: object) -> None:
    sink.forget(tp.partition for tp in revoked if tp.topic == settings.sales_topic)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def _forget_assigned(app: AppT, assigned: Set[TP], **kwargs: object) -> None:
    topic_life.stale = True  # the topic may have been deleted and created again meanwhile
    sink.forget(tp.partition for tp in assigned if tp.topic == settings.sales_topic)


@app.timer(settings.stats_log_seconds)
async def _log_session_totals() -> None:
    session_stats.log_if_changed()
