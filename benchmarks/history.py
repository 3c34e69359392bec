"""`python -m benchmarks history`: `history load`'s rows/s, and what an incremental build costs after 1,000 new events
on an empty warehouse and on one holding HISTORY_ROWS of history (the second should take at most 2x the first)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from benchmarks.common import BenchStack, messages, produce, report, row_count
from caves_faust.devstack.process import free_port
from tests.harness import Pipeline, wait_until

HISTORY_DAYS = 3450  # about 1,000,000 order lines of the generator's calendar
NEW_EVENTS = 1000
END = "2026-12-01"  # the history ends here, whatever the day of the run


def build_figures(pipeline: Pipeline) -> tuple[float, dict[str, int]]:
    """One `elt`: dbt's build time and the rows each incremental model wrote."""
    result = pipeline.elt(timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = float(re.search(r"elt: success in ([\d.]+)s", result.stdout).group(1))  # type: ignore[union-attr]
    written = re.search(r"^  rows written: (.*)$", result.stdout, re.MULTILINE)
    rows = {name: int(count.replace(",", "")) for name, count in
            (item.rsplit(" ", 1) for item in written.group(1).split(", "))} if written else {}
    return seconds, rows


def load_history(bench: BenchStack, pipeline: Pipeline) -> dict[str, float]:
    path = bench.stack.home / "history.db"
    faust = [sys.executable, "-m", "caves_faust", "history"]
    env = pipeline.env(free_port(), pipeline.home / "history-data")
    subprocess.run([*faust, "generate", "--days", str(HISTORY_DAYS), "--out", str(path), "--end", END],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    loaded = subprocess.run([*faust, "load", str(path)], env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    rows = int(re.search(r"([\d,]+) loaded now", loaded.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    return {"history_rows": rows, "load_seconds": round(seconds, 1), "load_rows_per_second": round(rows / seconds)}


def after_new_events(bench: BenchStack, name: str, history: bool) -> dict:
    pipeline = bench.pipeline(name, {"SINK_MODE": "warehouse"})
    figures: dict = load_history(bench, pipeline) if history else {"history_rows": 0}
    first_seconds, _ = build_figures(pipeline)  # the whole history in, once
    produce(bench.stack.bootstrap, pipeline.sales_topic, messages(NEW_EVENTS, seed=27))
    worker = pipeline.worker(0).start(wait_assigned=False)
    conn = bench.stack.snowflake_connection(pipeline.database)
    try:
        wait_until(lambda: row_count(pipeline, conn) >= NEW_EVENTS, 300, "the new events stored")
    finally:
        worker.stop()
        conn.close()
    seconds, rows = build_figures(pipeline)
    return {**figures, "first_build_seconds": first_seconds, "build_seconds": seconds, "rows_written": rows}


def bench_history(bench: BenchStack) -> None:
    empty = after_new_events(bench, "bench_history_empty", history=False)
    full = after_new_events(bench, "bench_history_full", history=True)
    ratio = full["build_seconds"] / empty["build_seconds"]
    report("history", f"history load {full['history_rows']:,} rows in {full['load_seconds']} s "
           f"({full['load_rows_per_second']:,} rows/s); build after {NEW_EVENTS} new events: "
           f"{empty['build_seconds']} s on an empty warehouse, {full['build_seconds']} s with "
           f"{full['history_rows']:,} history rows (x{ratio:.2f}); rows written: empty {empty['rows_written']}, "
           f"with history {full['rows_written']}",
           {"empty": empty, "with_history": full, "ratio": round(ratio, 2), "new_events": NEW_EVENTS})
