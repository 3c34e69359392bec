"""The one place that reads SINK_MODE: the sink the intake stores its batches through, wired to this worker's app.

Streaming mode: RAW_EVENTS_STREAM's and DLQ_EVENTS's channels (Snowpipe Streaming), the warehouse for what channels
cannot do (tables, refused rows, replays' copies). Warehouse mode: transactions on one connection."""

from __future__ import annotations

from functools import partial

from faust.types import TP

from caves_faust.dlq.writer import DeadLetters
from caves_faust.faust_app import app, dlq_topic, settings
from caves_faust.faust_patches import committed_offset
from caves_faust.sink.channels import StreamingWriter
from caves_faust.sink.contract import Sink
from caves_faust.sink.fencing import Fencing
from caves_faust.sink.replays import stored_copies
from caves_faust.sink.retry import RetryPolicy
from caves_faust.sink.streaming import StreamingSink
from caves_faust.sink.warehouse import WarehouseSink
from caves_faust.snowflake.connection import Warehouse, what_to_check
from caves_faust.snowflake.cost import WarehouseClock
from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import StreamingClient


def build_sink() -> Sink:
    """The sink SINK_MODE names, for the sales topic of this worker's app."""
    dead_letters = DeadLetters(dlq_topic, settings.sales_topic, settings.kafka_bootstrap)
    retry = RetryPolicy(settings.sink_retry_max_seconds)
    if settings.sink_mode == "streaming":
        credentials = Credentials.from_settings(settings)

        def channels(pipe: str) -> StreamingWriter:
            """One channel per source partition and consumer group on the pipe: <app id>_<topic>_<partition>."""
            client = StreamingClient(credentials, settings.snowflake_database, settings.snowflake_schema, pipe,
                                     settings.snowflake_timeout_seconds)
            return StreamingWriter(client, f"{settings.app_id}_{settings.sales_topic}",
                                   settings.snowflake_timeout_seconds)

        return StreamingSink(
            channels(settings.snowflake_pipe), channels(settings.snowflake_dlq_pipe), Warehouse(settings), dead_letters,
            settings.sales_topic, retry, stopping=lambda: app.should_stop,
            kafka_committed=lambda partition: committed_offset(app, TP(settings.sales_topic, partition)),
            what_to_check=what_to_check(settings),
            fencing=Fencing(
                owned=lambda: {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.sales_topic},
                rebalancing=lambda: not app.flow_control.is_active(),
                wait_seconds=settings.session_timeout_seconds),
        )
    warehouse = Warehouse(settings)
    return WarehouseSink(
        warehouse, dead_letters, settings.sales_topic, retry,
        stopping=lambda: app.should_stop,
        stale_lock_seconds=settings.sink_stale_lock_seconds,
        what_to_check=what_to_check(settings),
        find_replayed=partial(stored_copies, warehouse),
        clock=WarehouseClock(settings.snowflake_auto_suspend_seconds, settings.warehouse_credits_per_hour),
    )
