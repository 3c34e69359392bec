"""Log lines that stay useful: an error as one bounded line, and libraries that log every failed try, each line
passed once per window with the count of those held back.

aiokafka logs each refused connection, failed metadata update, fetch and coordinator lookup while the broker is
away, many a second, over the worker's own warnings. The first warning or
error of each kind (logger and message template) goes through; the same kind again within `window_seconds` is
held back and counted, and the next one through says how many were held back. Information lines always go
through: they tell state changes ("Joined group ...", "Setting newly assigned partitions"), each one news, and
the test harness waits for some of them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

WINDOW_SECONDS = 10.0
QUIETED = ("aiokafka",)  # these loggers and their children
MAX_KINDS = 1000  # a message built without a template would make a kind per line: forget the old ones past this


class Repeats(logging.Filter):
    def __init__(self, window_seconds: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_seconds = window_seconds
        self.clock = clock
        self._kinds: dict[tuple[str, str], list[float]] = {}  # kind -> [when it last went through, held back since]
        self._lock = threading.Lock()  # Faust's consumer thread logs from its own event loop

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.window_seconds:
                seen[1] += 1
                return False
            if len(self._kinds) >= MAX_KINDS:
                self._forget_before(now - self.window_seconds)
            self._kinds[kind] = [now, 0]
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]:.0f} more like this in the last {now - seen[0]:.0f}s]"
        return True

    def _forget_before(self, moment: float) -> None:
        for kind in [k for k, (last, _) in self._kinds.items() if last < moment]:
            del self._kinds[kind]


def quiet_repeats(prefixes: tuple[str, ...] = QUIETED, window_seconds: float = WINDOW_SECONDS) -> None:
    """Hold back the repeats of every logger named by `prefixes` or under them (created by now: import first)."""
    repeats = Repeats(window_seconds)
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] in prefixes]
    for name in {*prefixes, *names}:
        logging.getLogger(name).addFilter(repeats)


def one_line(exc: BaseException) -> str:
    """An error as one bounded log line."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]
