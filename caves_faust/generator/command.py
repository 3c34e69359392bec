"""`faust -A caves_faust generate`: realistic sales events (and, on request, bad ones) onto the sales topic."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from itertools import islice
from typing import Any, Awaitable

import click
from faust.cli import AppCommand, option

from caves_faust.events.records import INVENTORY_ADJUSTED, ORDER_CREATED
from caves_faust.faust_app import app, sales_topic, settings
from caves_faust.generator.events import INVALID, EventGenerator, Message

DEFAULT_RATE = 10.0  # events per second
SEND_CHUNK = 1000  # deliveries awaited together: sends stay pipelined, memory stays bounded
PROGRESS_SECONDS = 5.0  # at most one progress line this often
PRODUCER_LINGER_SECONDS = 0.01


class Tally:
    """What was sent, by kind, for the progress and summary lines."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()

    def add(self, message: Message) -> None:
        self.counts[message.kind] += 1

    def line(self) -> str:
        total = sum(self.counts.values())
        elapsed = time.monotonic() - self.started
        kinds = ", ".join(f"{kind} {self.counts[kind]:,}" for kind in (ORDER_CREATED, INVENTORY_ADJUSTED, INVALID))
        rate = total / elapsed if elapsed else 0.0
        return f"{total:,} events in {elapsed:.1f}s ({rate:,.0f} events/s): {kinds}"


@app.command(
    option("--count", type=click.IntRange(min=1), default=None,
           help="How many events to send. [default: until stopped]"),
    option("--rate", type=click.FloatRange(min=0), default=DEFAULT_RATE, show_default=True,
           help="Events per second; 0 sends as fast as possible."),
    option("--invalid-ratio", type=click.FloatRange(0, 1), default=0.0, show_default=True,
           help="Share of deliberately invalid events (they end in the DLQ)."),
    option("--seed", type=int, default=None,
           help="Same seed, same events (all but event_timestamp). [default: random]"),
)
async def generate(self: AppCommand, count: int | None, rate: float, invalid_ratio: float, seed: int | None) -> None:
    """Send realistic Les Caves d'Albert sales events to the sales topic, keyed by product id."""
    # Before the producer exists: lets sends share requests instead of each leaving alone.
    self.app.conf.producer_linger = PRODUCER_LINGER_SECONDS
    messages = islice(EventGenerator(seed=seed, invalid_ratio=invalid_ratio), count)
    tally = Tally()
    pending: list[Awaitable[Any]] = []
    next_progress = tally.started + PROGRESS_SECONDS
    self.say(f"generate: sending to {settings.sales_topic} on {settings.kafka_broker}")
    outcome = "failed"
    try:
        for index, message in enumerate(messages):
            if rate:
                # Paced against the start, not the previous send, so slow sends do not lower the rate.
                delay = tally.started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await sales_topic.send(key=message.key, value=message.value))
            tally.add(message)
            if len(pending) >= SEND_CHUNK:
                await _delivered(pending)
            if time.monotonic() >= next_progress:
                self.say(f"generate: {tally.line()}")
                next_progress = time.monotonic() + PROGRESS_SECONDS
        await _delivered(pending)
        outcome = "done"
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM: mode's worker cancels the command
        outcome = "stopped"
    finally:
        # Shielded: the worker cancels once more while it shuts down, and what the producer holds must go out.
        await asyncio.shield(_finish(self, outcome, tally))


async def _delivered(pending: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*pending)
    pending.clear()


async def _finish(command: AppCommand, outcome: str, tally: Tally) -> None:
    await command.app.producer.stop()  # flushes: every event handed to it is delivered first
    command.say(f"generate: {outcome}, {tally.line()}")
