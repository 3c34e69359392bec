"""`/metrics` on the worker's web port: the pipeline's metrics and Faust's own sensors, one endpoint."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from aiohttp.web import Response
from faust import web
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, Message, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from caves_faust.app import app


class ScrapeTimeMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor, the same series and values, with the per-message counts kept in Faust's plain
    Monitor fields and handed to prometheus_client when /metrics is read (`sync`), not on every message: each of
    prometheus_client's updates takes a lock, and Faust's sensor made ten of them per message."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._exported: Counter[Any] = Counter()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> dict | None:
        return Monitor.on_stream_event_in(self, tp, offset, stream, event)

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT, event: EventT,
                            state: dict | None = None) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(state["time_total"]))

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def sync(self) -> None:
        """Bring the per-message series up to the Monitor's counts (called on the event loop, so in one step)."""
        metrics = self._metrics
        self._advance(metrics.messages_received, "messages", self.messages_received_total)
        self._advance(metrics.total_events, "events", self.events_total)
        for topic, count in self.messages_received_by_topic.items():
            self._advance(metrics.messages_received_per_topics.labels(topic=topic), ("topic", topic), count)
        labels = {name: self._stream_label(stream) for stream, name in self.stream_lookup.items()}
        for name, count in self.events_by_stream.items():
            series = metrics.total_events_per_stream.labels(stream=f"stream.{labels.get(name, name)}.events")
            self._advance(series, ("stream", name), count)
        for tp, offset in self.tp_read_offsets.items():
            metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        metrics.active_messages.set(self.messages_active)
        metrics.total_active_events.set(self.events_active)

    def _advance(self, counter: Any, key: Any, total: int) -> None:
        delta = total - self._exported[key]
        if delta > 0:
            counter.inc(delta)
            self._exported[key] = total


def serve_metrics(registry: CollectorRegistry = REGISTRY, pattern: str = "/metrics") -> ScrapeTimeMonitor:
    """Faust's sensor metrics (prefix `faust_`) and the pipeline's, in `registry`, served at `pattern`."""
    monitor = ScrapeTimeMonitor(metrics=FaustMetrics.create(registry, "faust"))
    app.monitor = monitor

    @app.page(pattern)
    async def metrics_page(self: web.View, request: web.Request) -> web.Response:
        monitor.sync()
        body = generate_latest(registry)
        return cast(web.Response, Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))

    return monitor


monitor = serve_metrics()
