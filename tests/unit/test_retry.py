"""The retry policy and one failure streak: doubling waits up to the cap, one log line per streak, never past
shutdown."""

from __future__ import annotations

import logging

import pytest

from caves_faust.sink import retry
from caves_faust.sink.retry import Backoff, RetryPolicy, SinkStopped


def test_the_wait_doubles_from_the_first_up_to_the_cap():
    policy = RetryPolicy(max_seconds=5, first_seconds=0.5)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]


async def test_a_streak_logs_once_when_it_starts_and_once_when_it_ends(monkeypatch, caplog):
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    counted: list[str] = []
    backoff = Backoff("Snowflake", RetryPolicy(max_seconds=1), lambda: False, counted.append)
    with caplog.at_level(logging.WARNING, logger="caves_faust.sink.retry"):
        for _ in range(3):
            await backoff.retry("lock_conflict", RuntimeError("locked"), "a hint", state="blocked")
        backoff.succeeded()
        backoff.succeeded()  # no streak: nothing to say
    assert waited == [0.5, 1, 1] and counted == ["lock_conflict"] * 3
    assert [r.getMessage() for r in caplog.records][0] == (
        "Snowflake blocked, retrying with backoff: reason=lock_conflict error=RuntimeError: locked (a hint)")
    assert len(caplog.records) == 2 and caplog.records[1].getMessage().startswith("Snowflake back after 3 retries")


async def test_no_wait_once_the_worker_is_stopping():
    backoff = Backoff("Kafka DLQ", RetryPolicy(max_seconds=1), lambda: True, lambda reason: None)
    with pytest.raises(SinkStopped, match="Kafka DLQ still failing at shutdown"):
        await backoff.retry("dlq_write", OSError("down"))
