"""Retrying through outages: capped exponential backoff, one log line when a failure streak starts, one when it ends.

Knows nothing of what it retries: the caller names it, says why each attempt failed, and counts the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from caves_faust.observability.logs import one_line

T = TypeVar("T")

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

    async def call(self, what: str, attempt: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...], *,
                   reason: str, stopping: Callable[[], bool], counted: Callable[[str], None],
                   failed: Callable[[BaseException], Awaitable[None]] | None = None) -> T:
        """`attempt()` until it returns, retrying `errors` with backoff (`failed` is told each, first), never past
        shutdown (then SinkStopped): for the steps that must be done before a batch is acknowledged."""
        backoff = Backoff(what, self, stopping, counted)
        while True:
            try:
                result = await attempt()
            except errors as exc:
                if failed is not None:
                    await failed(exc)
                await backoff.retry(reason, exc)
                continue
            backoff.succeeded()
            return result


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
