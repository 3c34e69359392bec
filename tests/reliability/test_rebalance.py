"""Rebalances under load: a second worker joins, takes half the partitions, then leaves with SIGTERM."""

from __future__ import annotations

import re

import pytest

from caves_faust.devstack.harness import wait_until
from tests.delivery import BackgroundProducer, Sent, assert_exactly_once, mixed_payloads

pytestmark = pytest.mark.integration


def test_second_worker_joins_then_leaves_while_events_flow(pipeline, start_worker):
    first = start_worker(0)
    producer = BackgroundProducer(pipeline, mixed_payloads(30_000), Sent(), chunk=50)
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    second = start_worker(1)  # returns once the group gave it partitions: first rebalance
    wait_until(lambda: re.search(r"sink batch: events=\d+ rows=[1-9]", second.log_text()), 60,
               "the second worker to write rows")
    assert second.terminate() == 0  # second rebalance: the first worker takes every partition back
    wait_until(lambda: first.log_text().count("Setting newly assigned partitions") >= 3, 60,
               "the first worker to take the partitions back")
    before = pipeline.row_count()
    wait_until(lambda: pipeline.row_count() > before + 300, 60, "rows after the second worker left")
    sent = producer.stop()

    print(assert_exactly_once(pipeline, sent, first))
