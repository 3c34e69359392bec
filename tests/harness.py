"""Drive the real system from outside, for the integration tests and the benchmarks.

A `Stack` is a Kafka broker and an embedded Snowflake on free ports in a scratch directory; a `Worker` is
a real `faust -A caves_faust worker` process pointed at them. Helpers produce to Kafka, read topics and
query Snowflake through the real connector: what a user of the product would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import snowflake.connector
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from snowflake.connector import SnowflakeConnection

from caves_faust.devstack.kafka import LocalKafka
from caves_faust.devstack.process import DevstackError, free_port
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.devstack.snowpipe import ADMIN, COMMIT_SECONDS, OMITTED_COLUMNS
from caves_faust.kafka.admin import committed_offsets, create_topics, partition_count

T = TypeVar("T")

ASSIGNED_MARKER = "Setting newly assigned partitions"  # what Faust logs when it has partitions to work on
DETACHED_TRANSACTION_SECONDS = 10


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` (and the last value) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}"[:2000])


@dataclass
class Stack:
    home: Path
    kafka: LocalKafka = field(init=False)
    snowflake: EmbeddedSnowflake = field(init=False)

    def __post_init__(self) -> None:
        self.kafka = LocalKafka("kafka", self.home / "kafka", free_port(), free_port())
        # Tests kill workers inside Snowflake transactions: have their detached transactions aborted in seconds.
        # EMBEDDED_STREAMING_COMMIT_SECONDS, when set, runs the suite at that commit delay (a real account's 5-10 s);
        # EMBEDDED_STREAMING_OMITTED_COLUMNS=default, with the default pipes filling the columns the rows leave out.
        self.snowflake = EmbeddedSnowflake(
            "snowflake", self.home / "snowflake", free_port(),
            detached_transaction_seconds=DETACHED_TRANSACTION_SECONDS,
            streaming_commit_seconds=float(os.environ.get("EMBEDDED_STREAMING_COMMIT_SECONDS") or COMMIT_SECONDS),
            streaming_omitted_columns=os.environ.get("EMBEDDED_STREAMING_OMITTED_COLUMNS") or OMITTED_COLUMNS[0])

    def start(self) -> "Stack":
        self.kafka.start(wait_seconds=120)
        self.snowflake.start()
        return self

    def stop(self) -> None:
        self.snowflake.stop()
        self.kafka.stop()

    def revive(self) -> list[str]:
        """Start again the servers that died (not those stopped on purpose); returns how each died."""
        deaths = []
        for server in (self.kafka, self.snowflake):
            death = server.death()
            if death is not None:
                try:
                    server.start(wait_seconds=120)
                except DevstackError as exc:
                    death += f"\nand it could not be started again: {exc}"
                deaths.append(death)
        return deaths

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def create_topics(self, names: list[str], partitions: int) -> None:
        asyncio.run(create_topics(self.bootstrap, names, partitions))

    def snowflake_connection(self, database: str, other: EmbeddedSnowflake | None = None,
                             ) -> SnowflakeConnection:
        """A connection to the stack's embedded Snowflake, or to `other`."""
        return snowflake.connector.connect(
            account="embedded", user="test", password="test", host="127.0.0.1", port=(other or self.snowflake).port,
            protocol="http", database=database, schema="RAW_DATA",
        )

    def query(self, database: str, sql: str, params: tuple = (), other: EmbeddedSnowflake | None = None,
              ) -> list[tuple]:
        with self.snowflake_connection(database, other) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def snowpipe(self, call: str, body: dict | None = None, other: EmbeddedSnowflake | None = None) -> Any:
        """One of the embedded Snowpipe Streaming's own calls for tests (`devstack/snowpipe.py`, ADMIN): its answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{(other or self.snowflake).port}{ADMIN}{call}",
                                         json.dumps(body or {}).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def expire_channels(self, database: str, other: EmbeddedSnowflake | None = None) -> list[str]:
        """Every Snowpipe Streaming channel of the database expires, as after 30 days unused: their names."""
        expired = []
        for row in self.query(database, "SHOW CHANNELS", other=other):
            name, schema, pipe = row[1], row[3], row[9]
            self.snowpipe(f"/databases/{database}/schemas/{schema}/pipes/{pipe}/channels/{name}:expire", other=other)
            expired.append(name)
        return expired


@dataclass
class Pipeline:
    """One isolated deployment on a Stack: its own topics, consumer group, Snowflake database and data dir."""

    stack: Stack
    name: str
    home: Path
    partitions: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    # An embedded Snowflake of its own instead of the stack's (e.g. with another detached-transaction bound).
    snowflake: EmbeddedSnowflake | None = None

    @property
    def sales_topic(self) -> str:
        return f"{self.name}_sales_events"

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}_sales_events_dlq"

    @property
    def database(self) -> str:
        return f"{self.name}_DB".upper()

    def create_topics(self) -> "Pipeline":
        self.stack.create_topics([self.sales_topic, self.dlq_topic], self.partitions)
        return self

    def env(self, web_port: int, datadir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "KAFKA_", "F_", "SINK_"))}
        env.update({
            "KAFKA_BROKER": f"kafka://{self.stack.bootstrap}",
            "KAFKA_TOPIC_NAME": self.sales_topic,
            "DLQ_TOPIC_NAME": self.dlq_topic,
            "KAFKA_TOPIC_PARTITIONS": str(self.partitions),
            "KAFKA_SESSION_TIMEOUT_SECONDS": "8",
            "FAUST_APP_ID": self.name,
            "WORKER_WEB_PORT": str(web_port),
            "SNOWFLAKE_PORT": str((self.snowflake or self.stack.snowflake).port),
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_DATABASE": self.database,
            "F_DATADIR": str(datadir),
            "PYTHONUNBUFFERED": "1",
            # A warehouse build takes seconds of CPU: only the tests of the schedule ask for one.
            "ELT_INTERVAL_SECONDS": "0",
            # The whole suite in one sink mode or the other (the product's default otherwise).
            **({"SINK_MODE": os.environ["TEST_SINK_MODE"]} if os.environ.get("TEST_SINK_MODE") else {}),
            **self.extra_env,
        })
        return env

    def worker(self, index: int = 0, **extra_env: str) -> "Worker":
        port = free_port()
        datadir = self.home / f"worker{index}-data"
        env = {**self.env(port, datadir), **extra_env}
        return Worker(port, self.home / f"worker{index}.log", env)

    def elt(self, timeout: float = 300) -> subprocess.CompletedProcess:
        """`faust -A caves_faust elt` on this pipeline's Snowflake database: exit code and output (text)."""
        return subprocess.run(
            [sys.executable, "-m", "caves_faust", "elt"], env=self.env(free_port(), self.home / "elt-data"),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def history_load(self, path: Path, **extra_env: str) -> subprocess.Popen:
        """`faust -A caves_faust history load PATH` on this pipeline's Snowflake database, started (output: text)."""
        return subprocess.Popen(
            [sys.executable, "-m", "caves_faust", "history", "load", str(path)],
            env={**self.env(free_port(), self.home / "history-data"), **extra_env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)

    # --- Kafka ---
    def produce(self, values: Iterable[bytes | str | dict],
                keys: Iterable[bytes | None] | None = None) -> list[tuple[int, int]]:
        """Send values to the sales topic; returns their (partition, offset) once the broker has them all."""
        payloads = [_as_bytes(v) for v in values]
        key_list: list[bytes | None] = list(keys) if keys is not None else [None] * len(payloads)
        return asyncio.run(_produce(self.stack.bootstrap, self.sales_topic, payloads, key_list))

    def read_topic(self, topic: str) -> list[Any]:
        """Every message now on `topic` (all partitions), as aiokafka ConsumerRecords."""
        return asyncio.run(_read_all(self.stack.bootstrap, topic))

    def lag(self) -> int:
        """Messages of the sales topic not yet committed by this pipeline's consumer group."""
        return asyncio.run(_group_lag(self.stack.bootstrap, self.name, self.sales_topic))

    def committed(self) -> dict[int, int]:
        """partition -> committed offset of this pipeline's consumer group on the sales topic."""
        return asyncio.run(committed_offsets(self.stack.bootstrap, self.name, self.sales_topic))

    def commit_group(self, offsets: Callable[[int, int], int | None]) -> None:
        """Set the (idle) consumer group's committed offsets, as `kafka-consumer-groups --reset-offsets` would:
        `offsets(partition, end offset)` for each sales partition (None: left as it is)."""
        asyncio.run(_commit_group(self.stack.bootstrap, self.name, self.sales_topic, self.partitions, offsets))

    def dead_letters(self) -> list[dict]:
        return [json.loads(r.value) for r in self.read_topic(self.dlq_topic)]

    # --- Snowflake ---
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a statement in this pipeline's Snowflake database."""
        return self.stack.query(self.database, sql, params, self.snowflake)

    def rows(self) -> list[tuple[dict, dict]]:
        """(metadata, content) of every row in RAW_EVENTS_STREAM of this pipeline's database."""
        try:
            fetched = self.query("SELECT EVENT_METADATA, EVENT_CONTENT FROM RAW_EVENTS_STREAM")
        except snowflake.connector.errors.ProgrammingError:
            return []  # not created yet
        return [(json.loads(m), json.loads(c)) for m, c in fetched]

    def row_count(self) -> int:
        return len(self.rows())


@contextlib.contextmanager
def module_pipeline(stack: Stack, home: Path, name: str) -> Iterator[Pipeline]:
    """A pipeline the tests of a module share; the workers they start go in its `started_workers` (as conftest names
    it: tests/delivery.py reads it) and are stopped at the end."""
    created = Pipeline(stack, name, home).create_topics()
    created.started_workers = []  # type: ignore[attr-defined]
    try:
        yield created
    finally:
        for worker in created.started_workers:  # type: ignore[attr-defined]
            worker.stop()


@dataclass
class Worker:
    web_port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, wait_assigned: bool = True) -> "Worker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._assignments_before = self._assignments()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "caves_faust", "worker", "-l", "info"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        if wait_assigned:
            self.wait_assigned()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _assignments(self) -> int:
        return self.log_text().count(ASSIGNED_MARKER) if self.log_path.exists() else 0

    def wait_assigned(self, timeout: float = 90) -> None:
        """Until this run of the worker holds partitions and serves its web views."""

        def ready() -> bool:
            self._check_alive()
            return self._assignments() > self._assignments_before and self.get("/stock/")[0] == 200

        wait_until(ready, timeout, f"worker on port {self.web_port} to be assigned partitions")

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_text()[-3000:]
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{tail}")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def dump_tasks(self) -> None:
        """Have a running worker write every thread's and asyncio task's stack to its log (mode's SIGUSR1)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()


def _as_bytes(value: bytes | str | dict) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


async def _produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None]) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for v, k in zip(values, keys, strict=True)]
        results = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(r.partition, r.offset) for r in results]


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        ends = await consumer.end_offsets(tps)
        wanted = {tp for tp in tps if ends[tp] > 0}
        if not wanted:
            return []
        consumer.assign(sorted(wanted))
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                records.extend(m for m in messages if m.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    wanted.discard(tp)
        if wanted:
            raise AssertionError(f"could not read {topic} to its end: {sorted(wanted)}")
        return records
    finally:
        await consumer.stop()


async def _commit_group(bootstrap: str, group: str, topic: str, partitions: int,
                        offsets: Callable[[int, int], int | None]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        wanted = {tp: offsets(tp.partition, end) for tp, end in (await consumer.end_offsets(tps)).items()}
        await consumer.commit({tp: offset for tp, offset in wanted.items() if offset is not None})
    finally:
        await consumer.stop()


async def _group_lag(bootstrap: str, group: str, topic: str) -> int:
    committed = await committed_offsets(bootstrap, group, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(bootstrap, topic))]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(end - committed.get(tp.partition, 0) for tp, end in ends.items())
