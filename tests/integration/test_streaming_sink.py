"""The streaming sink with two batches in flight, against an embedded Snowflake's Snowpipe Streaming (no Kafka,
no worker): what a batch may count as stored when it relies on rows the batch before it handed over."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any, Callable, cast

import pytest
import snowflake.connector
from faust.events import Event

from caves_faust.devstack.process import free_port
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.intake.classify import classify
from caves_faust.sink.channels import StreamingWriter
from caves_faust.sink.fencing import Fencing
from caves_faust.sink.retry import RetryPolicy
from caves_faust.sink.streaming import StreamingSink
from caves_faust.snowflake.connection import StoredMarks
from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import StreamingClient
from caves_faust.snowflake.tables import DDL
from tests.corpus import fake_event, order

pytestmark = pytest.mark.integration

DATABASE = "STREAMING_SINK_DB"
PIPE = "RAW_EVENTS_STREAM-STREAMING"
PREFIX = "caves-faust_sales_events"
PARTITION = 3
# The embedded Snowflake of this test commits appends only after this long: time enough to fence the first batch
# out of its channel after its append and before its commit, whatever the machine's load.
COMMIT_SECONDS = 20


@pytest.fixture
def embedded(tmp_path):
    server = EmbeddedSnowflake("snowflake", tmp_path / "snowflake", free_port(),
                               streaming_commit_seconds=COMMIT_SECONDS)
    server.start()
    try:
        with server_connection(server) as conn, conn.cursor() as cur:
            cur.execute(DDL[0])
        yield server
    finally:
        server.stop()


def server_connection(server: EmbeddedSnowflake) -> Any:
    return snowflake.connector.connect(account="embedded", user="test", password="test", host="127.0.0.1",
                                       port=server.port, protocol="http", database=DATABASE, schema="RAW_DATA")


def client(server: EmbeddedSnowflake) -> StreamingClient:
    return StreamingClient(Credentials(f"http://127.0.0.1:{server.port}", "http", None), DATABASE, "RAW_DATA", PIPE,
                           timeout_seconds=10)


def event(offset: int) -> Event:
    payload = json.dumps(order(offset, product=1000 + offset)).encode()
    return fake_event(PARTITION, offset, payload, key=b"k", timestamp=1_796_000_000.0 + offset)


def sink(ours: StreamingClient, owned: set[int]) -> StreamingSink:
    # No refused row, no replay; channels without a token are new ones (the table is empty).
    warehouse = cast(Any, SimpleNamespace(bootstrap=lambda: None, reset=lambda: None,
                                          stored_marks=lambda topic, topic_id, partition: StoredMarks(None, None)))
    no_letters = cast(Any, SimpleNamespace(forget=lambda partitions: None))  # the batches carry none
    return StreamingSink(StreamingWriter(ours, PREFIX, COMMIT_SECONDS * 2), StreamingWriter(ours, "letters", 30),
                         warehouse, no_letters, "sales_events", RetryPolicy(1, first_seconds=0.1),
                         stopping=lambda: False, kafka_committed=lambda partition: None, what_to_check="",
                         fencing=Fencing(owned=lambda: owned, rebalancing=lambda: False, wait_seconds=30))


async def until(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_batch_skipping_rows_the_one_before_handed_over_gives_up_their_partition_with_it(embedded):
    # After a rebalance Faust may deliver the same events in two batches in flight: the second skips what the first
    # handed over. When the partition then goes to another worker before the first batch's commit (the new owner's
    # open discards its rows), the second must not count those events as stored either: the stock would apply
    # their movements, then skip as replays the new owner's movements of the first batch's events.
    ours, theirs = client(embedded), client(embedded)
    owned = {PARTITION}
    streaming = sink(ours, owned)
    events = [event(n) for n in range(5)]
    tasks: list[asyncio.Task] = []
    try:
        first = asyncio.create_task(streaming.store(classify(events)))
        tasks.append(first)
        channels = streaming.rows._channels
        await until(lambda: PARTITION in channels and channels[PARTITION].appended == 4, "the first batch's append")
        first_turn = streaming._last
        second = asyncio.create_task(streaming.store(classify(events)))  # the same events again
        tasks.append(second)
        await until(lambda: streaming._last is not first_turn, "the second batch to come in")
        second_turn = streaming._last
        await until(lambda: second_turn is not None and streaming.rows in second_turn.handed,
                    "the second batch to follow the first")

        owned.clear()  # a rebalance gives the partition to another worker, which opens its channel
        streaming.forget({PARTITION})
        await StreamingWriter(theirs, PREFIX, 30).committed({PARTITION})

        first_stored, second_stored = await asyncio.wait_for(asyncio.gather(first, second), COMMIT_SECONDS)
    finally:
        for task in tasks:
            task.cancel()
        await ours.close()
        await theirs.close()

    with server_connection(embedded) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM RAW_EVENTS_STREAM")
        assert cur.fetchone() == (0,)  # the first batch's rows were discarded by the reopen
    for outcome in (first_stored, second_stored):
        assert (outcome.stored, outcome.abandoned) == ([], frozenset({PARTITION}))
