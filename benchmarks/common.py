"""What every benchmark shares: a scratch stack, pre-produced events, process memory, results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.generator.events import EventGenerator
from tests.harness import Pipeline, Stack

RESULTS = Path(__file__).parent / "results"
PRODUCE_CHUNK = 5000
POLL_SECONDS = 0.2


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def report(name: str, summary: str, figures: dict[str, Any]) -> None:
    """One summary line on stdout, the full figures in benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"benchmark": name, "summary": summary, **figures,
                                                       "machine": machine()}, indent=2))
    print(f"{name}: {summary}", flush=True)


@dataclass
class BenchStack:
    """A Kafka broker and embedded Snowflake in a scratch directory, for one benchmark run."""

    stack: Stack

    @classmethod
    def start(cls) -> "BenchStack":
        home = Path(tempfile.mkdtemp(prefix="caves-bench-"))
        return cls(Stack(home).start())

    def pipeline(self, name: str, env: dict[str, str], snowflake: EmbeddedSnowflake | None = None) -> Pipeline:
        """A pipeline of its own, with these worker settings, on the stack's Snowflake or on `snowflake`."""
        return Pipeline(self.stack, name, self.stack.home / name, extra_env=env, snowflake=snowflake).create_topics()

    def stop(self) -> None:
        self.stack.stop()


def messages(count: int, seed: int = 2026) -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` valid generated events."""
    generator = iter(EventGenerator(seed=seed))
    return [(m.key, m.value) for m in (next(generator) for _ in range(count))]


def produce(bootstrap: str, topic: str, batch: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(_produce(bootstrap, topic, batch))


async def _produce(bootstrap: str, topic: str, batch: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for start in range(0, len(batch), PRODUCE_CHUNK):
            pending = [await producer.send(topic, key=k, value=v) for k, v in batch[start:start + PRODUCE_CHUNK]]
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def row_count(pipeline: Pipeline, conn: Any) -> int:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM RAW_EVENTS_STREAM")
            return int(cur.fetchone()[0])
    except Exception:  # the table is created by the worker's first flush
        return 0
