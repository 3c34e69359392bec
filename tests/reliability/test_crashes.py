"""Workers dying: kill -9 mid-stream (once, twice in a row, inside a Snowflake write) and SIGTERM."""

from __future__ import annotations

import re

import pytest

from caves_faust.devstack.harness import wait_until
from tests.delivery import BackgroundProducer, Sent, assert_exactly_once, mixed_payloads, partition_offsets_delivered
from tests.reliability.faults import SnowflakeCommitTrap, StreamingAppendTrap

ABORTED = "aborting a transaction idle"

pytestmark = pytest.mark.integration


def test_kill_9_mid_stream_then_restart(pipeline, start_worker):
    worker = start_worker()
    producer = BackgroundProducer(pipeline, mixed_payloads(4000), Sent())
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    worker.kill()
    restarted = start_worker()
    sent = producer.join()

    print(assert_exactly_once(pipeline, sent, restarted))


def test_kill_9_twice_in_a_row(pipeline, start_worker):
    worker = start_worker()
    producer = BackgroundProducer(pipeline, mixed_payloads(5000), Sent(), pause=0.15)
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    worker.kill()
    before = pipeline.row_count()
    second = start_worker()
    wait_until(lambda: pipeline.row_count() > before + 300, 60, "rows written by the second run")
    second.kill()
    third = start_worker()
    sent = producer.join()

    print(assert_exactly_once(pipeline, sent, third))


def test_kill_9_inside_a_snowflake_write(pipeline, start_worker, stack):
    # The first worker reaches Snowflake through a proxy that lets one batch transaction commit and withholds
    # the COMMIT of the second: when `held` is set, that transaction has advanced the high-water marks and
    # inserted its rows, uncommitted, and the worker waits for the COMMIT answer. Killing it then is
    # killing it inside a Snowflake write, every time. Its dead letters are already on the DLQ topic.
    trap = SnowflakeCommitTrap(stack.snowflake.port, let_through=1)
    aborted_before = stack.snowflake.log_file.read_text().count(ABORTED)
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), SINK_MODE="warehouse")
        producer = BackgroundProducer(pipeline, mixed_payloads(4000), Sent())
        assert trap.held.wait(90), "no second sink transaction reached Snowflake"
        worker.kill()
    finally:
        trap.close()
    killed_pid = worker.process.pid
    restarted = start_worker(SINK_MODE="warehouse")  # straight to the embedded Snowflake
    sent = producer.join()

    print(assert_exactly_once(pipeline, sent, restarted))
    written = re.findall(rf"\[{killed_pid}\] \[INFO\] sink batch: events=\d+ rows=[1-9]", worker.log_text())
    assert len(written) == 1, "the write the worker was killed in completed"
    # The embedded Snowflake rolled back the transaction the killed worker left open (as Snowflake does).
    assert stack.snowflake.log_file.read_text().count(ABORTED) > aborted_before


def test_kill_9_inside_a_streaming_append(pipeline, start_worker, stack):
    # Streaming: the first worker reaches Snowflake through a proxy that lets one append through and forwards the
    # second without its answer: those rows are appended and commit on the server a second later, while the
    # worker waits to hear of the append. Killing it then is killing it inside an append, every time: none of
    # the batch's events were acknowledged, and the restarted worker must skip what the channels committed.
    trap = StreamingAppendTrap(stack.snowflake.port, let_through=1)
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), SINK_MODE="streaming")
        producer = BackgroundProducer(pipeline, mixed_payloads(4000), Sent())
        assert trap.held.wait(90), "no second append reached Snowflake"
        worker.kill()
    finally:
        trap.close()
    killed_pid = worker.process.pid
    restarted = start_worker(SINK_MODE="streaming")
    sent = producer.join()

    delivered = assert_exactly_once(pipeline, sent, restarted)
    print(delivered)
    assert not re.search(rf"\[{killed_pid}\] \[INFO\] sink batch: events=\d+ rows=[1-9]", worker.log_text())
    assert delivered.replays_skipped > 0  # the killed worker's appends committed: their events were skipped


def test_sigterm_flushes_commits_and_exits_cleanly(pipeline, start_worker):
    worker = start_worker(SINK_FLUSH_SECONDS="5")  # a long timer: SIGTERM lands with a full buffer
    producer = BackgroundProducer(pipeline, mixed_payloads(3000), Sent(), chunk=100, pause=0.05)
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    assert worker.terminate() == 0
    # Every event consumed was flushed (to Snowflake or the DLQ) and its offset committed: below the committed
    # offset of a partition, every offset is stored; at or above it, none.
    committed = pipeline.committed()
    delivered = partition_offsets_delivered(pipeline)
    assert committed and {p: set(range(end)) for p, end in committed.items()} == delivered

    sent = producer.join()
    restarted = start_worker()
    print(assert_exactly_once(pipeline, sent, restarted))
    assert not re.search(r"skipped_replays=[1-9]", restarted.log_text()), "the restart replayed stored events"
