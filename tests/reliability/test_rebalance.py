"""Rebalances under load: a second worker joins, takes half the partitions, then leaves with SIGTERM; a zombie
whose partitions moved while it was frozen keeps appending."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.delivery import BackgroundProducer, Sent, assert_exactly_once, mixed_payloads
from tests.harness import wait_until
from tests.reliability.faults import AppendTrap

pytestmark = pytest.mark.integration


def test_second_worker_joins_then_leaves_while_events_flow(pipeline, start_worker, sink_mode):
    first = start_worker(0, SINK_MODE=sink_mode)
    producer = BackgroundProducer(pipeline, mixed_payloads(30_000), Sent(), chunk=50)
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    second = start_worker(1, SINK_MODE=sink_mode)  # returns once the group gave it partitions: first rebalance
    wait_until(lambda: re.search(r"sink batch: events=\d+ rows=[1-9]", second.log_text()), 60,
               "the second worker to write rows")
    assert second.terminate() == 0  # second rebalance: the first worker takes every partition back
    wait_until(lambda: first.log_text().count("Setting newly assigned partitions") >= 3, 60,
               "the first worker to take the partitions back")
    before = pipeline.row_count()
    wait_until(lambda: pipeline.row_count() > before + 300, 60, "rows after the second worker left")
    sent = producer.stop()

    print(assert_exactly_once(pipeline, sent, first))


def test_a_zombie_appending_after_its_partitions_moved_is_fenced_out(pipeline, start_worker, stack):
    # Streaming: the first worker's second append is parked in a proxy; the worker is frozen (SIGSTOP) until the
    # group gives every partition to a second worker, which reopens their channels; then the parked append goes
    # out, late, with the old continuation token, and the frozen worker wakes up to its answer.
    trap = AppendTrap(stack.snowflake.port, let_through=1, parked=True)
    try:
        zombie = start_worker(0, SINK_MODE="streaming", SNOWFLAKE_PORT=str(trap.port),  # its append waits long
                              SNOWFLAKE_TIMEOUT_SECONDS="300", SINK_STALE_LOCK_SECONDS="600")
        producer = BackgroundProducer(pipeline, mixed_payloads(3000), Sent())
        assert trap.held.wait(90), "no second append reached the proxy"
        os.kill(zombie.process.pid, signal.SIGSTOP)
        try:
            owner = start_worker(1, SINK_MODE="streaming")  # assigned once the group gives up on the zombie
            wait_until(lambda: re.search(r"sink batch: events=\d+ rows=[1-9]", owner.log_text()), 90,
                       "the new owner to write rows")
            trap.release()
        finally:
            os.kill(zombie.process.pid, signal.SIGCONT)
        wait_until(lambda: "fenced out of partitions" in zombie.log_text(), 60, "the zombie to know it is fenced out")
        sent = producer.join()
    finally:
        trap.close()

    print(assert_exactly_once(pipeline, sent, owner))
    assert "STALE_CONTINUATION_TOKEN_SEQUENCER" in zombie.log_text()  # its late append was refused
