"""The consumer lag of the sales partitions this worker holds, on /metrics (see `observability.lag`)."""

from __future__ import annotations

from faust.types import AppT

from caves_faust.faust_app import app, settings
from caves_faust.observability import metrics
from caves_faust.observability.lag import PROBE_SECONDS, LagProbe, export_exactly

lag_probe = LagProbe(settings.kafka_bootstrap, app.conf.id)


@app.timer(PROBE_SECONDS)
async def measure_consumer_lag() -> None:
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == settings.sales_topic]
        lags = await lag_probe.measure(app.consumer, assigned) if assigned else {}
    except Exception as exc:  # broker unreachable, consumer restarting: no number is better than a stale one
        metrics.consumer_lag.clear()
        await lag_probe.failed(exc)
        return
    lag_probe.succeeded()
    export_exactly(metrics.consumer_lag, {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()})


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _close_lag_probe(app: AppT, **kwargs: object) -> None:
    await lag_probe.close()
