"""Snowflake: connection, schema bootstrap and the transactional batch write of RAW_EVENTS_STREAM.

One code path for a real account and the embedded Snowflake: both go through
`snowflake.connector.connect`, the embedded one with host/port/protocol pointing at it.
Blocking calls: the sink runs them in a thread, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

import snowflake.connector
from snowflake.connector import DictCursor, SnowflakeConnection
from snowflake.connector.backoff_policies import exponential_backoff
from snowflake.connector.cursor import SnowflakeCursor, SnowflakeCursorBase
from snowflake.connector.errors import DataError, Error, IntegrityError, ProgrammingError

from caves_faust import dlq_events
from caves_faust.settings import Settings

log = logging.getLogger(__name__)

RAW_EVENTS_TABLE = "RAW_EVENTS_STREAM"
OFFSETS_TABLE = "SINK_OFFSETS"

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {RAW_EVENTS_TABLE} (
        EVENT_TYPE VARCHAR(50),
        PRODUCT_ID INTEGER,
        CUSTOMER_ID INTEGER,
        EVENT_METADATA OBJECT NOT NULL,
        EVENT_CONTENT VARIANT NOT NULL,
        INGESTION_TIME TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )""",
    # Per source partition, the highest Kafka offset already in RAW_EVENTS_STREAM: written in the same
    # transaction as the rows, so a replay after any crash or rebalance skips what is already stored.
    f"""CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (
        TOPIC VARCHAR NOT NULL,
        PARTITION INTEGER NOT NULL,
        HIGH_WATER INTEGER NOT NULL,
        UPDATED_AT TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )""",
    *dlq_events.DDL,
]

# One small statement per batch with the whole batch bound as one JSON array parameter, bound on the
# server (qmark paramstyle): the statement stays a few hundred bytes however large the batch, instead of
# the connector inlining megabytes of literal for the server to tokenize, and values never touch the SQL.
INSERT_BATCH = f"""INSERT INTO {RAW_EVENTS_TABLE} (EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT)
    SELECT value:c:event_type::VARCHAR, value:c:product_id::INTEGER, value:c:customer_id::INTEGER,
           value:m::OBJECT, value:c
    FROM TABLE(FLATTEN(input => PARSE_JSON(?)))"""

# Optimistic fencing: the row moves only if nobody else moved it since we read it, so a worker that
# lost its partitions in a rebalance (a zombie) cannot commit duplicates behind the new owner.
ADVANCE_HIGH_WATER = f"""UPDATE {OFFSETS_TABLE} SET HIGH_WATER = s.NEW_HW, UPDATED_AT = CURRENT_TIMESTAMP()
    FROM (SELECT value:p::INTEGER AS P, value:old::INTEGER AS OLD_HW, value:new::INTEGER AS NEW_HW
          FROM TABLE(FLATTEN(input => PARSE_JSON(?)))) s
    WHERE {OFFSETS_TABLE}.TOPIC = ? AND {OFFSETS_TABLE}.PARTITION = s.P AND {OFFSETS_TABLE}.HIGH_WATER = s.OLD_HW"""

INSERT_HIGH_WATER = f"INSERT INTO {OFFSETS_TABLE} (TOPIC, PARTITION, HIGH_WATER) VALUES (?, ?, ?)"

READ_HIGH_WATERS = f"SELECT PARTITION, MAX(HIGH_WATER) FROM {OFFSETS_TABLE} WHERE TOPIC = ? GROUP BY PARTITION"

# The locks this user's transactions hold, in every session: resource, type, transaction, transaction_started_on,
# status (HOLDING or WAITING), acquired_on, query_id. Transactions are aborted by id.
SHOW_LOCKS = "SHOW LOCKS"
ABORT_TRANSACTION = "SELECT SYSTEM$ABORT_TRANSACTION(?)"

# Snowflake's error when a statement found a table locked by another transaction past LOCK_TIMEOUT ("... has locked
# table ... and this lock has not yet been released").
LOCK_CONFLICT_ERRNO = 625
# Snowflake's error for a statement cancelled, here by the connector once it outlived `network_timeout`: slowness,
# never the rows' content.
STATEMENT_CANCELLED_ERRNO = 604
# How long a statement waits for a lock, as a share of SNOWFLAKE_TIMEOUT_SECONDS: the wait must end in Snowflake's
# lock error, which the sink recognises, before the connector's timeout makes it look like an outage.
LOCK_WAIT_SHARE = 0.5


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether a statement failed because another transaction holds a lock it needs."""
    return isinstance(exc, Error) and exc.errno == LOCK_CONFLICT_ERRNO

# The offsets of a source partition's range that are in the table (streaming: which rows the service refused).
READ_STORED_OFFSETS = f"""SELECT EVENT_METADATA:offset::INTEGER FROM {RAW_EVENTS_TABLE}
    WHERE EVENT_METADATA:topic::VARCHAR = ? AND EVENT_METADATA:partition::INTEGER = ?
      AND EVENT_METADATA:offset::INTEGER BETWEEN ? AND ?"""


def is_content_error(exc: BaseException) -> bool:
    """Whether Snowflake refused the statement for what it contains (vs. being unreachable, restarting, slow,
    expiring our session, or waiting on a lock). Connection-class SQLSTATEs (08xxx) are outages even on a
    ProgrammingError."""
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return (isinstance(exc, (ProgrammingError, DataError, IntegrityError)) and not sqlstate.startswith("08")
            and not is_lock_conflict(exc) and exc.errno != STATEMENT_CANCELLED_ERRNO)


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


# What a warehouse call raises when Snowflake fails: connector errors and the network below them.
WAREHOUSE_ERRORS = (Error, OSError)

# The longest the connector sleeps between two tries of one request. It retries until `network_timeout`, but
# sleeps whatever its policy says after a try that ended within it, and its own cap (16 s) could triple a 5 s
# timeout; the sink's backoff is what rides out an outage.
CONNECTOR_RETRY_CAP_SECONDS = 1


def is_outage(exc: BaseException) -> bool:
    """Whether a warehouse call failed without an answer from Snowflake (the sink then drops the connection)."""
    return isinstance(exc, WAREHOUSE_ERRORS) and not is_content_error(exc) and not is_lock_conflict(exc)


class FencedOut(Exception):
    """Another writer advanced a partition's high-water mark: our view of it is stale."""


@dataclass(frozen=True)
class Batch:
    """One transaction: rows (each a JSON object text {"m": metadata, "c": content}) and high-water moves."""

    rows: list[str]
    # partition -> (high-water before, high-water after); before is None when the partition has no row yet.
    high_waters: Mapping[int, tuple[int | None, int]]
    letters: list[str] = field(default_factory=list)  # the batch's dead letters, for DLQ_EVENTS (dlq_events.py)
    replayed: str = ""  # the letters whose replay the rows store, to mark in DLQ_EVENTS (JSON; "": none)


def rows_json(rows: list[str]) -> str:
    return "[" + ",".join(rows) + "]"


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """Connector arguments; secrets are passed here only, never logged."""
    common: dict[str, Any] = {
        "user": settings.snowflake_user,
        "database": settings.snowflake_database,
        "schema": settings.snowflake_schema,
        "login_timeout": settings.snowflake_timeout_seconds,
        "network_timeout": settings.snowflake_timeout_seconds,
        "backoff_policy": exponential_backoff(cap=CONNECTOR_RETRY_CAP_SECONDS),
        # Each HTTP try too (connect, then each read): the connector's default, 60 s, outlasts a stalled network.
        "socket_timeout": math.ceil(settings.snowflake_timeout_seconds),
        "application": "caves_faust",
        "paramstyle": "qmark",
        "session_parameters": {"LOCK_TIMEOUT": max(1, int(settings.snowflake_timeout_seconds * LOCK_WAIT_SHARE))},
    }
    if settings.embedded_snowflake:
        return {
            **common, "account": "embedded", "password": "embedded",
            "host": settings.snowflake_host, "port": settings.snowflake_port, "protocol": settings.snowflake_protocol,
        }
    kwargs = {**common, "account": settings.snowflake_account}
    if settings.snowflake_private_key_file:
        kwargs["authenticator"] = "SNOWFLAKE_JWT"
        kwargs["private_key_file"] = settings.snowflake_private_key_file
        if settings.snowflake_private_key_passphrase:
            kwargs["private_key_file_pwd"] = str(settings.snowflake_private_key_passphrase)
    else:
        kwargs["password"] = str(settings.snowflake_password)
    for name, value in (("warehouse", settings.snowflake_warehouse), ("role", settings.snowflake_role)):
        if value:
            kwargs[name] = value
    return kwargs


def describe(settings: Settings) -> str:
    """Where the warehouse is, for logs: no credentials."""
    where = (
        f"embedded {settings.snowflake_protocol}://{settings.snowflake_host}:{settings.snowflake_port}"
        if settings.embedded_snowflake else f"account {settings.snowflake_account}"
    )
    return f"{where} {settings.snowflake_database}.{settings.snowflake_schema}"


def what_to_check(settings: Settings) -> str:
    """What to check when Snowflake refuses the tables' creation or the marks' read (a configuration problem)."""
    where = f"{settings.snowflake_database}.{settings.snowflake_schema}"
    return (f"check that the database and schema {where} exist and that the role "
            f"{settings.snowflake_role or '(the default role)'} of user {settings.snowflake_user} has USAGE on them "
            f"and may create and use the tables {where}.{RAW_EVENTS_TABLE} and {where}.{OFFSETS_TABLE}")


class Warehouse:
    """A single connection, reopened after an outage. Not thread-safe: one caller at a time."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._conn: SnowflakeConnection | None = None

    def connection(self) -> SnowflakeConnection:
        if self._conn is None or self._conn.is_closed():
            self._conn = snowflake.connector.connect(**connect_kwargs(self.settings))
        return self._conn

    def cursor(self, kind: type[SnowflakeCursorBase] = SnowflakeCursor) -> AbstractContextManager[Any]:
        """A cursor on the connection, left unclosed after an outage (see `_cursor`)."""
        return _cursor(self.connection(), kind)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def reset(self) -> None:
        """Drop the connection after an outage; the next call reconnects. Closing it (ending its session, which
        rolls back a transaction left open) may wait on the dead network: it happens in a thread of its own."""
        conn, self._conn = self._conn, None
        if conn is not None:
            threading.Thread(target=_close_quietly, args=(conn,), name="snowflake-close", daemon=True).start()

    def bootstrap(self) -> None:
        with self.cursor() as cur:
            for statement in DDL:
                cur.execute(statement)

    def high_waters(self, topic: str) -> dict[int, int]:
        with self.cursor() as cur:
            cur.execute(READ_HIGH_WATERS, (topic,))
            return {int(p): int(hw) for p, hw in cur.fetchall()}

    def stored_offsets(self, topic: str, partition: int, low: int, high: int) -> set[int]:
        with self.cursor() as cur:
            cur.execute(READ_STORED_OFFSETS, (topic, partition, low, high))
            return {int(offset) for (offset,) in cur.fetchall()}

    def write(self, topic: str, batch: Batch) -> None:
        """Insert the rows and the dead letters, mark the replayed letters, advance the high-water marks, in one
        transaction; or raise and write nothing."""
        with _transaction(self.connection()) as cur:
            self._advance(cur, topic, batch.high_waters)
            dlq_events.write(cur, batch.letters, batch.replayed)
            if batch.rows:  # last: the crash tests' Snowflake proxy knows a row write by its INSERT before COMMIT
                cur.execute(INSERT_BATCH, (rows_json(batch.rows),))

    def file_letters(self, letters: list[str], replayed: str) -> None:
        """Streaming mode's DLQ_EVENTS statements (see dlq_events.py): the letters not in the table yet inserted,
        the replayed ones marked; each statement on its own, each harmless to run again."""
        with self.cursor() as cur:
            dlq_events.write(cur, letters, replayed, missing_only=True)

    def abort_stale_transactions(self, held_seconds: float) -> list[int]:
        """Abort the transactions of this user that have held a lock on SINK_OFFSETS for more than `held_seconds`
        (see `stale_transactions`); returns their ids."""
        table = f"{self.settings.snowflake_database}.{self.settings.snowflake_schema}.{OFFSETS_TABLE}"
        with self.cursor(DictCursor) as cur:
            cur.execute(SHOW_LOCKS)
            stale = stale_transactions(cur.fetchall(), table, datetime.now(timezone.utc), held_seconds)
            for transaction in sorted(stale):
                cur.execute(ABORT_TRANSACTION, (transaction,))
        return sorted(stale)

    def accepts(self, rows: list[str]) -> bool:
        """Whether Snowflake accepts these rows, tried in a transaction that is always rolled back."""
        try:
            with _transaction(self.connection(), commit=False) as cur:
                cur.execute(INSERT_BATCH, (rows_json(rows),))
        except WAREHOUSE_ERRORS as exc:
            if is_content_error(exc):
                return False
            raise
        return True

    def rejected(self, rows: list[str]) -> list[int]:
        """Indexes of the rows Snowflake refuses for their content (bisection: few probes for few bad rows)."""
        if self.accepts(rows):
            return []
        if len(rows) == 1:
            return [0]
        middle = len(rows) // 2
        return self.rejected(rows[:middle]) + [middle + i for i in self.rejected(rows[middle:])]

    @staticmethod
    def _advance(cur: Any, topic: str, high_waters: Mapping[int, tuple[int | None, int]]) -> None:
        known = [{"p": p, "old": old, "new": new} for p, (old, new) in high_waters.items() if old is not None]
        if known:
            cur.execute(ADVANCE_HIGH_WATER, (json.dumps(known), topic))
            if cur.rowcount < len(known):
                raise FencedOut(f"{topic}: high-water marks moved under us ({cur.rowcount}/{len(known)} advanced)")
        for p, (old, new) in high_waters.items():
            if old is None:
                cur.execute(INSERT_HIGH_WATER, (topic, p, new))


def _close_quietly(conn: SnowflakeConnection) -> None:
    try:
        conn.close(retry=False)
    except Exception as exc:  # the session expires on its own; Snowflake then rolls back what it left open
        log.debug("snowflake: closing a dropped connection failed: %s", exc)


# After an outage nothing more is sent on the connection: the sink drops it, and Snowflake rolls back the open
# transaction when the session closes (or the stale-lock abort does, if it never closes). A ROLLBACK, or closing
# the cursor (which waits for the connector's cancel of a statement that outlived `network_timeout`), would each
# wait out SNOWFLAKE_TIMEOUT_SECONDS again over the same dead network before the sink could notice the outage.

@contextmanager
def _cursor(conn: SnowflakeConnection, kind: type[SnowflakeCursorBase] = SnowflakeCursor) -> Iterator[Any]:
    """A cursor, closed unless a statement met an outage."""
    cur = conn.cursor(kind)
    try:
        yield cur
    except BaseException as exc:
        if not is_outage(exc):
            cur.close()
        raise
    cur.close()


@contextmanager
def _transaction(conn: SnowflakeConnection, commit: bool = True) -> Iterator[Any]:
    """BEGIN ... COMMIT (or ROLLBACK when not `commit`); rolled back after a failure Snowflake answered."""
    with _cursor(conn) as cur:
        cur.execute("BEGIN")
        try:
            yield cur
            if commit:
                cur.execute("COMMIT")
            else:
                cur.execute("ROLLBACK")
        except BaseException as exc:
            if not is_outage(exc):
                # If this fails, its error replaces `exc`: an outage, so the transaction's end is unknown and the
                # sink drops the connection rather than begin the next transaction inside this one.
                cur.execute("ROLLBACK")
            raise
