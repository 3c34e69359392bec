"""The Snowflake sink: every valid event exactly once in RAW_EVENTS_STREAM, whatever fails on the way."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from caves_faust.devstack.harness import Pipeline, wait_until
from caves_faust.warehouse import DDL
from tests.integration.events import encoded, expected_stock, order, valid_events

pytestmark = pytest.mark.integration


class BackgroundProducer:
    """Produces `payloads` in chunks at a steady pace while the test breaks things."""

    def __init__(self, pipeline: Pipeline, payloads: list[bytes], chunk: int = 100, pause: float = 0.1):
        self.pipeline, self.payloads, self.chunk, self.pause = pipeline, payloads, chunk, pause
        self.coordinates: list[tuple[int, int]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, len(self.payloads), self.chunk):
                self.coordinates += self.pipeline.produce(self.payloads[start:start + self.chunk])
                time.sleep(self.pause)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self) -> list[tuple[int, int]]:
        self.thread.join(120)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.coordinates


def assert_exactly_once(pipeline: Pipeline, coordinates: list[tuple[int, int]], sent: list[dict]) -> None:
    rows = pipeline.rows()
    stored = [(m["partition"], m["offset"]) for m, _ in rows]
    assert len(stored) == len(set(stored)), f"{len(stored) - len(set(stored))} events doubled"
    assert set(stored) == set(coordinates), f"{len(set(coordinates) - set(stored))} events lost"
    sent_at = dict(zip(coordinates, sent))
    assert all(content == sent_at[(m["partition"], m["offset"])] for m, content in rows)


def all_rows_in(pipeline: Pipeline, expected: int):
    # Not the group's lag: after a rebalance Faust commits again only once a new event is acked, so with
    # no traffic left the committed offset may trail what is stored (harmless: replays are skipped).
    return lambda: pipeline.row_count() >= expected


def assert_stock(worker, sent: list[dict]) -> None:
    expected = expected_stock(sent)
    wait_until(lambda: worker.get("/stock/")[0] == 200 and
               {p["product_id"]: p["stock"] for p in worker.get("/stock/")[1]["products"]} == expected,
               60, "stock equal to the recomputation")


def test_n_events_exactly_n_rows_with_content_as_sent(pipeline, start_worker):
    sent = valid_events(3000)
    sent[5]["deeply"] = {"nested": [{"undeclared": ["champ", "é", "🍾", None, 1.5e-7, 10**18]}]}
    sent[6]["product_name"] = "Crémant d'Alsace « Réserve » \u2028 ' ; DROP TABLE RAW_EVENTS_STREAM; --"
    worker = start_worker()
    coordinates = pipeline.produce(encoded(sent))

    wait_until(all_rows_in(pipeline, len(sent)), 120, f"{len(sent)} rows")

    assert_exactly_once(pipeline, coordinates, sent)
    metadata = pipeline.rows()[0][0]
    assert {"topic", "partition", "offset", "timestamp", "key"} <= set(metadata)
    assert_stock(worker, sent)


def test_kill_9_mid_stream_then_restart(pipeline, start_worker):
    worker = start_worker()
    sent = valid_events(4000)
    producer = BackgroundProducer(pipeline, encoded(sent))
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    worker.kill()
    restarted = start_worker()
    coordinates = producer.join()
    wait_until(all_rows_in(pipeline, len(sent)), 180, f"{len(sent)} rows after the restart")

    assert_exactly_once(pipeline, coordinates, sent)
    assert_stock(restarted, sent)


def test_snowflake_down_for_30_seconds(pipeline, start_worker, stack):
    worker = start_worker(SNOWFLAKE_TIMEOUT_SECONDS="5")
    first = valid_events(1000)
    coordinates = pipeline.produce(encoded(first))
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    stack.snowflake.stop()
    outage_end = time.monotonic() + 30
    try:
        second = valid_events(1000, start=1000)
        coordinates += pipeline.produce(encoded(second))
        wait_until(lambda: "Snowflake unavailable, retrying" in worker.log_text(), 30, "the outage to be noticed")
        status, metrics_text = worker.get("/metrics")
        assert status == 200 and re.search(r"^snowflake_up 0\.0$", metrics_text, re.M)
        while time.monotonic() < outage_end:  # the outage itself lasts 30 s; the worker must ride it out
            assert worker.process.poll() is None, "the worker died during the outage"
            time.sleep(1)
    finally:
        stack.snowflake.start()

    wait_until(all_rows_in(pipeline, 2000), 120, "all rows after Snowflake came back")
    assert_exactly_once(pipeline, coordinates, first + second)
    assert "Snowflake back after" in worker.log_text()
    assert_stock(worker, first + second)


def test_sigterm_flushes_commits_and_exits_cleanly(pipeline, start_worker):
    worker = start_worker(SINK_FLUSH_SECONDS="5")  # a long timer: SIGTERM lands with a full buffer
    sent = valid_events(3000)
    producer = BackgroundProducer(pipeline, encoded(sent), chunk=100, pause=0.05)
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    assert worker.terminate() == 0
    rows = pipeline.rows()
    stored: dict[int, int] = {}
    for metadata, _ in rows:
        stored[metadata["partition"]] = stored.get(metadata["partition"], 0) + 1
    # Every event consumed was flushed and its offset committed: committed offset == rows of that partition.
    assert pipeline.committed() == stored

    coordinates = producer.join()
    restarted = start_worker()
    wait_until(all_rows_in(pipeline, len(sent)), 120, f"{len(sent)} rows after the restart")
    assert_exactly_once(pipeline, coordinates, sent)
    assert not re.search(r"skipped_replays=[1-9]", restarted.log_text()), "the restart replayed stored events"


def test_a_row_snowflake_refuses_goes_to_the_dlq_and_the_others_are_stored(pipeline, start_worker, stack):
    # A stricter table than the one the sink creates, as a DBA might declare it: products above 999 are refused.
    stack.query(pipeline.database, DDL[0].replace("PRODUCT_ID INTEGER", "PRODUCT_ID NUMBER(3, 0)"))
    accepted = [order(n, product=100 + n) for n in range(30)]
    refused = order(99, product=1049)
    payloads = encoded(accepted[:17] + [refused] + accepted[17:])
    start_worker()
    coordinates = pipeline.produce(payloads)

    wait_until(lambda: pipeline.row_count() == len(accepted) and pipeline.dead_letters(), 90, "rows and dead letter")

    assert_exactly_once(pipeline, coordinates[:17] + coordinates[18:], accepted)
    [letter] = pipeline.dead_letters()
    assert letter["error_type"] == "snowflake_rejected" and "1049" in letter["error_message"]
    assert (letter["partition"], letter["offset"]) == coordinates[17]
    assert json.loads(letter["payload"]) == refused
