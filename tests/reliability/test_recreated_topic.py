"""The sales topic deleted and created again under the same name (a cluster migration, a reset after a bad
producer), the worker stopped meanwhile or running through it: the new topic's offsets restart at 0, and none of
its events may be taken for a replay of the old one's. The expectations come from the two corpora sent."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from caves_faust.kafka.admin import create_topics, wait_for_topics
from caves_faust.kafka.topic_ids import current_topic_id
from tests.corpus import expected_stock
from tests.delivery import Sent, commit_everything, mixed_payloads, stock_served
from tests.harness import Pipeline, wait_until
from tests.integration.dead_letters import command
from tests.integration.test_audit import table

pytestmark = pytest.mark.integration

NEW_LIFE_WARNING = "was deleted and created again"


def recreate(pipeline: Pipeline) -> None:
    """Delete the sales topic, wait until the broker forgot it, create it again with as many partitions."""
    bootstrap, topic = pipeline.stack.bootstrap, pipeline.sales_topic

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
            for _ in range(120):
                if topic not in await admin.list_topics():
                    break
                await asyncio.sleep(0.25)
        finally:
            await admin.close()
        await create_topics(bootstrap, [topic], pipeline.partitions)
        assert not await wait_for_topics(bootstrap, {topic}, 30)

    asyncio.run(run())


def stored(pipeline: Pipeline, topic_id: str) -> Counter:
    """(partition, offset) -> rows of that life of the sales topic."""
    return Counter((m["partition"], m["offset"]) for m, _ in pipeline.rows() if m.get("topic_id") == topic_id)


def lettered(pipeline: Pipeline, topic_id: str) -> Counter:
    """(partition, offset) -> dead letters of that life on the DLQ topic (copies of one letter counted once)."""
    letters = {(d["partition"], d["offset"], d["error_type"]) for d in pipeline.dead_letters()
               if d.get("topic_id") == topic_id}
    return Counter((p, o) for p, o, _ in letters)


def delivered(pipeline: Pipeline, sent: Sent, topic_id: str) -> None:
    """Wait until each event sent to that life is stored or dead-lettered, then check each is exactly once."""
    valid, invalid = sent.split()
    wait_until(lambda: stored(pipeline, topic_id).total() + lettered(pipeline, topic_id).total() >= len(sent.cases),
               90, f"{len(valid)} rows and {len(invalid)} letters of topic id {topic_id}")
    assert stored(pipeline, topic_id) == Counter(valid.keys())
    assert lettered(pipeline, topic_id) == Counter(invalid.keys())
    dlq_events = Counter(pipeline.query("SELECT SOURCE_PARTITION, SOURCE_OFFSET FROM DLQ_EVENTS "
                                        "WHERE SOURCE_TOPIC_ID = %s", (topic_id,)))
    assert dlq_events == Counter(invalid.keys())
    contents = {(m["partition"], m["offset"]): c for m, c in pipeline.rows() if m.get("topic_id") == topic_id}
    assert contents == valid


@pytest.mark.parametrize("sink_mode, worker_stopped", [("warehouse", True), ("streaming", True),
                                                       ("streaming", False)],
                         ids=["warehouse-stopped", "streaming-stopped", "streaming-running-through"])
def test_a_recreated_sales_topic_is_stored_as_a_new_one(pipeline: Pipeline, start_worker, sink_mode: str,
                                                        worker_stopped: bool):
    old_id = asyncio.run(current_topic_id(pipeline.stack.bootstrap, pipeline.sales_topic))
    assert old_id is not None  # the test stack's Kafka gives topic ids
    worker = start_worker(SINK_MODE=sink_mode)
    old = Sent()
    old.produce(pipeline, mixed_payloads(400))
    delivered(pipeline, old, old_id)
    wait_until(lambda: stock_served(worker) == expected_stock(old.split()[0].values()), 60, "the first stock")
    if worker_stopped:
        assert worker.terminate() == 0

    recreate(pipeline)  # a running worker learns it at the rebalance its consumer makes
    new_id = asyncio.run(current_topic_id(pipeline.stack.bootstrap, pipeline.sales_topic))
    assert new_id is not None and new_id != old_id
    if worker_stopped:
        worker = start_worker(SINK_MODE=sink_mode)
    new = Sent()
    new.produce(pipeline, mixed_payloads(300, start=400))
    assert set(new.cases) & set(old.cases)  # the same coordinates as the old topic's: offsets restarted at 0

    delivered(pipeline, new, new_id)
    delivered(pipeline, old, old_id)  # the old topic's rows and letters stay, each once
    both = [*old.split()[0].values(), *new.split()[0].values()]
    wait_until(lambda: stock_served(worker) == expected_stock(both), 60, "the stock of both topics' events")
    warnings = [line for line in worker.log_text().splitlines() if NEW_LIFE_WARNING in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and pipeline.sales_topic in warnings[0], warnings

    commit_everything(pipeline, new)
    output = command(pipeline, "audit", worker=worker)
    print(output)
    assert "audit: clean" in output and f"topic id {new_id}" in output, output
    # The audit counts the new topic's events only: the old one's rows at the same offsets are not its.
    valid, invalid = new.split()
    audited = table(output)
    assert (sum(row[1] or 0 for row in audited.values()), sum(row[2] or 0 for row in audited.values())) == (
        len(valid), len(invalid)), output
