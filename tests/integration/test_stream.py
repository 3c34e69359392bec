"""The stream on the real broker: DLQ holds exactly the invalid inputs; /stock/ equals a recomputation,
after a restart, and from either of two workers sharing 8 partitions."""

from __future__ import annotations

import random

import pytest

from tests.corpus import INVALID_PAYLOADS, encoded, expected_stock, stock_of, valid_events
from tests.delivery import letter_payload, stock_served
from tests.harness import wait_until

pytestmark = pytest.mark.integration


def mixed_stream(valid: list[dict], seed: int = 7) -> tuple[list[bytes], list[bytes | None]]:
    """Valid events and every kind of invalid one, shuffled; keys mixed (by product, none, unrelated)."""
    payloads = encoded(valid) + [p for p, _ in INVALID_PAYLOADS]
    rng = random.Random(seed)
    rng.shuffle(payloads)
    keys = [rng.choice([None, b"boutique-paris", str(rng.randint(1000, 1011)).encode()]) for _ in payloads]
    return payloads, keys


def assert_stock_served(worker, expected: dict[str, int]) -> None:
    for product_id, stock in expected.items():
        status, body = worker.get(f"/stock/{product_id}/")
        assert status == 200 and body["stock"] == stock, (product_id, status, body)
        assert set(body["window"]) >= {"start", "end", "units_sold", "revenue", "net_adjustment", "order_count"}
    status, body = worker.get("/stock/")
    assert status == 200
    assert stock_of(body) == expected


def test_mixed_stream_dlq_stock_and_restart(pipeline, start_worker):
    valid = valid_events(600)
    payloads, keys = mixed_stream(valid)
    worker = start_worker()
    coordinates = pipeline.produce(payloads, keys)
    expected = expected_stock(valid)

    wait_until(lambda: pipeline.row_count() == len(valid) and len(pipeline.dead_letters()) == len(INVALID_PAYLOADS),
               90, "every input stored or dead-lettered")
    wait_until(lambda: stock_served(worker) == expected, 30, "stock equal to the recomputation")
    assert_stock_served(worker, expected)
    assert worker.terminate() == 0  # whatever was in flight is finished: the counts below are final

    letters = pipeline.dead_letters()
    invalid_at = {coordinates[i]: p for i, p in enumerate(payloads) if p in dict(INVALID_PAYLOADS)}
    assert len(letters) == len(INVALID_PAYLOADS)
    for letter in letters:
        original = invalid_at[(letter["partition"], letter["offset"])]
        assert letter["error_type"] == dict(INVALID_PAYLOADS)[original]
        assert letter["error_message"] and letter["topic"] == pipeline.sales_topic and letter["timestamp"]
        assert letter_payload(letter) == original
    assert pipeline.row_count() == len(valid)
    restarted = start_worker()
    # The stock comes back from the tables' changelogs; an event replayed meanwhile is recognised by offset.
    wait_until(lambda: stock_served(restarted) == expected, 60, "stock recovered after the restart")
    assert_stock_served(restarted, expected)
    status, body = restarted.get("/stock/999999/")
    assert status == 404 and "999999" in body["error"]
    more = valid_events(50, start=600)
    pipeline.produce(encoded(more))
    expected_after = expected_stock(valid + more)
    wait_until(lambda: stock_served(restarted) == expected_after, 60, "stock after the restart")
    assert len(pipeline.dead_letters()) == len(INVALID_PAYLOADS)


def test_two_workers_each_serve_every_product(pipeline, start_worker):
    first = start_worker(0)
    second = start_worker(1)
    valid = valid_events(400)
    pipeline.produce(encoded(valid), [str(e["product_id"]).encode() for e in valid])
    expected = expected_stock(valid)

    wait_until(lambda: pipeline.row_count() == len(valid), 90, "every event stored")
    wait_until(lambda: stock_served(first) == expected and stock_served(second) == expected, 60,
               "both workers serving the full stock")
    assert_stock_served(first, expected)
    assert_stock_served(second, expected)
    assert pipeline.row_count() == len(valid)
