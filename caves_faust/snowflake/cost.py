"""What the warehouse path costs: how long the sink's writes keep the warehouse up.

A warehouse runs from a write until `auto_suspend_seconds` without one: each write adds its own duration plus the
gap since the previous write, capped at the auto-suspend (a longer gap means it suspended, and the time after the
suspension is not billed). The tail after the last write is counted when the next write comes. Snowflake's
60-second minimum per resume is left out: with writes every SINK_FLUSH_SECONDS the warehouse never suspends.
"""

from __future__ import annotations

from caves_faust.observability import metrics


class WarehouseClock:
    def __init__(self, auto_suspend_seconds: float, credits_per_hour: float):
        self.auto_suspend_seconds = auto_suspend_seconds
        self._last_end: float | None = None
        metrics.warehouse_credits_per_hour.set(credits_per_hour)

    def wrote(self, started: float, ended: float) -> float:
        """Count one write (monotonic times); returns the seconds it added."""
        gap = 0.0 if self._last_end is None else min(max(0.0, started - self._last_end), self.auto_suspend_seconds)
        self._last_end = ended
        added = gap + (ended - started)
        metrics.warehouse_seconds.inc(added)
        return added
