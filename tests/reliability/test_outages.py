"""What the worker depends on going away for a while: the Kafka broker, Snowflake, the DLQ topic."""

from __future__ import annotations

import re
import time

import pytest

from tests.delivery import Sent, assert_exactly_once, mixed_payloads
from tests.harness import wait_until
from tests.reliability.faults import set_topic_config

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30
# Retries at most this far apart, so that the test does not wait out the default 30 s cap once the outage is over.
RETRY_CAP = {"SINK_RETRY_MAX_SECONDS": "5"}


def ride_out(worker, seconds: float = OUTAGE_SECONDS) -> None:
    """The outage itself: the worker must stay up through it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert worker.process.poll() is None, f"the worker died during the outage:\n{worker.log_text()[-3000:]}"
        time.sleep(1)


def test_kafka_broker_down_for_30_seconds(pipeline, start_worker, stack, sink_mode):
    worker = start_worker(SINK_MODE=sink_mode, **RETRY_CAP)
    sent = Sent()
    sent.produce(pipeline, mixed_payloads(3000))
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    # The broker goes away with the worker mid-stream (events fetched, batches unflushed, offsets uncommitted);
    # it comes back on the same port with its data. The session's other tests use it afterwards.
    stack.kafka.stop()
    try:
        ride_out(worker)
    finally:
        stack.kafka.start(wait_seconds=120)
    sent.produce(pipeline, mixed_payloads(1000, start=3000))

    print(assert_exactly_once(pipeline, sent, worker, timeout=180))


def test_snowflake_down_for_30_seconds(pipeline, start_worker, stack, sink_mode):
    # Streaming: its REST endpoints are the embedded Snowflake's, down with it.
    worker = start_worker(SNOWFLAKE_TIMEOUT_SECONDS="5", SINK_MODE=sink_mode, **RETRY_CAP)
    sent = Sent()
    sent.produce(pipeline, mixed_payloads(1000))
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    stack.snowflake.stop()
    try:
        sent.produce(pipeline, mixed_payloads(1000, start=1000))
        wait_until(lambda: "Snowflake unavailable, retrying" in worker.log_text(), 30, "the outage to be noticed")
        status, metrics_text = worker.get("/metrics")
        assert status == 200 and re.search(r"^snowflake_up 0\.0$", metrics_text, re.M)
        ride_out(worker)
    finally:
        stack.snowflake.start()

    print(assert_exactly_once(pipeline, sent, worker))
    assert "Snowflake back after" in worker.log_text()


def test_dlq_unwritable_invalid_events_wait_for_it(pipeline, start_worker, stack):
    # The broker refuses every record bigger than 64 bytes on the DLQ topic (a topic-level max.message.bytes,
    # set with the admin client's AlterConfigs): each dead letter is refused with MessageSizeTooLargeError
    # while the topic stays readable, which the worker's DLQ tail scan needs.
    worker = start_worker()
    sent = Sent()
    sent.produce(pipeline, mixed_payloads(500))
    wait_until(lambda: len(pipeline.dead_letters()) == 10, 60, "the first dead letters")

    set_topic_config(stack.bootstrap, pipeline.dlq_topic, {"max.message.bytes": "64"})
    try:
        before = set(sent.payloads)
        sent.produce(pipeline, mixed_payloads(1000, start=500))
        _, invalid = sent.split()
        waiting = {c for c in invalid if c not in before}
        wait_until(lambda: "Kafka DLQ unavailable, retrying" in worker.log_text(), 60, "the DLQ write to fail")
        # For a while: no invalid event of the second part is acknowledged (its offset stays uncommitted)
        # and none reaches the DLQ.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            committed = pipeline.committed()
            assert all(committed.get(p, 0) <= offset for p, offset in waiting), (committed, sorted(waiting))
            time.sleep(1)
        assert len(pipeline.dead_letters()) == 10
    finally:
        set_topic_config(stack.bootstrap, pipeline.dlq_topic, {})

    print(assert_exactly_once(pipeline, sent, worker))
    assert "Kafka DLQ back after" in worker.log_text()
