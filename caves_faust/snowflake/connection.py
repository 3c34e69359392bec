"""The connection to Snowflake: schema bootstrap, the transactional batch write of RAW_EVENTS_STREAM (rows, dead
letters and high-water marks together), and the reads the sinks and `audit` make.

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
from typing import Any, Iterator, Mapping

import snowflake.connector
from snowflake.connector import DictCursor, SnowflakeConnection
from snowflake.connector.backoff_policies import exponential_backoff
from snowflake.connector.cursor import SnowflakeCursor, SnowflakeCursorBase

from caves_faust.settings import Settings
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS, FencedOut, is_content_error, is_outage
from caves_faust.snowflake.history_tables import (
    DROP_SALES_TABLE,
    HISTORY_DDL,
    INSERT_MISSING_SALES,
    SALES_TABLES_OF_OLD_LAYOUT,
)
from caves_faust.snowflake.locks import stale_transactions
from caves_faust.snowflake.tables import (
    ABORT_TRANSACTION,
    ADOPT_MARKS,
    ADVANCE_HIGH_WATER,
    DDL,
    INSERT_BATCH,
    INSERT_HIGH_WATER,
    INSERT_LETTERS,
    INSERT_MISSING_LETTERS,
    MARK_REPLAYED,
    OFFSETS_TABLE,
    RAW_EVENTS_TABLE,
    READ_HIGH_WATERS,
    READ_STORED_MARKS,
    READ_STORED_OFFSETS,
    SHOW_LOCKS,
)

log = logging.getLogger(__name__)

# How long a statement waits for a lock, as a share of SNOWFLAKE_TIMEOUT_SECONDS: the wait must end in Snowflake's
# lock error, which the sink recognises, before the connector's timeout makes it look like an outage.
LOCK_WAIT_SHARE = 0.5
# The longest the connector sleeps between two tries of one request. It retries until `network_timeout`, but
# sleeps whatever its policy says after a try that ended within it, and its own cap (16 s) could triple a 5 s
# timeout; the sink's backoff is what rides out an outage.
CONNECTOR_RETRY_CAP_SECONDS = 1


@dataclass(frozen=True)
class StoredMarks:
    """What the tables hold of one source partition: its highest offset with a RAW_EVENTS_STREAM row, and with a
    DLQ_EVENTS letter (None: none)."""

    rows: int | None
    letters: int | None


@dataclass(frozen=True)
class Batch:
    """One transaction: rows (each a JSON object text {"m": metadata, "c": content}) and high-water moves."""

    rows: list[str]
    # partition -> (high-water before, high-water after); before is None when the partition has no row yet.
    high_waters: Mapping[int, tuple[int | None, int]]
    letters: list[str] = field(default_factory=list)  # the batch's dead letters, for DLQ_EVENTS
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
        self._adopted: set[tuple[str, str]] = set()  # (topic, topic id) whose marks of no known life were adopted

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

    def create_history_table(self) -> None:
        """BATCH_DATA.SALES, empty, unless there: `history load` fills it, the warehouse layers read it."""
        with self.cursor() as cur:
            for statement in HISTORY_DDL:
                cur.execute(statement)

    def insert_missing_sales(self, source: str, rows: str) -> int:
        """A history batch (JSON array) in one transaction, the lines BATCH_DATA.SALES lacks; returns how many went
        in. No ROLLBACK sent after an outage (see `_transaction`)."""
        with _transaction(self.connection()) as cur:
            cur.execute(INSERT_MISSING_SALES, (source, rows))
            return int(cur.rowcount or 0)

    def drop_sales_tables_of_old_layout(self) -> list[str]:
        """The PROD sales tables an earlier build left, not incremental yet, dropped (dbt builds them whole again)."""
        with self.cursor() as cur:
            cur.execute(SALES_TABLES_OF_OLD_LAYOUT)
            old = sorted(name for (name,) in cur.fetchall() if name in DROP_SALES_TABLE)
            for name in old:
                cur.execute(DROP_SALES_TABLE[name])
        return old

    def high_waters(self, topic: str, topic_id: str | None) -> dict[tuple[str | None, int], int]:
        """(topic id, partition) -> the highest offset stored, of every life of the topic; the marks of no known
        life taken for `topic_id`'s first (see ADOPT_MARKS)."""
        with self.cursor() as cur:
            if topic_id is not None and (topic, topic_id) not in self._adopted:  # an UPDATE: once, not per read
                cur.execute(ADOPT_MARKS, (topic_id, topic))
                self._adopted.add((topic, topic_id))
            cur.execute(READ_HIGH_WATERS, (topic,))
            return {(life, int(p)): int(hw) for life, p, hw in cur.fetchall()}

    def stored_marks(self, topic: str, topic_id: str | None, partition: int) -> StoredMarks:
        """The one place a partition's marks are derived from the tables themselves (a Snowpipe Streaming channel
        that opened without a token of this life of the topic, after 30 days unused): rows and letters are committed
        in offset order per channel, so what lies at or below the highest stored offset is stored (or was refused
        and dead-lettered). Rows and letters of no known life count as this one's (see ADOPT_MARKS)."""
        with self.cursor() as cur:
            cur.execute(READ_STORED_MARKS, (topic, partition, topic_id, topic_id, topic, partition, topic_id, topic_id))
            rows, letters = cur.fetchone() or (None, None)
            return StoredMarks(None if rows is None else int(rows), None if letters is None else int(letters))

    def stored_offsets(self, topic: str, topic_id: str | None, partition: int, low: int, high: int) -> set[int]:
        with self.cursor() as cur:
            cur.execute(READ_STORED_OFFSETS, (topic, topic_id, partition, low, high))
            return {int(offset) for (offset,) in cur.fetchall()}

    def write(self, topic: str, topic_id: str | None, batch: Batch) -> None:
        """Insert the rows and the dead letters, mark the replayed letters, advance the high-water marks of this
        life of the topic, in one transaction; or raise and write nothing."""
        with _transaction(self.connection()) as cur:
            self._advance(cur, topic, topic_id, batch.high_waters)
            write_letters(cur, batch.letters, batch.replayed)
            if batch.rows:  # last: the crash tests' Snowflake proxy knows a row write by its INSERT before COMMIT
                cur.execute(INSERT_BATCH, (rows_json(batch.rows),))

    def file_letters(self, letters: list[str], replayed: str) -> None:
        """Streaming mode's DLQ_EVENTS statements (see `write_letters`): the letters not in the table yet inserted,
        the replayed ones marked; each statement on its own, each harmless to run again."""
        with self.cursor() as cur:
            write_letters(cur, letters, replayed, missing_only=True)

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
    def _advance(cur: Any, topic: str, topic_id: str | None, high_waters: Mapping[int, tuple[int | None, int]]
                 ) -> None:
        known = [{"p": p, "old": old, "new": new} for p, (old, new) in high_waters.items() if old is not None]
        if known:
            cur.execute(ADVANCE_HIGH_WATER, (json.dumps(known), topic, topic_id))
            if cur.rowcount < len(known):
                raise FencedOut(f"{topic}: high-water marks moved under us ({cur.rowcount}/{len(known)} advanced)")
        for p, (old, new) in high_waters.items():
            if old is None:
                cur.execute(INSERT_HIGH_WATER, (topic, topic_id, p, new))


def write_letters(cur: Any, letters: list[str], replayed: str, missing_only: bool = False) -> None:
    """Insert the letters (`sink.rows.letter_rows`; with `missing_only`, those not in DLQ_EVENTS yet) and mark the
    letters replayed (`sink.rows.replayed_sources`): within the batch's transaction (`cur`) in warehouse mode, on
    their own in streaming mode.

    Warehouse mode: a letter's row is there exactly when its batch committed (the high-water marks move past every
    event of the batch, valid or not), so each letter is written once, like the rows; a letter is marked REPLAYED in
    the transaction that stores the event its replay sent. Streaming mode: the letters stream through channels of
    their own (offset token = the letter's source offset); the rows Snowflake refuses are only known once their batch
    committed, below letters the channel may have committed already, so theirs are inserted here unless there."""
    if letters:
        array = ("[" + ",".join(letters) + "]",)
        if missing_only:  # one constant statement per execute: the SQL check reads them
            cur.execute(INSERT_MISSING_LETTERS, array)
        else:
            cur.execute(INSERT_LETTERS, array)
    if replayed:
        cur.execute(MARK_REPLAYED, (replayed,))


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
