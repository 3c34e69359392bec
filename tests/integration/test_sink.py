"""The Snowflake sink: every valid event exactly once in RAW_EVENTS_STREAM, with its content as sent, and what it
does when Snowflake refuses a row, a whole batch or its own tables. Crashes, outages and rebalances are
tests/reliability/."""

from __future__ import annotations

import json
import re
import time

import pytest

from caves_faust.snowflake.tables import DDL
from tests.corpus import cases, order, valid_events
from tests.delivery import Sent, assert_exactly_once, metric
from tests.harness import wait_until

pytestmark = pytest.mark.integration


def test_n_events_exactly_n_rows_with_content_as_sent(pipeline, start_worker, sink_mode):
    events = valid_events(3000)
    events[5]["deeply"] = {"nested": [{"undeclared": ["champ", "é", "🍾", None, 1.5e-7, 10**18]}]}
    events[6]["product_name"] = "Crémant d'Alsace « Réserve » \u2028 ' ; DROP TABLE RAW_EVENTS_STREAM; --"
    worker = start_worker(SINK_MODE=sink_mode)
    sent = Sent()
    sent.produce(pipeline, cases(events))

    assert_exactly_once(pipeline, sent, worker)
    metadata = pipeline.rows()[0][0]
    assert {"topic", "partition", "offset", "timestamp", "key"} <= set(metadata)


def test_a_row_snowflake_refuses_goes_to_the_dlq_and_the_others_are_stored(pipeline, start_worker, stack, sink_mode):
    # A stricter table than the one the sink creates, as a DBA might declare it: products above 999 are refused.
    stack.query(pipeline.database, DDL[0].replace("PRODUCT_ID INTEGER", "PRODUCT_ID NUMBER(3, 0)"))
    accepted = [order(n, product=100 + n) for n in range(30)]
    refused = order(99, product=1049)
    worker = start_worker(SINK_MODE=sink_mode)
    sent = Sent()
    sent.produce(pipeline, cases(accepted[:17]) + cases([refused], "snowflake_rejected") + cases(accepted[17:]))

    assert_exactly_once(pipeline, sent, worker)  # the refused order moves no stock: /stock/ has no product 1049
    [letter] = pipeline.dead_letters()
    assert letter["error_type"] == "snowflake_rejected" and "1049" in letter["error_message"]
    assert json.loads(letter["payload"]) == refused
    assert pipeline.row_count() == len(accepted)


def test_a_batch_refused_as_a_whole_is_retried_with_backoff_then_stored(pipeline, start_worker, stack):
    # SINK_OFFSETS as a DBA might have declared it, too narrow for the marks: the batch's transaction is refused
    # (its high-water mark, 149, does not fit) though Snowflake accepts each of its rows.
    stack.query(pipeline.database, DDL[1].replace("HIGH_WATER INTEGER", "HIGH_WATER NUMBER(2, 0)"))
    sent = Sent()
    sent.produce(pipeline, cases(valid_events(150)), keys=[b"one-partition"] * 150)
    worker = start_worker(SINK_RETRY_MAX_SECONDS="2", SINK_MODE="warehouse")  # streaming has no marks

    wait_until(lambda: "refusing the whole batch, retrying with backoff: reason=batch_refused" in worker.log_text(),
               60, "the refused batch to be logged")
    failures = metric(worker, "snowflake_failures_total")
    time.sleep(6)
    # Backing off (0.5, 1, 2, 2... s), not looping: it retried at most a handful of times meanwhile.
    assert metric(worker, "snowflake_failures_total") - failures <= 6
    assert metric(worker, 'snowflake_retries_total{reason="batch_refused"}') >= 1
    assert worker.log_text().count("reason=batch_refused") == 1  # logged once, not per retry
    assert pipeline.row_count() == 0

    stack.query(pipeline.database, "DROP TABLE SINK_OFFSETS")
    stack.query(pipeline.database, DDL[1])  # the table fixed: the next retry goes through
    assert_exactly_once(pipeline, sent, worker)
    assert "Snowflake back after" in worker.log_text()


def test_tables_snowflake_will_not_create_stop_nothing_and_say_what_to_check(pipeline, start_worker, stack, tmp_path):
    # A view where the sink keeps its high-water marks: reading them is refused before any row is built.
    stack.query(pipeline.database, "CREATE VIEW SINK_OFFSETS AS SELECT 1 AS X")
    sent = Sent()
    sent.produce(pipeline, cases(valid_events(100)))
    # A data directory whose parents do not exist yet is created with them.
    worker = start_worker(F_DATADIR=str(tmp_path / "not" / "yet" / "there"), SINK_MODE="warehouse")  # the marks

    line = wait_until(lambda: re.search(r"^.*Snowflake unavailable, retrying with backoff: reason=outage .*$",
                                        worker.log_text(), re.M), 60, "the refusal to be logged")
    assert f"{pipeline.database}.RAW_DATA" in line.group(0) and "check that the database and schema" in line.group(0)
    status, text = worker.get("/metrics")
    assert re.search(r"^snowflake_up 0\.0$", text, re.M)
    assert "Traceback" not in worker.log_text() and worker.process.poll() is None

    stack.query(pipeline.database, "DROP VIEW SINK_OFFSETS")  # the sink creates the table it needs at its next try
    assert_exactly_once(pipeline, sent, worker)
