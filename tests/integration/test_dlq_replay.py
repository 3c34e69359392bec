"""`faust -A caves_faust dlq replay` against a real worker: letters an older, stricter version left in the DLQ (the
test writes them, for events it produced and had the group commit past), valid ones among invalid ones. Each valid
one is stored exactly once, however often replayed, across a kill -9 of the worker processing the copies; the
others are reported and never sent; the stock counts each once; DLQ_EVENTS marks the replayed letters; the audit
accounts for every copy."""

from __future__ import annotations

import re
import time

import pytest
from snowflake.connector.errors import ProgrammingError

from tests.corpus import INVALID_PAYLOADS, adjustment, encoded, expected_stock, order
from tests.delivery import stock_served
from tests.harness import Pipeline, wait_until
from tests.integration.dead_letters import command, letter, write_letters

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 90
THROWAWAY = b"{not json"
OLD_RULE = "quantity above 100 (the rule before large orders from restaurants were allowed)"


def originals() -> tuple[list[dict], list[tuple[bytes, str]]]:
    """(events valid today that the old version refused, payloads invalid today with their error type)."""
    valid = [order(9000 + n, 1000 + n % 3, quantity=120 + n) for n in range(12)]
    valid += [adjustment(9100 + n, 1000 + n % 3, 150) for n in range(4)]
    return valid, INVALID_PAYLOADS[:6]


def commit_group_at_end(pipeline: Pipeline) -> None:
    """Where the older version left the group: past every event it dead-lettered."""
    pipeline.commit_group(lambda partition, end: end or None)


def sales_topic_size(pipeline: Pipeline) -> int:
    return len(pipeline.read_topic(pipeline.sales_topic))


def replayed_rows(pipeline: Pipeline) -> dict[tuple[int, int], list[dict]]:
    """(DLQ partition, DLQ offset) of the letter -> contents of the rows replaying it."""
    found: dict[tuple[int, int], list[dict]] = {}
    for metadata, content in pipeline.rows():
        origin = metadata["replayed_from"]
        assert origin["topic"] == pipeline.dlq_topic, metadata
        found.setdefault((origin["partition"], origin["offset"]), []).append(content)
    return found


def dlq_events(pipeline: Pipeline) -> list[tuple[tuple[int, int], bool]]:
    """((source partition, offset), replayed) of every row of DLQ_EVENTS; [] before the table exists."""
    try:
        found = pipeline.stack.query(pipeline.database,
                                     "SELECT SOURCE_PARTITION, SOURCE_OFFSET, REPLAYED FROM DLQ_EVENTS")
    except ProgrammingError:
        return []
    return [((partition, offset), replayed) for partition, offset, replayed in found]


def test_replay_stores_each_valid_letter_once_reports_the_others(pipeline: Pipeline, start_worker, sink_mode):
    valid, invalid = originals()
    payloads = encoded(valid) + [p for p, _ in invalid]
    keys = [str(e["product_id"]).encode() for e in valid] + [b"bad"] * len(invalid)
    coordinates = pipeline.produce(payloads, keys)
    now = time.time()
    letters = [letter(partition, offset, now, "out_of_range", payload, pipeline.sales_topic, key)
               for (partition, offset), payload, key in zip(coordinates, payloads, keys, strict=True)][:len(valid)]
    letters += [letter(partition, offset, now, error_type, payload, pipeline.sales_topic, b"bad")
                for (partition, offset), (payload, error_type) in zip(coordinates[len(valid):], invalid, strict=True)]
    for item in letters[:len(valid)]:
        item["error_message"] = OLD_RULE
    places = write_letters(pipeline, letters)
    expected = dict(zip(places[:len(valid)], valid, strict=True))  # letter -> the event its replay must store
    commit_group_at_end(pipeline)
    worker = start_worker(SINK_MODE=sink_mode)
    # The older version kept its letters in DLQ_EVENTS too. The worker creates the table with its first batch: one
    # more invalid event, whose letter the replays will report as still failing too.
    (throwaway,) = pipeline.produce([THROWAWAY], [b"bad"])
    failing = [*invalid, (THROWAWAY, "not_json")]
    wait_until(lambda: dlq_events(pipeline), SETTLE_SECONDS, "the worker's letter in DLQ_EVENTS")
    for item in letters:
        pipeline.stack.query(pipeline.database, """INSERT INTO DLQ_EVENTS (ERROR_TYPE, ERROR_MESSAGE, PAYLOAD,
            PAYLOAD_ENCODING, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                             tuple(item[k] for k in ("error_type", "error_message", "payload", "payload_encoding",
                                                     "topic", "partition", "offset")))

    dry = command(pipeline, "dlq", "replay", "--dry-run", expect=1)
    assert f"{len(valid)} would pass today's rules" in dry and f"{len(failing)} still fail" in dry, dry
    assert sales_topic_size(pipeline) == len(payloads) + 1  # nothing sent
    still_failing = dict(re.findall(r"^  still failing: (\w+): (\d+)$", dry, re.MULTILINE))
    assert {kind: int(n) for kind, n in still_failing.items()} == {
        kind: sum(k == kind for _, k in failing) for _, kind in failing}

    first = command(pipeline, "dlq", "replay", expect=1)
    assert f"{len(valid)} replayed" in first and f"{len(failing)} still fail, not replayed" in first, first
    wait_until(lambda: pipeline.row_count() == len(valid), SETTLE_SECONDS, "the replayed letters' rows")

    # Replayed again, by an overlapping filter and in full; the worker is killed while it handles the copies.
    overlap = command(pipeline, "dlq", "replay", "--partition", str(coordinates[0][0]), "--error-type",
                      "out_of_range", expect=0)
    replayed = re.search(r"(\d+) replayed", overlap)
    assert replayed, overlap
    overlapping = int(replayed[1])
    assert overlapping >= 1, overlap
    command(pipeline, "dlq", "replay", expect=1)
    worker.kill()
    worker = start_worker(SINK_MODE=sink_mode)
    sent = len(payloads) + 1 + 2 * len(valid) + overlapping
    wait_until(lambda: sales_topic_size(pipeline) == sent and pipeline.lag() == 0, SETTLE_SECONDS,
               "every copy processed and committed")

    stored = replayed_rows(pipeline)
    assert {place: contents for place, contents in stored.items()} == {place: [e] for place, e in expected.items()}
    wait_until(lambda: stock_served(worker) == expected_stock(valid), SETTLE_SECONDS, "the stock of each event once")
    assert len(pipeline.dead_letters()) == len(letters) + 1, "a replay was dead-lettered"
    # In DLQ_EVENTS, each letter once; those whose event is now stored marked replayed, the others not.
    assert sorted(dlq_events(pipeline)) == sorted(
        [((item["partition"], item["offset"]), place in expected) for item, place in zip(letters, places, strict=True)]
        + [(throwaway, False)])

    audit = command(pipeline, "audit", worker=worker)
    replays = sum(int(m[1]) for m in re.finditer(r"^\s*\d+\s+\d+\s+\d+\s+\d+\s+(\d+)\s", audit, re.MULTILINE))
    assert "audit: clean" in audit and replays == len(valid) + overlapping, audit
