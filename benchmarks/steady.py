"""Rates in steady state: from the moment a run has handled STEADY_FROM of its events to the moment it has handled
STEADY_TO of them, so that neither a process's start (imports, Faust's start, the group join) nor the last
partial batch sits in the figure; CPU seconds per 1,000 events over the same window, per process.

Each side of a comparison is sampled the same way: (time, events handled, CPU seconds per process) every
SAMPLE_SECONDS, the crossing times interpolated between samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from benchmarks.common import BenchStack, cpu_seconds

STEADY_FROM = 0.1
STEADY_TO = 0.9
SAMPLE_SECONDS = 0.2
CLIENT_TIMEOUT_SECONDS = 300


@dataclass
class Sample:
    at: float  # time.time()
    handled: int
    cpu: dict[str, float]  # process name -> CPU seconds so far


@dataclass
class Steady:
    """A run's steady window: its rate and each process's CPU seconds per 1,000 events."""

    events_per_second: float
    window_seconds: float
    cpu_per_1000: dict[str, float]
    whole_run_events_per_second: float  # from the first sample (the process's start) to the last event, for reference

    def figures(self) -> dict[str, object]:
        return {"events_per_second": round(self.events_per_second), "window_seconds": round(self.window_seconds, 2),
                "cpu_seconds_per_1000_events": {k: round(v, 3) for k, v in self.cpu_per_1000.items()},
                "whole_run_events_per_second": round(self.whole_run_events_per_second)}


@dataclass
class Progress:
    """Samples of one run, until it has handled `total` events."""

    total: int
    pids: dict[str, int | None]
    samples: list[Sample] = field(default_factory=list)

    def add(self, handled: int, at: float | None = None) -> None:
        self.samples.append(Sample(time.time() if at is None else at, handled,
                                   {name: cpu_seconds(pid) for name, pid in self.pids.items()}))

    @property
    def done(self) -> bool:
        return bool(self.samples) and self.samples[-1].handled >= self.total

    def steady(self) -> Steady:
        start, end = self._crossing(STEADY_FROM * self.total), self._crossing(STEADY_TO * self.total)
        window = end.at - start.at
        events = end.handled - start.handled
        first, last = self.samples[0], self._crossing(self.total)
        return Steady(events / window, window,
                      {name: (end.cpu[name] - start.cpu[name]) * 1000 / events for name in self.pids},
                      self.total / (last.at - first.at))

    def _crossing(self, handled: float) -> Sample:
        """The moment `handled` events were reached, interpolated between the samples on either side."""
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            if before.handled <= handled <= after.handled and after.handled > before.handled:
                share = (handled - before.handled) / (after.handled - before.handled)
                return Sample(before.at + share * (after.at - before.at), round(handled),
                              {k: v + share * (after.cpu[k] - v) for k, v in before.cpu.items()})
        raise ValueError(f"no sample pair around {handled:.0f} events handled (last: {self.samples[-1].handled})")


def follow(progress: Progress, handled: Callable[[], int], alive: Callable[[], bool], timeout: float) -> Steady:
    """Sample `handled()` (polled) every SAMPLE_SECONDS until the run is done; `alive()` False fails it."""
    deadline = time.monotonic() + timeout
    progress.add(0)
    while not progress.done:
        if not alive():
            raise RuntimeError("the process under measure exited before handling every event")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{progress.samples[-1].handled} of {progress.total} events in {timeout:.0f} s")
        time.sleep(SAMPLE_SECONDS)
        progress.add(handled())
    return progress.steady()


def follow_printed(command: list[str], env: dict[str, str], total: int, marker: str, timeout: float,
                   others: dict[str, int | None]) -> Steady:
    """A child process that prints `<marker> <handled> <time.time()>` as it goes: sampled from its own lines."""
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = Progress(total, {"process": child.pid, **others})
    progress.add(0)
    killer = threading.Timer(timeout, child.kill)
    killer.start()
    try:
        for line in child.stdout:  # type: ignore[union-attr]
            if marker in line:
                handled, at = line.split(marker, 1)[1].split()[:2]
                progress.add(int(handled), float(at))
                if progress.done:
                    return progress.steady()
        raise RuntimeError(f"{command} exited with {child.wait()} after {progress.samples[-1].handled} of {total}")
    finally:
        killer.cancel()
        child.terminate()
        child.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def ceiling(bench: BenchStack, topic: str, expected: int) -> Steady:
    """A bare Faust agent that only decodes JSON, on the same broker and events: the framework's ceiling."""
    env = {**os.environ, "KAFKA_BROKER": f"kafka://{bench.stack.bootstrap}", "BARE_TOPIC": topic,
           "BARE_EXPECTED": str(expected), "BARE_APP_ID": f"bare-{time.time_ns()}",
           "F_DATADIR": str(bench.stack.home / f"bare-data-{time.time_ns()}")}
    return follow_printed(python_module("benchmarks.bare_app", "worker", "-l", "warn"), env, expected, "BARE AT",
                          CLIENT_TIMEOUT_SECONDS, {"broker": bench.stack.kafka.pid()})


def raw_client(bench: BenchStack, topic: str, expected: int) -> Steady:
    """A raw aiokafka consumer that only decodes JSON, on the same broker and events: the reading's limit here."""
    return follow_printed(python_module("benchmarks.raw_client", bench.stack.bootstrap, topic, str(expected)),
                          dict(os.environ), expected, "RAW AT", CLIENT_TIMEOUT_SECONDS,
                          {"broker": bench.stack.kafka.pid()})
