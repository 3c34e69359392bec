"""The real command lines a user types to put events on Kafka: `generate` and `send`."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest

from caves_faust.devstack.process import free_port
from caves_faust.events.validation import validate
from caves_faust.generator.events import EventGenerator
from tests.harness import Pipeline

pytestmark = pytest.mark.integration

CLI_TIMEOUT = 120


def run_cli(pipeline: Pipeline, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = pipeline.env(free_port(), tmp_path / "cli-data")
    return subprocess.run(
        [sys.executable, "-m", "caves_faust", *args], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT,
    )


def without_timestamp(value: bytes) -> str:
    event = json.loads(value)
    event.pop("event_timestamp")
    return json.dumps(event, sort_keys=True)


def test_generate_sends_exactly_count_events_keyed_by_product_and_reproducible_by_seed(pipeline, tmp_path):
    result = run_cli(pipeline, tmp_path, "generate", "--count", "200", "--rate", "0", "--seed", "1")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "done, 200 events" in result.stdout
    records = pipeline.read_topic(pipeline.sales_topic)
    assert len(records) == 200
    for record in records:
        assert record.key == str(validate(record.value).event.product_id).encode()
    expected = [m.value for m in islice(EventGenerator(seed=1), 200)]
    assert sorted(map(without_timestamp, (r.value for r in records))) == sorted(map(without_timestamp, expected))


def test_faust_send_puts_one_event_on_the_topic_as_given(pipeline, tmp_path):
    event = (
        '{"event_type": "INVENTORY_ADJUSTED", "event_id": "adj-1", "product_id": 1015, "quantity_change": 24, '
        '"adjustment_type": "REPLENISHMENT"}'
    )

    result = run_cli(pipeline, tmp_path, "send", pipeline.sales_topic, event, "-k", "1015")

    assert result.returncode == 0, result.stderr[-3000:]
    [record] = pipeline.read_topic(pipeline.sales_topic)
    assert (record.key, record.value) == (b"1015", event.encode())
