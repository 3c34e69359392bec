"""Which transactions hold a lock too long: those of a writer that died inside a write, to abort."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping


def stale_transactions(locks: Iterable[Mapping[str, Any]], table: str, now: datetime, held_seconds: float) -> set[int]:
    """The transactions (SHOW LOCKS rows) holding a lock on `table` (DATABASE.SCHEMA.NAME) for more than
    `held_seconds`: a live writer holds its lock on SINK_OFFSETS for its last two statements only, each given up
    after SNOWFLAKE_TIMEOUT_SECONDS, so a lock held longer belongs to a writer that died or abandoned it."""
    stale = set()
    for lock in locks:
        acquired = lock.get("acquired_on")
        if lock.get("status") != "HOLDING" or not isinstance(acquired, datetime):
            continue
        if acquired.tzinfo is None:
            acquired = acquired.replace(tzinfo=timezone.utc)
        if _same_table(str(lock.get("resource", "")), table) and (now - acquired).total_seconds() > held_seconds:
            stale.add(int(lock["transaction"]))
    return stale


def _same_table(resource: str, table: str) -> bool:
    """Whether a lock's resource (qualified, or a bare table name) names `table`."""
    named = resource.replace('"', "").upper().split(".")
    return named == table.upper().split(".")[-len(named):]
