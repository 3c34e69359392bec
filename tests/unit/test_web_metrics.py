"""The worker's Faust sensor exports the very series Faust's own Prometheus sensor does, with the same values."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from caves_faust.faust_app import app, sales_topic
from caves_faust.observability.web import ScrapeTimeMonitor
from tests.corpus import fake_message

# Timings and creation times differ between two runs; sample counts do not.
TIMED = "faust_events_runtime_ms"


class _Task:
    """What Faust's Monitor keys a stream's task by (weakly referenced)."""


def samples(monitor_class: type[PrometheusMonitor]) -> dict:
    registry = CollectorRegistry()
    monitor = monitor_class(metrics=FaustMetrics.create(registry, "faust"))
    streams = [sales_topic.stream(), app.topic("other_topic").stream()]
    owner = _Task()
    for stream in streams:
        stream.task_owner = owner  # type: ignore[assignment]
    for index in range(30):
        tp = TP(["sales_events", "other_topic"][index % 2], index % 3)
        message = fake_message(tp.partition, index, key=b"k", timestamp=1.0, topic=tp.topic)
        monitor.on_message_in(tp, index, message)
        # Every third message is read by both streams (two agents on one topic).
        for stream in streams[index % 2:] + streams[:index % 2] if index % 3 == 0 else [streams[index % 2]]:
            event: Any = None  # the sensors only count events
            state = monitor.on_stream_event_in(tp, index, stream, event)
            monitor.on_stream_event_out(tp, index, stream, event, state)
        if index % 5:  # some messages stay in flight
            monitor.on_message_out(tp, index, message)
        if index == 13 and isinstance(monitor, ScrapeTimeMonitor):  # a scrape midway: counters move by deltas
            monitor.sync()
    if isinstance(monitor, ScrapeTimeMonitor):
        monitor.sync()
    exported = text_string_to_metric_families(generate_latest(registry).decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in exported for s in family.samples
            if not s.name.endswith("_created") and not (s.name.startswith(TIMED) and not s.name.endswith("_count"))}


def test_the_scrape_time_sensor_exports_what_faust_s_sensor_exports():
    faust_series = samples(PrometheusMonitor)
    assert samples(ScrapeTimeMonitor) == faust_series
    assert faust_series[("faust_messages_received_per_topic_total", (("topic", "sales_events"),))] == 15


def test_the_worker_uses_the_scrape_time_sensor():
    assert type(app.monitor) is ScrapeTimeMonitor
