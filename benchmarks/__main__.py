"""`python -m benchmarks [NAME ...]` (`make bench`): ceiling+pipeline, sink, latency, streaming, history, memory.

Ratios are what count: these machines are noisy, so each ratio is measured within one run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from benchmarks.common import BenchStack, CpuMeter, ceiling, messages, produce, report, row_count, rss_mb
from benchmarks.history import bench_history
from caves_faust.generator.events import EventGenerator
from caves_faust.settings import load_settings
from caves_faust.snowflake.connection import Batch, Warehouse, rows_json
from tests.harness import Pipeline, wait_until

PIPELINE_EVENTS = 100_000
SINK_BATCH_SIZES = (100, 1000, 5000, 20000)
SINK_ROWS = 40_000
LATENCY_RATE = 1000  # events/s
LATENCY_SECONDS = 30
BACKLOG_EVENTS = 100_000
SOAK_EVENTS = 1_000_000
SOAK_CHUNK = 100_000


# Every run names its sink mode: the default depends on the account (streaming for the embedded Snowflake).
WAREHOUSE = {"SINK_MODE": "warehouse"}
STREAMING = {"SINK_MODE": "streaming"}


def pipeline_run(bench: BenchStack, name: str, events: list[tuple[bytes, bytes]], workers: int = 1,
                 env: dict[str, str] = WAREHOUSE) -> dict:
    """Pre-produce `events`, start the workers, time until every one is a row; CPU, peak and sampled RSS."""
    pipeline = bench.pipeline(name, **env)
    produce(bench.stack.bootstrap, pipeline.sales_topic, events)
    conn = bench.stack.snowflake_connection(pipeline.database)
    started = time.perf_counter()
    running = [pipeline.worker(index).start(wait_assigned=False) for index in range(workers)]
    cpu = CpuMeter({f"worker{index}": w.pid for index, w in enumerate(running)},
                   {"snowflake": bench.stack.snowflake.pid(), "broker": bench.stack.kafka.pid()})
    samples: list[float] = []
    try:
        while (rows := row_count(pipeline, conn)) < len(events):
            samples.extend(rss_mb(w.pid) for w in running)
            for w in running:
                assert w.process is not None and w.process.poll() is None, w.log_text()[-2000:]
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        cpu.stop()
    finally:
        for w in running:
            w.stop()
        conn.close()
    per_thousand = cpu.per_thousand(len(events))
    per_thousand["workers"] = round(sum(v for k, v in per_thousand.items() if k.startswith("worker")), 3)
    return {"events": len(events), "workers": workers, "rows": rows, "seconds": round(elapsed, 2),
            "events_per_second": round(len(events) / elapsed), "peak_rss_mb": round(max(samples or [0]), 1),
            "cpu_seconds_per_1000_events": per_thousand,
            "cores_busy": round(sum(cpu.used.values()) / elapsed, 2),
            "rss_samples_mb": [round(s, 1) for s in samples]}


def bench_pipeline(bench: BenchStack) -> None:
    events = messages(PIPELINE_EVENTS)
    result = pipeline_run(bench, "bench_pipeline", events)
    bare, bare_cpu = ceiling(bench, "bench_pipeline_sales_events", len(events))  # the very same events
    scaled = pipeline_run(bench, "bench_pipeline_2w", events, workers=2)
    ratio = result["events_per_second"] / bare
    cpu, two = result["cpu_seconds_per_1000_events"], scaled["cpu_seconds_per_1000_events"]
    report("pipeline", f"{result['events_per_second']} events/s into Snowflake, bare Faust ceiling {bare:.0f} "
           f"events/s, ratio {ratio:.2f}, worker peak RSS {result['peak_rss_mb']} MB; CPU s per 1,000 events: "
           f"worker {cpu['workers']}, embedded Snowflake {cpu['snowflake']}, broker {cpu['broker']} "
           f"({result['cores_busy']} cores busy); bare agent {bare_cpu['worker']}, broker {bare_cpu['broker']}; "
           f"2 workers: {scaled['events_per_second']} events/s ({scaled['cores_busy']} cores busy), CPU s per 1,000 "
           f"events: {' + '.join(str(v) for k, v in two.items() if k.startswith('worker') and k != 'workers')} = "
           f"{two['workers']}",
           {**{k: v for k, v in result.items() if k != "rss_samples_mb"}, "ceiling_events_per_second": round(bare),
            "ceiling_cpu_seconds_per_1000_events": bare_cpu, "ratio_to_ceiling": round(ratio, 3),
            "two_workers": {k: v for k, v in scaled.items() if k != "rss_samples_mb"}})


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
            warehouse.write("bench", Batch(rows, {0: (old, offset)}))
        figures[str(size)] = round(batches * size / (time.perf_counter() - started))
    warehouse.close()
    best = max(figures, key=lambda size: figures[size])
    report("sink", "rows/s by batch size " + ", ".join(f"{k}: {v}" for k, v in figures.items())
           + f" (best at {best})", {"rows_per_second_by_batch_size": figures, "rows_json_bytes_per_row":
                                    len(rows_json(rows)) // len(rows)})


def bench_streaming(bench: BenchStack) -> None:
    """The pipeline and latency figures again with SINK_MODE=streaming (the others are warehouse mode's)."""
    events = messages(PIPELINE_EVENTS)
    result = pipeline_run(bench, "bench_streaming", events, env=STREAMING)
    bare, _ = ceiling(bench, "bench_streaming_sales_events", len(events))  # the very same events
    ratio = result["events_per_second"] / bare
    pipeline = bench.pipeline("bench_streaming_latency", **STREAMING)
    conn = bench.stack.snowflake_connection(pipeline.database)
    worker = pipeline.worker().start()
    latency = steady_phase(bench, pipeline, conn, seed=7, expected_rows=LATENCY_RATE * LATENCY_SECONDS)
    worker.stop()
    conn.close()
    cpu = result["cpu_seconds_per_1000_events"]
    report("streaming", f"{result['events_per_second']} events/s into Snowflake through Snowpipe Streaming, bare Faust "
           f"ceiling {bare:.0f} events/s, ratio {ratio:.2f}; CPU s per "
           f"1,000 events: worker {cpu['workers']}, embedded Snowflake {cpu['snowflake']}; at {LATENCY_RATE} "
           f"events/s {_line(latency)}",
           {"pipeline": {k: v for k, v in result.items() if k != "rss_samples_mb"}, "ceiling_events_per_second":
            round(bare), "ratio_to_ceiling": round(ratio, 3), "latency": latency})


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


def latencies_since(conn: Any, produced_after: float) -> list[float]:
    """Kafka timestamp -> INGESTION_TIME of every row produced after `produced_after` (Unix seconds), sorted."""
    with conn.cursor() as cur:
        cur.execute("SELECT EVENT_METADATA:timestamp::FLOAT, DATE_PART(EPOCH_MILLISECOND, INGESTION_TIME) "
                    "FROM RAW_EVENTS_STREAM WHERE EVENT_METADATA:timestamp::FLOAT > %s", (produced_after,))
        return sorted(ingested / 1000 - produced_at for produced_at, ingested in cur.fetchall())


def quantiles(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"events": len(latencies), "p50_seconds": round(q[49], 3), "p95_seconds": round(q[94], 3),
            "p99_seconds": round(q[98], 3), "max_seconds": round(latencies[-1], 3)}


def steady_phase(bench: BenchStack, pipeline: Pipeline, conn: Any, seed: int, expected_rows: int) -> dict[str, float]:
    """LATENCY_SECONDS at LATENCY_RATE events/s; the latencies of those events once all are rows."""
    events = messages(LATENCY_RATE * LATENCY_SECONDS, seed=seed)
    phase_started = time.time()
    produce_steadily(bench, pipeline, events, LATENCY_RATE)
    wait_until(lambda: row_count(pipeline, conn) >= expected_rows, 120, "every row")
    return quantiles(latencies_since(conn, phase_started))


def _line(figures: dict[str, float]) -> str:
    return f"p50 {figures['p50_seconds']} s, p95 {figures['p95_seconds']} s, p99 {figures['p99_seconds']} s"


def bench_latency(bench: BenchStack) -> None:
    """Kafka timestamp -> INGESTION_TIME at a steady LATENCY_RATE events/s: in a quiet steady state, and right
    after the worker caught up a BACKLOG_EVENTS backlog (the first LATENCY_SECONDS after it), p50/p95/p99."""
    steady_pipeline = bench.pipeline("bench_latency", **WAREHOUSE)
    steady_conn = bench.stack.snowflake_connection(steady_pipeline.database)
    worker = steady_pipeline.worker().start()
    steady = steady_phase(bench, steady_pipeline, steady_conn, seed=7, expected_rows=LATENCY_RATE * LATENCY_SECONDS)
    worker.stop()
    steady_conn.close()

    backlog_pipeline = bench.pipeline("bench_latency_backlog", **WAREHOUSE)
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
    pipeline = bench.pipeline("bench_soak", **WAREHOUSE)
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

