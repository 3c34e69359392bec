"""`faust -A caves_faust audit` against a real pipeline: clean after a kill -9 mid-stream, then, rows deleted and
doubled by hand in Snowflake, non-zero naming each partition and offset; the leader's metrics say the same. Also:
the dead letters are in DLQ_EVENTS exactly once across the kill."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from tests.corpus import expected_stock
from tests.delivery import BackgroundProducer, Sent, assert_exactly_once, commit_everything, metric, mixed_payloads
from tests.harness import Pipeline, wait_until
from tests.integration.dead_letters import command, write_letters

pytestmark = pytest.mark.integration

TABLE_ROW = re.compile(r"^\s*(\d+)\s+(\d+|-)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", re.MULTILINE)
COORDINATES = "EVENT_METADATA:partition::INTEGER = %s AND EVENT_METADATA:offset::INTEGER = %s"
# Records deleted from the head of one partition's log, as retention would.
DELETED_FROM_LOG = 2


def table(output: str) -> dict[int, tuple[int | None, ...]]:
    """partition -> (committed, rows, letters, replays, missing, doubled, not in log) from the audit's table."""
    return {int(m[1]): (None if m[2] == "-" else int(m[2]), *map(int, m.groups()[2:]))
            for m in TABLE_ROW.finditer(output)}


def delete_log_head(bootstrap: str, topic: str, partition: int, before: int) -> None:
    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before)})
        finally:
            await admin.close()

    asyncio.run(delete())


def test_audit_clean_after_a_kill_then_names_rows_deleted_and_doubled(pipeline: Pipeline, start_worker):
    audited = {"AUDIT_INTERVAL_SECONDS": "2"}
    first = start_worker(**audited)
    producer = BackgroundProducer(pipeline, mixed_payloads(1500), Sent())
    wait_until(lambda: pipeline.row_count() > 300, 60, "the first rows")
    first.kill()
    worker = start_worker(**audited)
    sent = producer.join()
    print(assert_exactly_once(pipeline, sent, worker))
    # The dead letters are in Snowflake too, each exactly once, as on the DLQ topic.
    lettered = Counter((item["partition"], item["offset"], item["error_type"], item["payload"])
                       for item in pipeline.dead_letters())
    dlq_events = Counter(pipeline.stack.query(
        pipeline.database, "SELECT SOURCE_PARTITION, SOURCE_OFFSET, ERROR_TYPE, PAYLOAD FROM DLQ_EVENTS"))
    assert dlq_events == lettered and lettered.total() == len(sent.split()[1]), (dlq_events, lettered)

    # The group commits every few seconds, and not while it rebalances (the killed worker leaves it only after
    # its session times out): audit once every offset is committed, so that the committed offsets hold still.
    commit_everything(pipeline, sent)
    output = command(pipeline, "audit", worker=worker)
    print(output)
    assert "audit: clean" in output
    committed = pipeline.committed()
    audited_partitions = table(output)
    assert {p: row[0] for p, row in audited_partitions.items() if row[0] is not None} == committed, output
    valid, invalid = sent.split()
    for partition, (offset, rows, letters, *problems) in audited_partitions.items():
        below = [(p, o) for p, o in sent.payloads if p == partition and o < (offset or 0)]
        assert (rows, letters, problems) == (sum(c in valid for c in below), sum(c in invalid for c in below),
                                             [0, 0, 0, 0]), output
    wait_until(lambda: metric(worker, "audit_last_run_timestamp"), 30, "the leader's audit")

    # Once the INVENTORY_STATUS model exists it is the warehouse's stock; a product it shows behind the served stock
    # while the rows agree has rows not modelled yet, which is no mismatch.
    served = expected_stock(valid.values())
    behind = min(served)
    pipeline.stack.query(pipeline.database, "CREATE SCHEMA IF NOT EXISTS PROD")
    pipeline.stack.query(pipeline.database, "CREATE TABLE PROD.INVENTORY_STATUS (PRODUCT_ID INTEGER, STOCK INTEGER)")
    for product, units in served.items():
        pipeline.stack.query(pipeline.database, "INSERT INTO PROD.INVENTORY_STATUS VALUES (%s, %s)",
                             (int(product), units - 5 * (product == behind)))
    output = command(pipeline, "audit", worker=worker)
    assert f"stock: {len(served)} products compared with INVENTORY_STATUS, 1 products with rows not " \
        "modelled yet" in output, output
    pipeline.stack.query(pipeline.database, "DROP TABLE PROD.INVENTORY_STATUS")

    # One row deleted by hand, one doubled, both below the committed offset of their partition; on a third
    # partition the log loses its first records to retention, and so do the rows of those.
    stored = sorted(c for c in valid if c[1] < committed.get(c[0], 0))
    deleted, doubled = stored[-1], stored[0]
    retained = next(p for p in committed if p not in (deleted[0], doubled[0]))
    forgotten = [c for c in valid if c[0] == retained and c[1] < DELETED_FROM_LOG]
    for coordinate in [deleted, *forgotten]:
        pipeline.stack.query(pipeline.database, f"DELETE FROM RAW_EVENTS_STREAM WHERE {COORDINATES}", coordinate)
    pipeline.stack.query(pipeline.database, f"""INSERT INTO RAW_EVENTS_STREAM
        (EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT)
        SELECT EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT FROM RAW_EVENTS_STREAM
        WHERE {COORDINATES}""", doubled)
    delete_log_head(pipeline.stack.bootstrap, pipeline.sales_topic, retained, DELETED_FROM_LOG)

    output = command(pipeline, "audit", expect=1, worker=worker)
    print(output)
    assert f"missing: partition {deleted[0]} offset {deleted[1]}\n" in output
    assert f"doubled: partition {doubled[0]} offset {doubled[1]} (2 rows, 0 dead letters)" in output
    assert len(re.findall(r"^(missing|doubled):", output, re.MULTILINE)) == 2, output
    assert table(output)[retained][6] == len(forgotten), output  # not in the log: reported, not as lost
    warehouse = expected_stock([e for c, e in valid.items() if c not in (deleted, *forgotten)] + [valid[doubled]])
    off = {p for p in served.keys() | warehouse.keys() if served.get(p, 0) != warehouse.get(p, 0)}
    assert set(re.findall(r"^stock mismatch: product (\d+)", output, re.MULTILINE)) == off, output
    assert "audit: NOT CLEAN: 1 missing, 1 doubled" in output

    wait_until(lambda: metric(worker, "audit_missing_offsets") == 1 and metric(worker, "audit_doubled_offsets") == 1
               and metric(worker, "audit_stock_mismatch_products") == len(off), 60, "the leader's audit metrics")


def test_a_letter_the_dlq_topic_holds_twice_is_counted_once(pipeline: Pipeline, start_worker):
    """As a producer's retry leaves it (the broker wrote the letter and went down before answering): no doubled
    offset, a clean audit that says how many copies it counted once."""
    worker = start_worker()
    sent = Sent()
    sent.produce(pipeline, mixed_payloads(300, invalid_every=20))
    assert_exactly_once(pipeline, sent, worker)
    commit_everything(pipeline, sent)
    letter = pipeline.dead_letters()[0]
    write_letters(pipeline, [letter, letter])

    output = command(pipeline, "audit", worker=worker)

    print(output)
    assert "dead letters: 2 repeated copies on the DLQ topic counted once" in output
    assert "audit: clean" in output
    assert sum(row[2] or 0 for row in table(output).values()) == len(sent.split()[1])  # each letter counted once
