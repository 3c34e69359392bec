"""The embedded Snowflake: a fakesnow server (DuckDB-backed, Snowflake's HTTP API) with its data on disk.

The worker reaches it through `snowflake.connector.connect(host=..., port=..., protocol="http")`, the same
code path as a real account. fakesnow's own `--server` mode keeps data in memory only; this entry point
gives its shared instance a database directory so that data survives a restart, and rewrites the statements
fakesnow would run unlike Snowflake (`snowflake_fidelity.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import importlib
import itertools
import json
import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from caves_faust.devstack.process import ManagedProcess
from caves_faust.devstack.snowflake_fidelity import FidelityLayer, session_token
from caves_faust.devstack.snowpipe import COMMIT_SECONDS, OMITTED_COLUMNS, Snowpipe

log = logging.getLogger("caves_faust.devstack.snowflake")

# Snowflake aborts a transaction left open by a session that went away (a client killed inside it) once it is idle
# and blocking others for 5 minutes; fakesnow would keep it forever, and the rows it holds make every later writer
# of the same rows fail. The embedded Snowflake ends such sessions after this long idle inside a transaction.
DETACHED_TRANSACTION_SECONDS = 300.0
LOCK_CONFLICT_ERRNO = 625  # Snowflake's "... has locked table ... and this lock has not yet been released"


@dataclass
class EmbeddedSnowflake(ManagedProcess):
    detached_transaction_seconds: float = DETACHED_TRANSACTION_SECONDS
    streaming_commit_seconds: float = COMMIT_SECONDS
    streaming_omitted_columns: str = OMITTED_COLUMNS[0]

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "caves_faust.devstack.snowflake",
                "--port", str(self.port), "--data-dir", str(self.data_dir.resolve()),
                "--detached-transaction-seconds", str(self.detached_transaction_seconds),
                "--streaming-commit-seconds", str(self.streaming_commit_seconds),
                "--streaming-omitted-columns", self.streaming_omitted_columns]


@dataclass
class _Transaction:
    id: int
    started_on: datetime
    last_used: float  # time.monotonic() of its last statement
    locks: dict[str, datetime] = field(default_factory=dict)  # DATABASE.SCHEMA.TABLE written -> when first


class Transactions:
    """Follows each session's explicit transaction as Snowflake does, to answer SHOW TRANSACTIONS, SHOW LOCKS and
    SYSTEM$ABORT_TRANSACTION (fakesnow has none of them), and to end what a client left behind: a transaction
    open when its session logs out is rolled back, and a session idle inside one for `detached_seconds` is rolled
    back and ended, as Snowflake does with a detached transaction (its client, if alive after all, logs in again).
    A transaction holds a lock on each table it wrote (INSERT, UPDATE, DELETE, MERGE) until it ends."""

    def __init__(self, sessions: dict[str, Any], detached_seconds: float):
        self.sessions = sessions  # fakesnow's: token -> connection
        self.detached_seconds = detached_seconds
        self.users: dict[str, str] = {}  # token -> the user it logged in as
        self.session_ids: dict[str, int] = {}
        self.open: dict[str, _Transaction] = {}
        self.busy: Counter[str] = Counter()
        self._ids = itertools.count(int(time.time() * 1000))

    def logging_in(self, login_request: Callable) -> Callable:
        async def endpoint(request: Any) -> Any:
            user = _json_body(await request.body(), request.headers.get("Content-Encoding"))["data"]["LOGIN_NAME"]
            response = await login_request(request)
            token = json.loads(response.body)["data"]["token"]
            self.users[token] = str(user).upper()
            self.session_ids[token] = next(self._ids)
            return response

        return endpoint

    def logging_out(self, session_request: Callable) -> Callable:
        async def endpoint(request: Any) -> Any:
            token = session_token(request)
            if request.query_params.get("delete") and token in self.open:
                await self._end(token)
            return await session_request(request)

        return endpoint

    def watching(self, query_request: Callable) -> Callable:
        async def endpoint(request: Any) -> Any:
            token = session_token(request)
            body = _json_body(await request.body(), request.headers.get("Content-Encoding"))
            sql = str(body.get("sqlText", ""))
            answer = self._answer(token, sql, body.get("bindings") or {})
            if answer is not None:
                request = _with_sql(request, body, await answer)
            self.busy[token] += 1
            try:
                response = await query_request(request)
            finally:
                self.busy[token] -= 1
            self._follow(token, sql, succeeded=bool(json.loads(response.body).get("success")))
            return response

        return endpoint

    def _answer(self, token: str, sql: str, bindings: dict) -> Awaitable[str] | None:
        """The query that answers one of the statements emulated here, or None for the others."""
        words = sql.upper().split()
        if words[:2] == ["SHOW", "TRANSACTIONS"]:
            return _ready(self._show_transactions(token))
        if words[:2] == ["SHOW", "LOCKS"]:
            return _ready(self._show_locks(token))
        called = _ABORT.match(sql)
        if called:
            argument = called.group(1)
            transaction = bindings["1"]["value"] if argument == "?" else argument
            return self._abort(token, int(transaction))
        return None

    def _show_transactions(self, token: str) -> str:
        rows = [(t.id, self.users.get(other, ""), self.session_ids.get(other, 0), f"txn-{t.id}", t.started_on,
                 "running", 0) for other, t in self._of_same_user(token)]
        return _values(TRANSACTION_COLUMNS, rows)

    def _show_locks(self, token: str) -> str:
        rows = [(table, "PARTITIONS", t.id, t.started_on, "HOLDING", acquired, "")
                for _, t in self._of_same_user(token) for table, acquired in t.locks.items()]
        return _values(LOCK_COLUMNS, rows)

    async def _abort(self, token: str, transaction: int) -> str:
        column = f"SYSTEM$ABORT_TRANSACTION({transaction})"
        for other, t in self._of_same_user(token):
            if t.id == transaction:
                await self._end(other)
                log.warning("aborted transaction %d on request, and ended its session", transaction)
                return _values([(column, "VARCHAR")], [(f"Aborted transaction id: {transaction}",)])
        return _values([(column, "VARCHAR")], [(f"Transaction {transaction} is not running",)])

    def _of_same_user(self, token: str) -> list[tuple[str, _Transaction]]:
        user = self.users.get(token)
        return [(other, t) for other, t in self.open.items() if self.users.get(other) == user]

    def _follow(self, token: str, sql: str, succeeded: bool) -> None:
        sql = _LEADING_COMMENTS.sub("", sql)
        verb = _first_word(sql)
        if verb in ("COMMIT", "ROLLBACK", "CREATE", "ALTER", "DROP"):  # the transaction ends, even on a failure
            self.open.pop(token, None)
        elif not succeeded:
            return
        elif verb in ("BEGIN", "START"):
            self.open[token] = _Transaction(next(self._ids), datetime.now(timezone.utc), time.monotonic())
        elif token in self.open:
            transaction = self.open[token]
            transaction.last_used = time.monotonic()
            written = _WRITE.match(sql)
            if written:
                table = self._qualified(token, written.group(1))
                transaction.locks.setdefault(table, datetime.now(timezone.utc))

    def _qualified(self, token: str, name: str) -> str:
        parts = name.replace('"', "").upper().split(".")
        conn = self.sessions.get(token)
        context = [str(getattr(conn, "database", "") or ""), str(getattr(conn, "schema", "") or "")]
        return ".".join(context[:3 - len(parts)] + parts) if len(parts) < 3 else ".".join(parts)

    async def _end(self, token: str) -> None:
        """Roll back the session's transaction and end the session."""
        self.open.pop(token, None)
        conn = self.sessions.pop(token, None)
        if conn is not None:
            await asyncio.to_thread(conn.rollback)

    async def abort_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.detached_seconds / 4))
            for token, transaction in list(self.open.items()):
                if not self.busy[token] and time.monotonic() - transaction.last_used > self.detached_seconds:
                    log.warning("aborting a transaction idle for %.0fs and ending its session", self.detached_seconds)
                    await self._end(token)


TRANSACTION_COLUMNS = [("id", "BIGINT"), ("user", "VARCHAR"), ("session", "BIGINT"), ("name", "VARCHAR"),
                       ("started_on", "TIMESTAMP_LTZ"), ("state", "VARCHAR"), ("scope", "BIGINT")]
LOCK_COLUMNS = [("resource", "VARCHAR"), ("type", "VARCHAR"), ("transaction", "BIGINT"),
                ("transaction_started_on", "TIMESTAMP_LTZ"), ("status", "VARCHAR"), ("acquired_on", "TIMESTAMP_LTZ"),
                ("query_id", "VARCHAR")]
# Comments before a statement's first word: dbt opens its transactions with "-- back compat ...\n begin".
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_ABORT = re.compile(r"\s*SELECT\s+SYSTEM\$ABORT_TRANSACTION\(\s*(\?|\d+)\s*\)\s*;?\s*$", re.I)
_WRITE = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO)\s+([A-Za-z0-9_$.\"]+)", re.I)


def _first_word(sql: str) -> str:
    words = _LEADING_COMMENTS.sub("", sql).split(None, 1)
    return words[0].upper() if words else ""


def _values(columns: list[tuple[str, str]], rows: list[tuple]) -> str:
    """A query returning `rows` under these column names and Snowflake types (values are this module's own)."""
    names = ", ".join(f'"{name}"' for name, _ in columns)
    if not rows:
        nulls = ", ".join(f"NULL::{kind}" for _, kind in columns)
        return f"SELECT * FROM (VALUES ({nulls})) AS t({names}) WHERE FALSE"
    typed = [", ".join(f"{_literal(value)}::{kind}" for value, (_, kind) in zip(row, columns, strict=True))
             for row in rows]
    return f"SELECT * FROM (VALUES {', '.join(f'({r})' for r in typed)}) AS t({names})"


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.isoformat(sep=" ")
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _ready(value: str) -> str:
    return value


def _with_sql(request: Any, body: dict, sql: str) -> Any:
    """The same request carrying another statement (and no bindings)."""
    from starlette.requests import Request

    replaced = json.dumps({**body, "sqlText": sql, "bindings": None}).encode()
    if request.headers.get("Content-Encoding") == "gzip":
        replaced = gzip.compress(replaced)

    async def receive() -> dict:
        return {"type": "http.request", "body": replaced, "more_body": False}

    return Request(request.scope, receive)


def _json_body(body: bytes, encoding: str | None) -> dict:
    try:
        parsed = json.loads(gzip.decompress(body) if encoding == "gzip" else body)
    except (ValueError, OSError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _lock_conflicts_as_snowflake_errors() -> None:
    """DuckDB refuses a write to a row another open transaction wrote ("Conflict on update"), which fakesnow
    answers with an HTTP 500 the connector retries for ever; Snowflake answers a statement blocked by a lock
    with its lock error (after LOCK_TIMEOUT: DuckDB does not wait)."""
    import duckdb
    from fakesnow.cursor import FakeSnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    execute = FakeSnowflakeCursor.execute

    def execute_or_lock_error(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return execute(self, *args, **kwargs)
        except duckdb.TransactionException as exc:
            if "Conflict" not in str(exc):
                raise
            raise ProgrammingError(msg="Statement has locked table in another transaction and this lock has not yet "
                                       f"been released ({exc})", errno=LOCK_CONFLICT_ERRNO, sqlstate="57014") from None

    FakeSnowflakeCursor.execute = execute_or_lock_error  # type: ignore[method-assign]


def serve(host: str, port: int, data_dir: Path, detached_transaction_seconds: float,
          streaming_commit_seconds: float, streaming_omitted_columns: str = OMITTED_COLUMNS[0]) -> None:
    import uvicorn
    from fakesnow.instance import FakeSnow
    from starlette.applications import Starlette
    from starlette.routing import Route

    fakesnow_server: Any = importlib.import_module("fakesnow.server")  # the package also exports a function `server`
    # Every session shares one DuckDB instance whose databases are files under data_dir.
    fakesnow_server.shared_fs = FakeSnow(db_path=data_dir)
    _lock_conflicts_as_snowflake_errors()
    transactions = Transactions(fakesnow_server.sessions, detached_transaction_seconds)
    fidelity = FidelityLayer(fakesnow_server.sessions)
    # Snowpipe Streaming's REST API on the same data, and SHOW CHANNELS on the SQL endpoint.
    snowpipe = Snowpipe(fakesnow_server.shared_fs, streaming_commit_seconds, streaming_omitted_columns)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(transactions.abort_idle()), asyncio.create_task(snowpipe.commit_forever())]
        yield
        for task in tasks:
            task.cancel()

    def queries(endpoint: Callable) -> Callable:
        return transactions.watching(snowpipe.answering_show_channels(fakesnow_server.sessions,
                                                                      fidelity.wrapping(endpoint)))

    wrappers: dict[str, Callable[[Callable], Callable]] = {
        "/queries/v1/query-request": queries,
        "/session/v1/login-request": transactions.logging_in, "/session": transactions.logging_out,
    }
    routes = [
        Route(route.path, wrappers[route.path](route.endpoint), methods=route.methods)
        if route.path in wrappers else route
        for route in fakesnow_server.app.routes
    ] + snowpipe.routes()
    uvicorn.run(Starlette(debug=True, routes=routes, lifespan=lifespan), host=host, port=port, log_level="warning")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Embedded Snowflake (fakesnow) with on-disk data")
    # Loopback unless opened on purpose (0.0.0.0 in Docker, where the worker is another container).
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--detached-transaction-seconds", type=float, default=DETACHED_TRANSACTION_SECONDS,
                        help="roll back a transaction idle this long and end its session (default: %(default)s)")
    parser.add_argument("--streaming-commit-seconds", type=float, default=COMMIT_SECONDS,
                        help="Snowpipe Streaming: commit appended rows this long after (default: %(default)s)")
    parser.add_argument("--streaming-omitted-columns", choices=OMITTED_COLUMNS, default=OMITTED_COLUMNS[0],
                        help="Snowpipe Streaming: what a column the rows leave out becomes (default: %(default)s)")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.data_dir, args.detached_transaction_seconds, args.streaming_commit_seconds,
          args.streaming_omitted_columns)


if __name__ == "__main__":
    main()
