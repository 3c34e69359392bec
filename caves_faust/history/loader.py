"""`history load`: a history file into BATCH_DATA.SALES, each order line once however often it is loaded.

Batches of HISTORY_LOAD_BATCH_ROWS rows, each one transaction inserting the batch's rows whose order_line_id the table
lacks (`snowflake/history_tables.py`): a load killed anywhere leaves whole batches, and loading again adds only
what is missing. Memory holds two batches: the one being written, in a thread, and the next, being read and
checked meanwhile. Bad rows are named and skipped; the load is complete only when there are none.
One load at a time: two loads of overlapping files at the same moment could each insert a line the other has not
committed yet.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from caves_faust.history.progress import Progress
from caves_faust.history.sqlite_file import BadRow, CheckedSale, HistoryFile
from caves_faust.settings import Settings
from caves_faust.snowflake.connection import Warehouse

BAD_ROWS_SHOWN = 1_000  # named one per line; beyond, counted


@dataclass
class LoadResult:
    read: int = 0
    inserted: int = 0  # new in the table
    already: int = 0  # there before (an earlier load, an overlapping file)
    bad: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.bad

    def summary(self, path: Path) -> str:
        rate = self.read / self.seconds if self.seconds else 0.0
        return (f"history load: {'complete' if self.complete else 'incomplete'}, {path}: {self.read:,} rows read in "
                f"{self.seconds:.1f}s ({rate:,.0f} rows/s): {self.inserted:,} loaded now, {self.already:,} already "
                f"there, {self.bad:,} bad")


def load(path: Path, settings: Settings, say: Callable[[str], None]) -> LoadResult:
    """Load the file (raises `UnreadableFile` before touching Snowflake when it is not a history file)."""
    history = HistoryFile(path)
    result = LoadResult()
    progress = Progress("history load", history.count())
    source = str(path.resolve())
    warehouse = Warehouse(settings)
    try:
        warehouse.create_history_table()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-load") as writer:
            pending: Future[tuple[int, int, int]] | None = None
            for batch in history.batches(settings.history_load_batch_rows):
                sales = [row.values for row in batch if isinstance(row, CheckedSale)]
                for row in batch:
                    if isinstance(row, BadRow):
                        _bad(result, row, say)
                result.read += len(batch)
                rows = json.dumps(sales, ensure_ascii=False, separators=(",", ":"))
                if pending is not None:
                    _written(result, progress, pending.result())
                pending = writer.submit(_write, warehouse, source, rows, len(sales), len(batch))
            if pending is not None:
                _written(result, progress, pending.result())
    finally:
        progress.close()
        warehouse.close()
        history.close()
    result.seconds = progress.seconds
    if result.bad > BAD_ROWS_SHOWN:
        say(f"history load: ... and {result.bad - BAD_ROWS_SHOWN:,} more bad rows")
    return result


def _bad(result: LoadResult, row: BadRow, say: Callable[[str], None]) -> None:
    result.bad += 1
    if result.bad <= BAD_ROWS_SHOWN:
        say(f"history load: bad row, not loaded: {row}")


def _written(result: LoadResult, progress: Progress, counts: tuple[int, int, int]) -> None:
    inserted, offered, read = counts
    result.inserted += inserted
    result.already += offered - inserted
    progress.advance(read)


def _write(warehouse: Warehouse, source: str, rows: str, offered: int, read: int) -> tuple[int, int, int]:
    """One batch in one transaction: (rows inserted, rows offered, rows read)."""
    if not offered:
        return 0, 0, read
    return warehouse.insert_missing_sales(source, rows), offered, read
