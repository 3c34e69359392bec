"""`/metrics` on the worker's web port: the pipeline's metrics and Faust's own sensors, one endpoint."""

from __future__ import annotations

from typing import cast

from aiohttp.web import Response
from faust import web
from faust.sensors.prometheus import FaustMetrics
from faust.types import AppT
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from caves_faust.faust_patches import ScrapeTimeMonitor


def serve_metrics(app: AppT, registry: CollectorRegistry = REGISTRY, pattern: str = "/metrics") -> ScrapeTimeMonitor:
    """Faust's sensor metrics (prefix `faust_`) and the pipeline's, in `registry`, served at `pattern` by `app`."""
    monitor = ScrapeTimeMonitor(metrics=FaustMetrics.create(registry, "faust"))
    app.monitor = monitor

    @app.page(pattern)
    async def metrics_page(self: web.View, request: web.Request) -> web.Response:
        monitor.sync()
        body = generate_latest(registry)
        return cast(web.Response, Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))

    return monitor

