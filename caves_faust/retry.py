"""Retrying through outages: capped exponential backoff, one log line when a failure streak starts, one when it ends.

Knows nothing of what it retries: the caller names it, says why each attempt failed, and counts the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


class SinkStopped(Exception):
    """The worker is shutting down while a write is still failing: leave the batch unacknowledged."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before the n-th retry of a streak: doubling from `first_seconds`, at most `max_seconds`."""

    max_seconds: float
    first_seconds: float = 0.5

    def delay(self, failures: int) -> float:
        return min(self.max_seconds, self.first_seconds * 2 ** (failures - 1))


class Backoff:
    """One failure streak of `what`: waits per the policy between attempts, and never past shutdown."""

    def __init__(self, what: str, policy: RetryPolicy, stopping: Callable[[], bool],
                 counted: Callable[[str], None]):
        self.what = what
        self.policy = policy
        self.stopping = stopping
        self.counted = counted
        self.failures = 0
        self.started = 0.0

    async def retry(self, reason: str, exc: BaseException, hint: str = "", state: str = "unavailable") -> None:
        """Wait before the next attempt. The streak's first log line says `what` is in `state`, and `hint`."""
        if self.stopping():
            # Unacknowledged, so uncommitted: the next run replays the batch, and the high-water marks
            # make that replay write each event once.
            raise SinkStopped(f"{self.what} still failing at shutdown: {one_line(exc)}")
        if self.failures == 0:
            self.started = time.monotonic()
            log.warning("%s %s, retrying with backoff: reason=%s error=%s%s",
                        self.what, state, reason, one_line(exc), f" ({hint})" if hint else "")
        self.failures += 1
        self.counted(reason)
        await asyncio.sleep(self.policy.delay(self.failures))

    def succeeded(self) -> None:
        if self.failures:
            log.warning("%s back after %d retries in %.1fs", self.what, self.failures, time.monotonic() - self.started)
            self.failures = 0


def one_line(exc: BaseException) -> str:
    """An error as one bounded log line."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]
