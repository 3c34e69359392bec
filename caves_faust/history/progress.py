"""A progress bar on a terminal: rows (or days) done of the total, per second, time left. Silent when stderr is
not a terminal (a log, a pipe, a test), where only the summary line is wanted."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.2  # at most this often
BAR_WIDTH = 30


class Progress:
    def __init__(self, what: str, total: int, unit: str = "rows", stream: TextIO | None = None):
        self.what = what
        self.unit = unit
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.shown = self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self.shown and (now - self._drawn_at >= REDRAW_SECONDS or self.done >= self.total):
            self._drawn_at = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(share * BAR_WIDTH)
        left = (self.total - self.done) / rate if rate else 0.0
        return (f"{self.what} [{bar:<{BAR_WIDTH}}] {self.done:,}/{self.total:,} {self.unit}, "
                f"{rate:,.0f} {self.unit}/s, "
                f"ETA {int(left) // 60}:{int(left) % 60:02d} ")

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started
