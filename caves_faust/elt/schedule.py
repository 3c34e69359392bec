"""The leader builds the warehouse layers every ELT_INTERVAL_SECONDS: one build at a time, never on the event loop.

A tick that finds the previous build still running is skipped and counted, so builds never pile up on a slow
warehouse. A failed build is logged and counted, and the worker carries on: the next tick tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from caves_faust.elt.build import BuildResult, build
from caves_faust.faust_app import app, settings
from caves_faust.observability import metrics

log = logging.getLogger(__name__)

# The first build comes this soon after the worker starts (if it leads by then), so a fresh deployment and
# `make demo` show the layers without waiting a whole interval.
FIRST_BUILD_SECONDS = 30.0


class Schedule:
    """Starts builds in the background, one at a time."""

    def __init__(self) -> None:
        self.running: asyncio.Task[None] | None = None

    def tick(self) -> None:
        if self.running is not None and not self.running.done():
            metrics.elt_skipped_ticks.inc()
            log.warning("elt: the previous warehouse build is still running: this one is skipped")
            return
        self.running = asyncio.create_task(self._build())

    def cancel(self) -> None:
        if self.running is not None:
            self.running.cancel()

    async def _build(self) -> None:
        log.info("elt: building the warehouse layers (dbt build)")
        try:
            result = await build(settings)
        except Exception:  # dbt did not even start, or its results were unreadable: a failed build, not the worker's
            log.exception("elt: the warehouse build could not run")
            metrics.elt_runs.labels(outcome="error").inc()
            return
        record(result)


def record(result: BuildResult) -> None:
    metrics.elt_runs.labels(outcome=result.outcome).inc()
    metrics.elt_duration.observe(result.seconds)
    metrics.elt_failed_tests.set(len(result.failed_tests))
    if result.outcome == "success":
        metrics.elt_last_success.set(time.time())
        log.info(result.summary())
    else:
        log.error(result.summary())


schedule = Schedule()
metrics.elt_interval.set(settings.elt_interval_seconds)


@app.task
async def build_the_warehouse_on_schedule() -> None:
    if not settings.elt_interval_seconds:
        return
    delay = min(FIRST_BUILD_SECONDS, settings.elt_interval_seconds)
    try:
        while True:
            await asyncio.sleep(delay)
            delay = settings.elt_interval_seconds
            if app.is_leader():
                schedule.tick()
    finally:
        schedule.cancel()  # the worker stops: so does the build (its dbt process is killed)
