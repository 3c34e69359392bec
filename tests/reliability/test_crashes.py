"""Workers dying: kill -9 mid-stream (once, twice in a row, inside a Snowflake write, between a batch's dead
letters and its rows) and SIGTERM."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from caves_faust.devstack.process import free_port
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.snowflake.tables import DDL
from tests.corpus import INVALID_CASES, cases, order
from tests.delivery import BackgroundProducer, Sent, assert_exactly_once, mixed_payloads, partition_offsets_delivered
from tests.harness import wait_until
from tests.reliability.faults import AppendTrap, CommitOfWrite, SnowflakeTrap, first_rows_insert

ABORTED = "aborting a transaction idle"

pytestmark = pytest.mark.integration


def test_kill_9_mid_stream_then_restart(pipeline, start_worker, sink_mode):
    worker = start_worker(SINK_MODE=sink_mode)
    producer = BackgroundProducer(pipeline, mixed_payloads(4000), Sent())
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")

    worker.kill()
    restarted = start_worker(SINK_MODE=sink_mode)
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


@pytest.fixture
def patient_snowflake(pipeline, tmp_path):
    """An embedded Snowflake of the pipeline's own that keeps a detached transaction for 300 s, as a real account
    does for 5 minutes or more: what releases it in a test is the worker, not the embedded Snowflake."""
    snowflake = EmbeddedSnowflake("patient-snowflake", tmp_path / "patient-snowflake", free_port(),
                                  detached_transaction_seconds=300)
    snowflake.start()
    pipeline.snowflake = snowflake
    yield snowflake
    snowflake.stop()


def test_kill_9_inside_a_snowflake_write_the_restart_aborts_the_transaction_left_open(
        pipeline, start_worker, patient_snowflake):
    # The first worker reaches Snowflake through a proxy that lets one batch transaction commit and withholds
    # the COMMIT of the second: when `held` is set, that transaction has advanced the high-water marks (holding
    # their lock) and inserted its rows, uncommitted, and the worker waits for the COMMIT answer. Killing it then
    # is killing it inside a Snowflake write, every time. Its dead letters are already on the DLQ topic.
    trap = SnowflakeTrap(patient_snowflake.port, CommitOfWrite(let_through=1))
    worker, producer = killed_once_held(pipeline, start_worker, trap, "no second sink transaction reached Snowflake",
                                        SINK_MODE="warehouse")
    killed_pid = worker.process.pid
    # Straight to Snowflake. Its first write meets the lock the killed transaction holds, older than 4 s by then.
    restarted = start_worker(SINK_STALE_LOCK_SECONDS="4", SNOWFLAKE_TIMEOUT_SECONDS="2", SINK_MODE="warehouse")
    sent = producer.join()

    print(assert_exactly_once(pipeline, sent, restarted))
    written = re.findall(rf"\[{killed_pid}\] \[INFO\] sink batch: events=\d+ rows=[1-9]", worker.log_text())
    assert len(written) == 1, "the write the worker was killed in completed"
    log = restarted.log_text()
    aborted = re.search(r"^\[([^]]+)\] .*lock conflict on the high-water marks: aborted 1 transaction", log, re.M)
    assert aborted, "the restarted worker did not abort the transaction left open"
    stored = re.search(r"^\[([^]]+)\] .*sink batch: events=\d+ rows=[1-9]", log[aborted.end():], re.M)
    assert stored and seconds_between(aborted.group(1), stored.group(1)) < 5, "no rows within seconds of the abort"
    assert "reason=outage" not in log  # a lock conflict is no outage
    assert ABORTED not in patient_snowflake.log_file.read_text()  # the embedded Snowflake's own bound played no part


def killed_once_held(pipeline, start_worker, trap: SnowflakeTrap, never: str, **env: str):
    """A worker behind `trap` while events flow, killed -9 as soon as the trap holds its request: (the killed
    worker, the producer still sending)."""
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), **env)
        producer = BackgroundProducer(pipeline, mixed_payloads(4000), Sent())
        assert trap.held.wait(90), never
        worker.kill()
    finally:
        trap.close()
    return worker, producer


def seconds_between(earlier: str, later: str) -> float:
    """Seconds between two of Faust's log timestamps (2026-12-01 09:00:00,123)."""
    parse = lambda stamp: datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return (parse(later) - parse(earlier)).total_seconds()


def test_kill_9_between_a_batchs_dead_letters_and_its_rows(pipeline, start_worker, stack):
    # Products above 999 are refused (a stricter table, as a DBA might declare it). One partition, one batch
    # (produced before the worker starts): rows, one the warehouse refuses, more rows, an invalid event, rows.
    pipeline.query(DDL[0].replace("PRODUCT_ID INTEGER", "PRODUCT_ID NUMBER(3, 0)"))
    corpus = (cases(order(n, product=100 + n) for n in range(5)) + cases([order(5, product=1049)], "snowflake_rejected")
              + cases(order(n, product=100 + n) for n in range(6, 9)) + [INVALID_CASES[0]]
              + cases(order(n, product=100 + n) for n in range(10, 15)))
    sent = Sent()
    sent.produce(pipeline, corpus, keys=[b"one-partition"] * len(corpus))
    # The worker dies once the batch's dead letter is delivered, as its rows are about to be inserted.
    trap = SnowflakeTrap(stack.snowflake.port, first_rows_insert)
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), SINK_MODE="warehouse")
        assert trap.held.wait(90), "the batch's rows never reached Snowflake"
        assert len(pipeline.dead_letters()) == 1
        worker.kill()
    finally:
        trap.close()
    restarted = start_worker(SINK_MODE="warehouse")

    # The refused row is dead-lettered on the replay, although its offset is below the letter already written.
    print(assert_exactly_once(pipeline, sent, restarted))


def test_kill_9_inside_a_streaming_append(pipeline, start_worker, stack):
    # Streaming: the first worker reaches Snowflake through a proxy that lets one append through and forwards the
    # second without its answer: those rows are appended and commit on the server a second later, while the
    # worker waits to hear of the append. Killing it then is killing it inside an append, every time: none of
    # the batch's events were acknowledged, and the restarted worker must skip what the channels committed.
    trap = AppendTrap(stack.snowflake.port, let_through=1)
    worker, producer = killed_once_held(pipeline, start_worker, trap, "no second append reached Snowflake",
                                        SINK_MODE="streaming")
    killed_pid = worker.process.pid
    restarted = start_worker(SINK_MODE="streaming")
    sent = producer.join()

    delivered = assert_exactly_once(pipeline, sent, restarted)
    print(delivered)
    assert not re.search(rf"\[{killed_pid}\] \[INFO\] sink batch: events=\d+ rows=[1-9]", worker.log_text())
    assert delivered.replays_skipped > 0  # the killed worker's appends committed: their events were skipped


def one_refused_row_on_one_partition(pipeline) -> Sent:
    """Ten orders on one partition, the one at offset 5 for a product the (stricter) table refuses: above 999."""
    pipeline.query(DDL[0].replace("PRODUCT_ID INTEGER", "PRODUCT_ID NUMBER(3, 0)"))
    corpus = (cases(order(n, product=100 + n) for n in range(5)) + cases([order(5, product=1049)], "snowflake_rejected")
              + cases(order(n, product=100 + n) for n in range(6, 10)))
    sent = Sent()
    sent.produce(pipeline, corpus, keys=[b"one-partition"] * len(corpus))
    return sent


def test_a_refused_row_that_committed_while_the_worker_could_not_watch_is_dead_lettered(pipeline, start_worker, stack):
    # Streaming, products above 999 refused by the table. The answer to the first append is withheld: its rows
    # commit on the server, one counted as an error, while the worker waits to hear of them, gives up after
    # SNOWFLAKE_TIMEOUT_SECONDS, reopens the channel and finds them all below its committed token.
    sent = one_refused_row_on_one_partition(pipeline)
    trap = AppendTrap(stack.snowflake.port, let_through=0)
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), SINK_MODE="streaming", SNOWFLAKE_TIMEOUT_SECONDS="5",
                              SINK_RETRY_MAX_SECONDS="2")
        assert trap.held.wait(90), "the batch's append never reached Snowflake"
        # The refused row is dead-lettered although the restarted channel's error count already includes it.
        print(assert_exactly_once(pipeline, sent, worker))
    finally:
        trap.close()


def test_a_refused_row_that_committed_just_before_a_kill_is_dead_lettered_by_the_restart(
        pipeline, start_worker, stack):
    # As above, but the worker is killed while it waits to hear of the append, once its rows committed: it never
    # learns which row was refused. The restart replays the events, its channel already covers them, and the
    # channel's last error reaches them: it looks up which of them are not in the table.
    sent = one_refused_row_on_one_partition(pipeline)
    trap = AppendTrap(stack.snowflake.port, let_through=0)
    try:
        worker = start_worker(SNOWFLAKE_PORT=str(trap.port), SINK_MODE="streaming")
        assert trap.held.wait(90), "the batch's append never reached Snowflake"
        wait_until(lambda: pipeline.row_count() == 9, 60, "the append's rows to commit")
        worker.kill()
    finally:
        trap.close()

    restarted = start_worker(SINK_MODE="streaming")
    print(assert_exactly_once(pipeline, sent, restarted))
    assert "refused by Snowpipe Streaming before the channel was reopened" in restarted.log_text()


def test_sigterm_flushes_commits_and_exits_cleanly(pipeline, start_worker, sink_mode):
    worker = start_worker(SINK_FLUSH_SECONDS="5", SINK_MODE=sink_mode)  # a long timer: SIGTERM lands with a full buffer
    producer = BackgroundProducer(pipeline, mixed_payloads(3000), Sent(), chunk=100, pause=0.05)
    wait_until(lambda: pipeline.row_count() > 0, 60, "the first rows")

    assert worker.terminate() == 0
    # Every event consumed was flushed (to Snowflake or the DLQ) and its offset committed: below the committed
    # offset of a partition, every offset is stored; at or above it, none.
    committed = pipeline.committed()
    delivered = partition_offsets_delivered(pipeline)
    assert committed and {p: set(range(end)) for p, end in committed.items()} == delivered

    sent = producer.join()
    restarted = start_worker(SINK_MODE=sink_mode)
    print(assert_exactly_once(pipeline, sent, restarted))
    assert not re.search(r"skipped_replays=[1-9]", restarted.log_text()), "the restart replayed stored events"
