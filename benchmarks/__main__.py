"""`python -m benchmarks [NAME ...]` (`make bench`): ceiling+pipeline, sink, latency, streaming, history, memory.

Ratios are what count: these machines are noisy, so each ratio is measured within one run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from benchmarks.common import BenchStack, messages, produce, report, row_count, rss_mb
from benchmarks.history import bench_history
from benchmarks.steady import Progress, ceiling, follow, raw_client
from caves_faust.devstack.process import free_port
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.devstack.snowpipe import COMMIT_SECONDS
from caves_faust.generator.events import EventGenerator
from caves_faust.settings import load_settings
from caves_faust.snowflake.connection import Batch, Warehouse, rows_json
from tests.harness import Pipeline, wait_until

PIPELINE_EVENTS = 100_000
PIPELINE_TIMEOUT_SECONDS = 600
SLOW_COMMIT_SECONDS = 5.0  # a real account's documented 5-10 s from append to query
SINK_BATCH_SIZES = (100, 1000, 5000, 20000)
SINK_ROWS = 40_000
LATENCY_RATE = 1000  # events/s
LATENCY_SECONDS = 30
VISIBILITY_POLL_SECONDS = 0.1
BACKLOG_EVENTS = 100_000
SOAK_EVENTS = 1_000_000
SOAK_CHUNK = 100_000


# Every run names its sink mode: the default depends on the account (streaming for the embedded Snowflake).
WAREHOUSE = {"SINK_MODE": "warehouse"}
STREAMING = {"SINK_MODE": "streaming"}


def pipeline_run(bench: BenchStack, name: str, events: list[tuple[bytes, bytes]], workers: int = 1,
                 env: dict[str, str] = WAREHOUSE, snowflake: EmbeddedSnowflake | None = None) -> dict:
    """Pre-produce `events`, start the workers, follow the rows in Snowflake until every one is there: the steady
    rate and CPU per process (`benchmarks/steady.py`), peak and sampled RSS."""
    pipeline = bench.pipeline(name, env, snowflake)
    produce(bench.stack.bootstrap, pipeline.sales_topic, events)
    conn = bench.stack.snowflake_connection(pipeline.database, snowflake)
    running = [pipeline.worker(index).start(wait_assigned=False) for index in range(workers)]
    progress = Progress(len(events), {**{f"worker{index}": w.pid for index, w in enumerate(running)},
                                      "snowflake": (snowflake or bench.stack.snowflake).pid(),
                                      "broker": bench.stack.kafka.pid()})
    samples: list[float] = []

    def rows() -> int:
        samples.extend(rss_mb(w.pid) for w in running)
        return row_count(pipeline, conn)

    try:
        steady = follow(progress, rows, lambda: all(w.process is not None and w.process.poll() is None
                                                    for w in running), PIPELINE_TIMEOUT_SECONDS)
    finally:
        for w in running:
            w.stop()
        conn.close()
    cpu = steady.cpu_per_1000
    cpu["workers"] = sum(v for k, v in cpu.items() if k.startswith("worker"))
    return {"events": len(events), "workers": workers, "steady": steady.figures(),
            "peak_rss_mb": round(max(samples or [0]), 1), "rss_samples_mb": [round(s, 1) for s in samples]}


def side_by_side(bench: BenchStack, label: str, env: dict[str, str], snowflake: EmbeddedSnowflake | None = None,
                 ) -> dict:
    """The pipeline, a bare Faust agent and a raw aiokafka consumer on the very same pre-produced events, each
    measured over its own steady window, in this one run."""
    events = messages(PIPELINE_EVENTS)
    result = pipeline_run(bench, f"bench_{label}", events, env=env, snowflake=snowflake)
    topic = f"bench_{label}_sales_events"
    bare, raw = ceiling(bench, topic, len(events)), raw_client(bench, topic, len(events))
    rate = result["steady"]["events_per_second"]
    return {**{k: v for k, v in result.items() if k != "rss_samples_mb"}, "bare_faust": bare.figures(),
            "raw_aiokafka": raw.figures(), "ratio_to_bare": round(rate / bare.events_per_second, 3),
            "ratio_to_raw": round(rate / raw.events_per_second, 3)}


def _compared(figures: dict) -> str:
    steady, cpu = figures["steady"], figures["steady"]["cpu_seconds_per_1000_events"]
    bare, raw = figures["bare_faust"], figures["raw_aiokafka"]
    return (f"{steady['events_per_second']:,} events/s steady ({steady['whole_run_events_per_second']:,} from the "
            f"worker's start), bare Faust {bare['events_per_second']:,}, ratio {figures['ratio_to_bare']:.2f}, raw "
            f"aiokafka {raw['events_per_second']:,}; CPU s per 1,000 events: worker {cpu['workers']:.3f}, embedded "
            f"Snowflake {cpu['snowflake']:.3f}, broker {cpu['broker']:.3f}; bare agent "
            f"{bare['cpu_seconds_per_1000_events']['process']:.3f}, raw client "
            f"{raw['cpu_seconds_per_1000_events']['process']:.3f}; worker peak RSS {figures['peak_rss_mb']} MB")


def bench_pipeline(bench: BenchStack) -> None:
    figures = side_by_side(bench, "pipeline", WAREHOUSE)
    scaled = pipeline_run(bench, "bench_pipeline_2w", messages(PIPELINE_EVENTS), workers=2)
    two = scaled["steady"]
    report("pipeline", f"warehouse mode: {_compared(figures)}; 2 workers: {two['events_per_second']:,} events/s "
           f"steady, CPU s per 1,000 events {two['cpu_seconds_per_1000_events']['workers']:.3f}",
           {**figures, "two_workers": {k: v for k, v in scaled.items() if k != "rss_samples_mb"}})


def bench_sink(bench: BenchStack) -> None:
    """Rows/s of the Snowflake write path alone (one transaction per batch, as the sink does)."""
    settings = load_settings({"SNOWFLAKE_PORT": str(bench.stack.snowflake.port), "SNOWFLAKE_HOST": "127.0.0.1",
                              "SNOWFLAKE_DATABASE": "BENCH_SINK_DB"}, dotenv=False)
    warehouse = Warehouse(settings)
    warehouse.bootstrap()
    contents = [value.decode() for _, value in messages(max(SINK_BATCH_SIZES))]
    figures = {}
    offset = -1
    for size in SINK_BATCH_SIZES:
        batches = max(1, SINK_ROWS // size)
        started = time.perf_counter()
        for _ in range(batches):
            rows = [f'{{"m":{{"topic":"bench","partition":0,"offset":{offset + 1 + i}}},"c":{contents[i]}}}'
                    for i in range(size)]
            old = offset if offset >= 0 else None
            offset += size
            warehouse.write("bench", None, Batch(rows, {0: (old, offset)}))
        figures[str(size)] = round(batches * size / (time.perf_counter() - started))
    warehouse.close()
    best = max(figures, key=lambda size: figures[size])
    report("sink", "rows/s by batch size " + ", ".join(f"{k}: {v}" for k, v in figures.items())
           + f" (best at {best})", {"rows_per_second_by_batch_size": figures, "rows_json_bytes_per_row":
                                    len(rows_json(rows)) // len(rows)})


def bench_streaming(bench: BenchStack) -> None:
    """The pipeline side by side again with SINK_MODE=streaming, at the emulation's commit delay and at a real
    account's documented 5 s (a second embedded Snowflake), with the latency at LATENCY_RATE at each."""
    slow = EmbeddedSnowflake("snowflake-slow-commit", bench.stack.home / "snowflake-slow-commit", free_port(),
                             streaming_commit_seconds=SLOW_COMMIT_SECONDS)
    slow.start()
    try:
        figures = {}
        for label, snowflake in (("streaming", None), ("streaming_slow_commit", slow)):
            figures[label] = side_by_side(bench, label, STREAMING, snowflake)
            pipeline = bench.pipeline(f"bench_{label}_latency", STREAMING, snowflake)
            conn = bench.stack.snowflake_connection(pipeline.database, snowflake)
            worker = pipeline.worker().start()
            figures[label]["latency"] = steady_phase(bench, pipeline, conn, seed=7,
                                                     expected_rows=LATENCY_RATE * LATENCY_SECONDS)
            worker.stop()
            conn.close()
    finally:
        slow.stop()
    fast, slowed = figures["streaming"], figures["streaming_slow_commit"]
    report("streaming", f"commit after {COMMIT_SECONDS:g} s: {_compared(fast)}; at {LATENCY_RATE} events/s "
           f"{_line(fast['latency'])}. Commit after {SLOW_COMMIT_SECONDS:g} s: {_compared(slowed)}; at "
           f"{LATENCY_RATE} events/s {_line(slowed['latency'])}", figures)


def produce_steadily(bench: BenchStack, pipeline: Pipeline, events: list[tuple[bytes, bytes]], rate: float) -> None:
    """Produce `events` at `rate` events/s, paced against the start (a slow send does not lower the rate)."""
    produced = 0
    started = time.perf_counter()
    while produced < len(events):
        due = int((time.perf_counter() - started) * rate)
        if due > produced:
            chunk = events[produced:min(due, len(events))]
            produce(bench.stack.bootstrap, pipeline.sales_topic, chunk)
            produced += len(chunk)
        time.sleep(0.01)


def produced_timestamps(conn: Any, produced_after: float) -> list[float]:
    """The Kafka timestamps of the rows produced after `produced_after` (Unix seconds), sorted."""
    with conn.cursor() as cur:
        cur.execute("SELECT EVENT_METADATA:timestamp::FLOAT FROM RAW_EVENTS_STREAM "
                    "WHERE EVENT_METADATA:timestamp::FLOAT > %s ORDER BY 1", (produced_after,))
        return [float(produced_at) for (produced_at,) in cur.fetchall()]


def visibility_latencies(produced: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """The k-th event produced (Kafka timestamp) to the first sample showing k rows of the phase queryable, sorted.
    What a reader of the table waits for, whatever INGESTION_TIME holds (in streaming mode the worker fills it as
    it hands a row over, before the service commits it)."""
    latencies = []
    samples = iter(seen)
    at, count = next(samples)
    for k, produced_at in enumerate(produced):
        while count < k + 1:
            at, count = next(samples)
        latencies.append(at - produced_at)
    return sorted(latencies)


def quantiles(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"events": len(latencies), "p50_seconds": round(q[49], 3), "p95_seconds": round(q[94], 3),
            "p99_seconds": round(q[98], 3), "max_seconds": round(latencies[-1], 3)}


def steady_phase(bench: BenchStack, pipeline: Pipeline, conn: Any, seed: int, expected_rows: int) -> dict[str, float]:
    """LATENCY_SECONDS at LATENCY_RATE events/s; how long each event took to be queryable in Snowflake, the table
    counted every VISIBILITY_POLL_SECONDS meanwhile."""
    events = messages(LATENCY_RATE * LATENCY_SECONDS, seed=seed)
    before = row_count(pipeline, conn)
    seen: list[tuple[float, int]] = []  # (when, rows of the phase queryable)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append((time.time(), row_count(pipeline, conn) - before))
            time.sleep(VISIBILITY_POLL_SECONDS)

    watcher = threading.Thread(target=watch, daemon=True)
    phase_started = time.time()
    watcher.start()
    try:
        produce_steadily(bench, pipeline, events, LATENCY_RATE)
        wait_until(lambda: seen and before + seen[-1][1] >= expected_rows, 120, "every row")
    finally:
        stop.set()
        watcher.join()
    return quantiles(visibility_latencies(produced_timestamps(conn, phase_started), seen))


def _line(figures: dict[str, float]) -> str:
    return f"p50 {figures['p50_seconds']} s, p95 {figures['p95_seconds']} s, p99 {figures['p99_seconds']} s"


def bench_latency(bench: BenchStack) -> None:
    """Kafka timestamp -> queryable in Snowflake at a steady LATENCY_RATE events/s: in a quiet steady state, and right
    after the worker caught up a BACKLOG_EVENTS backlog (the first LATENCY_SECONDS after it), p50/p95/p99."""
    steady_pipeline = bench.pipeline("bench_latency", WAREHOUSE)
    steady_conn = bench.stack.snowflake_connection(steady_pipeline.database)
    worker = steady_pipeline.worker().start()
    steady = steady_phase(bench, steady_pipeline, steady_conn, seed=7, expected_rows=LATENCY_RATE * LATENCY_SECONDS)
    worker.stop()
    steady_conn.close()

    backlog_pipeline = bench.pipeline("bench_latency_backlog", WAREHOUSE)
    backlog_conn = bench.stack.snowflake_connection(backlog_pipeline.database)
    produce(bench.stack.bootstrap, backlog_pipeline.sales_topic, messages(BACKLOG_EVENTS, seed=8))
    worker = backlog_pipeline.worker().start(wait_assigned=False)
    wait_until(lambda: row_count(backlog_pipeline, backlog_conn) >= BACKLOG_EVENTS, 600, "the backlog's rows")
    after_backlog = steady_phase(bench, backlog_pipeline, backlog_conn, seed=9,
                                 expected_rows=BACKLOG_EVENTS + LATENCY_RATE * LATENCY_SECONDS)
    worker.stop()
    backlog_conn.close()
    report("latency", f"at {LATENCY_RATE} events/s produce->Snowflake, steady: {_line(steady)}; in the first "
           f"{LATENCY_SECONDS} s after a {BACKLOG_EVENTS:,}-event backlog: {_line(after_backlog)}",
           {"rate": LATENCY_RATE, "steady": steady, "after_backlog": after_backlog})


def bench_memory(bench: BenchStack) -> None:
    """Worker RSS over a SOAK_EVENTS run in warehouse mode, produced while the worker consumes: does it stay
    flat?"""
    pipeline = bench.pipeline("bench_soak", WAREHOUSE)
    conn = bench.stack.snowflake_connection(pipeline.database)
    worker = pipeline.worker().start()
    samples: list[tuple[int, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((row_count(pipeline, conn), rss_mb(worker.pid)))
            time.sleep(2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    generated = iter(EventGenerator(seed=11))
    for _ in range(SOAK_EVENTS // SOAK_CHUNK):
        produce(bench.stack.bootstrap, pipeline.sales_topic,
                [(m.key, m.value) for m in (next(generated) for _ in range(SOAK_CHUNK))])
    wait_until(lambda: row_count(pipeline, conn) >= SOAK_EVENTS, 1800, "every soak row", interval=5)
    stop.set()
    sampler.join()
    worker.stop()
    conn.close()
    rss = [r for _, r in samples if r]
    tenth = max(1, len(rss) // 10)
    early, late = statistics.mean(rss[tenth:2 * tenth]), statistics.mean(rss[-tenth:])
    figures = {"events": SOAK_EVENTS, "peak_rss_mb": round(max(rss), 1), "early_rss_mb": round(early, 1),
               "late_rss_mb": round(late, 1), "growth_ratio": round(late / early, 3), "samples": samples}
    report("memory", f"{SOAK_EVENTS} events: worker RSS peak {figures['peak_rss_mb']} MB, "
           f"early {early:.0f} MB -> late {late:.0f} MB (x{late / early:.2f})", figures)


BENCHMARKS = {"pipeline": bench_pipeline, "sink": bench_sink, "latency": bench_latency, "streaming": bench_streaming,
              "history": bench_history, "memory": bench_memory}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=list(BENCHMARKS), help="default: all but memory")
    names = parser.parse_args().names or ["pipeline", "sink", "latency", "streaming", "history"]
    bench = BenchStack.start()
    try:
        for name in names:
            BENCHMARKS[name](bench)
    finally:
        bench.stop()


if __name__ == "__main__":
    main()

