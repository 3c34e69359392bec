"""Which transactions the sink aborts on a lock conflict: only those holding SINK_OFFSETS longer than a live
write ever does (rows shaped as Snowflake's SHOW LOCKS returns them)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from snowflake.connector.errors import OperationalError, ProgrammingError

from caves_faust.snowflake.errors import is_lock_conflict
from caves_faust.snowflake.locks import stale_transactions

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
TABLE = "WINE_SALES_DB.RAW_DATA.SINK_OFFSETS"


def lock(transaction: int, held_seconds: float, resource: str = TABLE, status: str = "HOLDING") -> dict:
    acquired = NOW - timedelta(seconds=held_seconds) if status == "HOLDING" else None
    return {"resource": resource, "type": "PARTITIONS", "transaction": transaction,
            "transaction_started_on": NOW - timedelta(seconds=held_seconds + 1), "status": status,
            "acquired_on": acquired, "query_id": "q"}


def test_only_locks_on_the_marks_held_longer_than_the_bound_are_stale():
    locks = [
        lock(1, 300),  # a worker killed inside a write, minutes ago
        lock(2, 0.4),  # a live worker's write
        lock(3, 300, status="WAITING"),  # waiting, holding nothing
        lock(4, 300, resource="WINE_SALES_DB.RAW_DATA.RAW_EVENTS_STREAM"),  # another table
        lock(5, 300, resource="OTHER_DB.RAW_DATA.SINK_OFFSETS"),  # another deployment's marks
        lock(6, 300, resource="SINK_OFFSETS"),  # a bare table name
        {**lock(7, 300), "acquired_on": (NOW - timedelta(seconds=300)).replace(tzinfo=None)},  # naive: UTC
    ]
    assert stale_transactions(locks, TABLE, NOW, held_seconds=60) == {1, 6, 7}
    assert stale_transactions(locks, TABLE, NOW, held_seconds=600) == set()


def test_a_lock_conflict_is_told_from_other_errors():
    assert is_lock_conflict(ProgrammingError(msg="has locked table", errno=625, sqlstate="57014"))
    assert not is_lock_conflict(ProgrammingError(msg="invalid identifier", errno=904, sqlstate="42000"))
    assert not is_lock_conflict(OperationalError(msg="timeout", errno=250001))
