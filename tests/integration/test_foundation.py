"""The harness itself: a real broker, the embedded Snowflake, a real worker, the connector."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest

from caves_faust.devstack.kafka import LocalKafka
from caves_faust.devstack.process import free_port
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.kafka.admin import partition_count, wait_for_topics
from tests.corpus import order
from tests.harness import Stack, wait_until

pytestmark = pytest.mark.integration


def test_event_produced_to_kafka_lands_as_a_row_in_snowflake(pipeline, start_worker):
    start_worker()
    sent = [order(line, 1001, customer_id=7, product_name="Château Test") for line in (1, 2)]
    coordinates = pipeline.produce(sent)

    rows = wait_until(lambda: len(pipeline.rows()) == 2 and pipeline.rows(), 60, "2 rows in RAW_EVENTS_STREAM")

    assert sorted((r[1]["order_line_id"] for r in rows)) == [1, 2]
    assert sorted((m["partition"], m["offset"]) for m, _ in rows) == sorted(coordinates)
    assert all(m["topic"] == pipeline.sales_topic for m, _ in rows)
    assert sorted(rows, key=lambda r: r[1]["order_line_id"])[0][1] == sent[0]


def test_waiting_for_topics_names_those_the_broker_does_not_show_and_creates_none(stack):
    created, absent = f"visible_{time.time_ns()}", f"absent_{time.time_ns()}"
    stack.create_topics([created], 3)

    assert asyncio.run(wait_for_topics(stack.bootstrap, {created}, 30)) == set()
    assert asyncio.run(wait_for_topics(stack.bootstrap, {created, absent}, 1)) == {absent}
    assert asyncio.run(partition_count(stack.bootstrap, absent)) == 0


def test_the_first_assignment_holds_every_topic_the_worker_reads(pipeline, start_worker):
    # Faust creates the stock-movements topic and the changelogs just before subscribing; a topic the broker
    # did not show yet was left out of the assignment ("Ignoring missing topic").
    log = start_worker().log_text()

    assignment = log[log.index("Setting newly assigned partitions"):]
    assert "Ignoring missing topic" not in log
    for topic in ("-stock-movements", "-stock-changelog", "-product_window-changelog", "_sales_events"):
        assert re.search(rf"{re.escape(pipeline.name + topic)} +\| \{{0-7\}}", assignment), topic


def test_local_services_start_idempotently_and_keep_snowflake_data(tmp_path):
    kafka = LocalKafka("kafka", tmp_path / "kafka", free_port(), free_port())
    snowflake = EmbeddedSnowflake("snowflake", tmp_path / "snowflake", free_port())
    stack_view = Stack.__new__(Stack)
    stack_view.kafka, stack_view.snowflake = kafka, snowflake
    try:
        assert kafka.start(wait_seconds=120) is True
        assert snowflake.start() is True
        assert kafka.start() is False and snowflake.start() is False  # `make up` twice: nothing new
        stack_view.query("KEEP_DB", "CREATE TABLE IF NOT EXISTS KEPT (ID INTEGER)")
        stack_view.query("KEEP_DB", "INSERT INTO KEPT VALUES (42)")

        assert snowflake.stop() is True and kafka.stop() is True  # `make down`
        assert not snowflake.running() and not kafka.running()
        assert snowflake.stop() is False  # nothing left to stop

        assert kafka.start(wait_seconds=120) is True and snowflake.start() is True  # `make up` again
        assert stack_view.query("KEEP_DB", "SELECT ID FROM KEPT") == [(42,)]
    finally:
        snowflake.stop()
        kafka.stop()


def test_a_server_that_died_is_reported_with_its_last_log_lines_and_started_again(tmp_path):
    snowflake = EmbeddedSnowflake("snowflake", tmp_path / "snowflake", free_port())
    stack_view = Stack.__new__(Stack)
    stack_view.kafka, stack_view.snowflake = LocalKafka("kafka", tmp_path / "kafka", free_port()), snowflake
    try:
        snowflake.start()
        assert stack_view.revive() == []
        killed = snowflake.started.pid
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: snowflake.started.poll() is not None, 30, "the server to die")

        [death] = stack_view.revive()
        assert death.startswith(f"snowflake (pid {killed}) killed by signal 9 without being stopped")
        assert f"last lines of {snowflake.log_file}" in death
        assert snowflake.pid() not in (None, killed)  # started again
        assert stack_view.query("REVIVED_DB", "SELECT 42") == [(42,)]

        assert snowflake.stop() is True and stack_view.revive() == []  # stopped on purpose: left stopped
        assert not snowflake.running()
    finally:
        snowflake.stop()
