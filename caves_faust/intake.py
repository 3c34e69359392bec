"""The one agent on the sales topic: each event is read, decoded and validated once, then stored and counted.

It reads raw events with `noack_take`, so nothing is acknowledged (hence committed to Kafka) before its batch
is stored by the sink (dead letters on the DLQ, rows in Snowflake) and its stock movements are handed to the
producer, which Faust flushes before it commits. One agent rather than one per concern: Faust's per-message
cost and the validation are paid once per event, and no message is shared by two streams.
"""

from __future__ import annotations

import logging

from faust.types import StreamT

from caves_faust.app import abandon, app, sales_topic, settings
from caves_faust.sink import SinkStopped, sink
from caves_faust.stock import send_movements
from caves_faust.warehouse import describe

log = logging.getLogger(__name__)


@app.agent(sales_topic, name="sales_intake")
async def sales_intake(stream: StreamT) -> None:
    log.info("intake: writing %s to Snowflake %s", settings.sales_topic, describe(settings))
    async for events in stream.noack_take(settings.sink_max_batch, within=settings.sink_flush_seconds):
        try:
            accepted = await sink.flush(events)
            await send_movements((a.valid, a.event) for a in accepted)
        except SinkStopped as stopped:
            log.warning("intake: %s; the batch stays uncommitted and will be replayed", stopped)
            abandon(e.message for e in events)
            return
        except Exception as exc:
            # Faust would restart a crashed agent past these unacknowledged events, blocking commits:
            # stop the worker instead, so that it restarts from the committed offsets.
            log.exception("intake: unexpected failure, stopping the worker")
            abandon(e.message for e in events)
            await app.crash(exc)
            return
        for event in events:
            await stream.ack(event)
