"""The embedded Snowflake's Snowpipe Streaming: the high-performance architecture's REST API, emulated from the
public documentation, writing into the same DuckDB tables fakesnow serves.

Invariants, as the documentation states them for the real service:
- a channel belongs to a pipe; only the default pipe `<TABLE>-STREAMING` exists here, mapping each NDJSON row's
  keys onto the table's columns by name (case-insensitive); a column a row leaves out is NULL, as the limitations
  page says of MATCH_BY_COLUMN_NAME (`omitted_columns="null"`, so a NOT NULL one refuses the row), or takes its
  default (`"default"`, what Snowflake's Kafka connector's tests expect: the sources disagree);
- opening a channel answers `channel_status_code` SUCCESS, bumps its client sequencer and discards its uncommitted
  appends (or answers 409 when asked `fail_on_uncommitted_rows` and there are some), so an append with an older
  continuation token fails (`STALE_CONTINUATION_TOKEN_SEQUENCER`): the previous owner is fenced out;
- each channel takes at most `requests_per_second` requests (opens, appends, and the bulk status requests naming
  it) in any second, and answers HTTP 429 past that;
- a channel unused for 30 days expires with its committed offset token (`expire`, an admin call here): opening it
  again creates a new channel, which answers no token;
- an append is acknowledged at once and committed later (`commit_seconds`): its rows become visible and the
  channel's committed offset token moves in one DuckDB transaction, never one without the other;
- a row the table cannot take (not JSON, a missing NOT NULL column, a value of the wrong type) is counted in
  the channel's error figures and skipped; the rest of its batch commits.
Channels live in `<DB>._SNOWPIPE_STREAMING.CHANNELS`, so committed tokens survive a restart; appends not
committed yet are lost with the process, as they are not durable on the real service either.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("caves_faust.devstack.snowpipe")

COMMIT_SECONDS = 1.0  # the real service commits in about a second (documented latency: 5-10 s to query)
# The limitations page's per-channel request rate ("Request rate: 10 requests per second (RPS)").
REQUESTS_PER_SECOND = 10
# What a column the rows leave out becomes: NULL (the limitations page) or its default (the connector's tests).
OMITTED_COLUMNS = ("null", "default")
SUCCESS = "SUCCESS"  # the channel status code of an open that worked (Snowflake's Openflow client checks it)
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # per append request, as sent (after compression)
DEFAULT_PIPE_SUFFIX = "-STREAMING"
ADMIN = "/embedded/streaming"  # the emulation's own calls, for tests
CHANNELS_SCHEMA = "_SNOWPIPE_STREAMING"
CHANNEL_COLUMNS = (
    "CREATED_ON", "DATABASE_NAME", "SCHEMA_NAME", "PIPE_NAME", "NAME", "CLIENT_SEQUENCER", "ROW_SEQUENCER",
    "OFFSET_TOKEN", "ROWS_INSERTED", "ROWS_PARSED", "ROWS_ERROR_COUNT", "LAST_ERROR_OFFSET_UPPER_BOUND",
    "LAST_ERROR_MESSAGE", "LAST_ERROR_TIMESTAMP",
)
CHANNELS_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {{db}}.{CHANNELS_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{CHANNELS_SCHEMA}.CHANNELS (
        CREATED_ON TIMESTAMP_LTZ, DATABASE_NAME VARCHAR, SCHEMA_NAME VARCHAR, PIPE_NAME VARCHAR, NAME VARCHAR,
        CLIENT_SEQUENCER INTEGER, ROW_SEQUENCER INTEGER, OFFSET_TOKEN VARCHAR, ROWS_INSERTED INTEGER,
        ROWS_PARSED INTEGER, ROWS_ERROR_COUNT INTEGER, LAST_ERROR_OFFSET_UPPER_BOUND VARCHAR,
        LAST_ERROR_MESSAGE VARCHAR, LAST_ERROR_TIMESTAMP TIMESTAMP_LTZ)""",
)
# SHOW CHANNELS's columns (documentation), from the channels table.
SHOW_CHANNELS = f"""SELECT CREATED_ON AS "created_on", NAME AS "name", DATABASE_NAME AS "database_name",
        SCHEMA_NAME AS "schema_name", REPLACE(PIPE_NAME, '{DEFAULT_PIPE_SUFFIX}', '') AS "table_name",
        CLIENT_SEQUENCER AS "client_sequencer", ROW_SEQUENCER AS "row_sequencer", OFFSET_TOKEN AS "offset_token",
        'PIPE' AS "parent_domain", PIPE_NAME AS "parent_name"
    FROM {{db}}.{CHANNELS_SCHEMA}.CHANNELS {{where}} ORDER BY DATABASE_NAME, SCHEMA_NAME, PIPE_NAME, NAME"""
SHOW_CHANNELS_PATTERN = re.compile(
    r"^\s*SHOW\s+CHANNELS(?:\s+LIKE\s+'(?P<like>[^']*)')?"
    r"(?:\s+IN\s+(?P<scope>ACCOUNT|DATABASE|SCHEMA|TABLE|PIPE)(?:\s+(?P<name>[\w.\"-]+))?)?\s*;?\s*$",
    re.IGNORECASE,
)
IDENTIFIER = re.compile(r"^[A-Z_][A-Z0-9_$]*$")
CASTS = {"NUMBER": "NUMBER({precision}, {scale})", "TEXT": "VARCHAR", "BOOLEAN": "BOOLEAN", "FLOAT": "DOUBLE",
         "TIMESTAMP_TZ": "TIMESTAMP_LTZ", "TIMESTAMP_NTZ": "TIMESTAMP_NTZ", "DATE": "DATE"}


class StreamingError(Exception):
    """An error answer of the REST API: HTTP status and the documented `{"code", "message"}` body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message}, status_code=self.status)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # fakesnow's information_schema DATA_TYPE: NUMBER, TEXT, VARIANT, TIMESTAMP_TZ...
    nullable: bool
    has_default: bool
    length: int | None
    precision: int | None
    scale: int | None

    def cast(self) -> str:
        if self.kind not in CASTS:  # VARIANT (and OBJECT, ARRAY, which fakesnow reports as VARIANT)
            return f'value:"{self.name}"'
        return f'value:"{self.name}"::' + CASTS[self.kind].format(precision=self.precision or 38,
                                                                     scale=self.scale or 0)

    def problem(self, value: Any) -> str | None:
        """Why this value cannot go into this column, like Snowflake's message for the row; None when it can."""
        if value is None:
            return None if self.nullable else f"NULL result in a non-nullable column {self.name}"
        if self.kind == "NUMBER":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                return f"Numeric value '{_short(value)}' is not recognized (column {self.name})"
            try:
                number = float(value)
            except ValueError:
                return f"Numeric value '{_short(value)}' is not recognized (column {self.name})"
            if abs(number) >= 10 ** ((self.precision or 38) - (self.scale or 0)):
                return f"Numeric value '{_short(value)}' is out of range (column {self.name})"
        elif self.kind == "TEXT" and self.length is not None and len(str(value)) > self.length:
            return f"String '{_short(value)}' is too long and would be truncated (column {self.name})"
        return None


def _short(value: Any) -> str:
    return str(value)[:40]


@dataclass
class Channel:
    database: str
    schema: str
    pipe: str
    name: str
    created_on: float
    client_sequencer: int = 0
    row_sequencer: int = 0
    offset_token: str | None = None
    rows_inserted: int = 0
    rows_parsed: int = 0
    rows_error_count: int = 0
    last_error_offset_upper_bound: str | None = None
    last_error_message: str | None = None
    last_error_timestamp: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.database, self.schema, self.pipe, self.name

    def continuation_token(self) -> str:
        return f"{self.client_sequencer}_{self.row_sequencer}"

    def status(self) -> dict[str, Any]:
        return {
            "database_name": self.database, "schema_name": self.schema, "pipe_name": self.pipe,
            "channel_name": self.name, "channel_status_code": SUCCESS,
            "last_committed_offset_token": self.offset_token, "created_on_ms": int(self.created_on * 1000),
            "rows_inserted": self.rows_inserted, "rows_parsed": self.rows_parsed,
            "rows_error_count": self.rows_error_count, "rows_errors": self.rows_error_count,
            "last_error_offset_upper_bound": self.last_error_offset_upper_bound,
            "last_error_message": self.last_error_message,
            "last_error_timestamp": _iso(self.last_error_timestamp),
            "snowflake_avg_processing_latency_ms": 0,
        }

    def record(self) -> tuple:
        return (_ts(self.created_on), self.database, self.schema, self.pipe, self.name, self.client_sequencer,
                self.row_sequencer, self.offset_token, self.rows_inserted, self.rows_parsed, self.rows_error_count,
                self.last_error_offset_upper_bound, self.last_error_message, _ts(self.last_error_timestamp))


def _ts(moment: float | None) -> datetime | None:
    return None if moment is None else datetime.fromtimestamp(moment, timezone.utc)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else _ts(moment).isoformat()  # type: ignore[union-attr]


@dataclass
class Append:
    """Rows acknowledged, waiting for their commit."""

    channel: Channel
    client_sequencer: int
    rows: list[dict[str, Any]]
    errors: list[str]
    end_offset_token: str | None
    due: float


@dataclass
class Snowpipe:
    """The channels of every pipe, the appends waiting for their commit, and the committer."""

    fakesnow: Any  # fakesnow.instance.FakeSnow: its DuckDB instance holds the tables
    commit_seconds: float = COMMIT_SECONDS
    omitted_columns: str = OMITTED_COLUMNS[0]
    requests_per_second: int = REQUESTS_PER_SECOND
    channels: dict[tuple[str, str, str, str], Channel] = field(default_factory=dict)
    waiting: list[Append] = field(default_factory=list)
    throttled: int = 0  # the next requests answered 429 whatever their rate (`throttle`, for tests)
    _requests: dict[tuple[str, str, str, str], deque[float]] = field(default_factory=dict)  # the last second's
    _loaded: set[str] = field(default_factory=set)
    _connections: dict[str, Any] = field(default_factory=dict)
    _columns: dict[tuple[str, str, str], list[Column]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # opens and commits, never at the same time
    _appended: asyncio.Event = field(default_factory=asyncio.Event)

    # --- REST endpoints ---
    def routes(self) -> list[Route]:
        channel = "/v2/streaming/databases/{database}/schemas/{schema}/pipes/{pipe}/channels/{channel}"
        return [
            Route("/v2/streaming/hostname", self._endpoint(self.hostname), methods=["GET"]),
            Route("/oauth/token", self._endpoint(self.scoped_token), methods=["POST"]),
            Route(channel, self._endpoint(self.open_channel), methods=["PUT"]),
            Route(channel, self._endpoint(self.drop_channel), methods=["DELETE"]),
            Route("/v2/streaming/data/databases/{database}/schemas/{schema}/pipes/{pipe}/channels/{channel}/rows",
                  self._endpoint(self.append_rows), methods=["POST"]),
            Route("/v2/streaming/databases/{database}/schemas/{schema}/pipes/{pipe}:bulk-channel-status",
                  self._endpoint(self.bulk_channel_status), methods=["POST"]),
            # Not Snowflake's: what tests do to the emulation that only time or the service's load does to a channel.
            Route(f"{ADMIN}/databases/{{database}}/schemas/{{schema}}/pipes/{{pipe}}/channels/{{channel}}:expire",
                  self._endpoint(self.expire, admin=True), methods=["POST"]),
            Route(f"{ADMIN}:throttle", self._endpoint(self.throttle, admin=True), methods=["POST"]),
        ]

    def _endpoint(self, handler: Callable, admin: bool = False) -> Callable:
        async def endpoint(request: Request) -> Response:
            try:
                if not admin and not request.headers.get("Authorization", "").startswith("Bearer "):
                    raise StreamingError(401, "ERR_UNAUTHORIZED", "Authorization header missing")
                return await handler(request)
            except StreamingError as error:
                return error.response()

        return endpoint

    async def hostname(self, request: Request) -> Response:
        return JSONResponse({"hostname": request.headers.get("host", "localhost")})

    async def scoped_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("scope"):
            raise StreamingError(400, "ERR_INVALID_GRANT", "grant_type jwt-bearer and scope are required")
        return JSONResponse({"token": "embedded-scoped-token"})

    async def open_channel(self, request: Request) -> Response:
        database, schema, pipe, name = _names(request)
        body = await _json_body(request)
        self._count_request((database, schema, pipe, name))
        async with self._lock:
            await self._load(database)
            await self._table_columns(database, schema, pipe)  # the pipe's table must exist
            channel = self.channels.get((database, schema, pipe, name))
            if channel is None:
                channel = Channel(database, schema, pipe, name, created_on=time.time())
                self.channels[channel.key] = channel
            else:
                if body.get("fail_on_uncommitted_rows") is True and any(a.channel is channel for a in self.waiting):
                    raise StreamingError(409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA",
                                         f"Channel {name} has uncommitted rows (fail_on_uncommitted_rows)")
                channel.client_sequencer += 1  # the previous owner's token is stale from now on
            if body.get("offset_token") is not None:
                channel.offset_token = str(body["offset_token"])
            self.waiting = [a for a in self.waiting if a.channel is not channel]  # uncommitted: discarded
            await self._save([channel])
        log.info("channel %s opened: client sequencer %d, committed offset token %s",
                 name, channel.client_sequencer, channel.offset_token)
        return JSONResponse({"next_continuation_token": channel.continuation_token(),
                             "channel_status": channel.status()})

    async def drop_channel(self, request: Request) -> Response:
        await self._remove(request)
        return JSONResponse({})

    async def append_rows(self, request: Request) -> Response:
        database, schema, pipe, name = _names(request)
        body = await request.body()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise StreamingError(413, "ERR_PAYLOAD_TOO_LARGE", f"Request payload over {MAX_PAYLOAD_BYTES} bytes")
        self._count_request((database, schema, pipe, name))
        channel = self.channels.get((database, schema, pipe, name))
        if channel is None:
            raise StreamingError(404, "ERR_CHANNEL_DOES_NOT_EXIST", f"Channel {name} does not exist or is not open")
        client_sequencer = _client_sequencer(request.query_params.get("continuationToken"))
        if client_sequencer != channel.client_sequencer:
            raise StreamingError(400, "STALE_CONTINUATION_TOKEN_SEQUENCER",
                                 "Channel sequencer in the continuation token is stale. Please reopen the channel")
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        columns = await self._table_columns(database, schema, pipe)
        rows, errors = _parse_rows(body, columns, self.omitted_columns)
        end = request.query_params.get("endOffsetToken") or request.query_params.get("offsetToken")
        channel.row_sequencer += 1
        due = time.monotonic() + self.commit_seconds
        self.waiting.append(Append(channel, client_sequencer, rows, errors, end, due))
        self._appended.set()
        return JSONResponse({"next_continuation_token": channel.continuation_token()})

    async def bulk_channel_status(self, request: Request) -> Response:
        database, schema, pipe, _ = _names(request, channel=False)
        names = (await _json_body(request)).get("channel_names")
        if not isinstance(names, list):
            raise StreamingError(400, "ERR_INVALID_REQUEST", "channel_names must be an array of channel names")
        # Whether a bulk request counts against each channel it names is not documented: here it does (stricter).
        for name in {n.upper() for n in names if isinstance(n, str)}:
            self._count_request((database, schema, pipe, name))
        async with self._lock:
            await self._load(database)
        found = (self.channels.get((database, schema, pipe, n.upper())) for n in names if isinstance(n, str))
        return JSONResponse({"channel_statuses": {c.name: c.status() for c in found if c is not None}})

    def _count_request(self, key: tuple[str, str, str, str]) -> None:
        """One more request on this channel: HTTP 429 past `requests_per_second` in the last second (or while
        throttled); a refused request is not counted, as it did nothing."""
        if self.throttled > 0:
            self.throttled -= 1
            raise StreamingError(429, "ERR_TOO_MANY_REQUESTS", "Too many requests (the embedded Snowflake was told "
                                 "to throttle)")
        now = time.monotonic()
        recent = self._requests.setdefault(key, deque())
        while recent and recent[0] <= now - 1:
            recent.popleft()
        if len(recent) >= self.requests_per_second:
            raise StreamingError(429, "ERR_TOO_MANY_REQUESTS",
                                 f"Too many requests on channel {key[3]}: over {self.requests_per_second} a second")
        recent.append(now)

    # --- admin calls (tests) ---
    async def expire(self, request: Request) -> Response:
        """The channel expires as after 30 days unused: it and its committed offset token are gone."""
        channel = await self._remove(request)
        log.info("channel %s expired with committed offset token %s", channel.name, channel.offset_token)
        return JSONResponse({"expired": channel.name, "offset_token": channel.offset_token})

    async def throttle(self, request: Request) -> Response:
        """Answer the next `requests` REST requests HTTP 429, as the service does under load."""
        requests = (await _json_body(request)).get("requests")
        if not isinstance(requests, int) or requests < 0:
            raise StreamingError(400, "ERR_INVALID_REQUEST", "requests: a count, 0 or more")
        before, self.throttled = self.throttled, requests
        return JSONResponse({"throttled": requests, "were_left": before})

    # --- the commit ---
    async def commit_forever(self) -> None:
        """Commit each append `commit_seconds` after it was acknowledged, in order, channel by channel."""
        while True:
            if not self.waiting:
                self._appended.clear()
                await self._appended.wait()
                continue
            await asyncio.sleep(max(0.0, self.waiting[0].due - time.monotonic()))
            try:
                await self._commit_due()
            except Exception:  # keep committing the next ones; this batch stays uncommitted, as if lost
                log.exception("commit failed")
                await asyncio.sleep(self.commit_seconds)

    async def _commit_due(self) -> None:
        async with self._lock:
            now = time.monotonic()
            due = [a for a in self.waiting if a.due <= now]
            self.waiting = [a for a in self.waiting if a.due > now]
            due = [a for a in due if a.client_sequencer == a.channel.client_sequencer]
            for database in {a.channel.database for a in due}:
                await self._commit(database, [a for a in due if a.channel.database == database])

    async def _commit(self, database: str, appends: list[Append]) -> None:
        statements: list[tuple[str, tuple]] = []
        for (_, schema, pipe), group in _by_pipe(appends).items():
            table_columns = await self._table_columns(database, schema, pipe)
            for (given, nulls), rows in _by_shape([row for a in group for row in a.rows]).items():
                # A column given null is NULL; one left out is NULL too, or in "default" mode takes its default.
                columns = [c for c in table_columns
                           if c.name in given or c.name in nulls or self.omitted_columns == "null"]
                values = [c.cast() if c.name in given else "NULL" for c in columns]
                statements.append((
                    f'INSERT INTO {database}.{schema}.{_table(pipe)} ({", ".join(c.name for c in columns)}) '
                    f'SELECT {", ".join(values)} FROM TABLE(FLATTEN(input => PARSE_JSON(?)))',
                    (json.dumps(rows, ensure_ascii=False),)))
        channels = {id(a.channel): a.channel for a in appends}.values()
        before = {id(c): (c.offset_token, c.rows_inserted, c.rows_parsed, c.rows_error_count) for c in channels}
        for append in appends:
            channel = append.channel
            channel.rows_inserted += len(append.rows)
            channel.rows_parsed += len(append.rows) + len(append.errors)
            if append.errors:
                channel.rows_error_count += len(append.errors)
                channel.last_error_message = append.errors[-1]
                channel.last_error_offset_upper_bound = append.end_offset_token
                channel.last_error_timestamp = time.time()
            if append.end_offset_token is not None:
                channel.offset_token = append.end_offset_token
        try:
            await self._save(list(channels), statements)
        except Exception:
            for channel in channels:  # not committed: the channels' figures stay as they were
                (channel.offset_token, channel.rows_inserted, channel.rows_parsed,
                 channel.rows_error_count) = before[id(channel)]
            raise

    async def _remove(self, request: Request) -> Channel:
        """The request's channel dropped or expired: its uncommitted appends and its row in the channels table go
        with it."""
        database, schema, pipe, name = _names(request)
        async with self._lock:
            await self._load(database)
            channel = self.channels.pop((database, schema, pipe, name), None)
            if channel is None:
                raise StreamingError(404, "ERR_CHANNEL_DOES_NOT_EXIST", f"Channel {name} does not exist")
            self.waiting = [a for a in self.waiting if a.channel is not channel]
            await self._run(database, [(f"DELETE FROM {database}.{CHANNELS_SCHEMA}.CHANNELS WHERE DATABASE_NAME = ? "
                                        "AND SCHEMA_NAME = ? AND PIPE_NAME = ? AND NAME = ?", channel.key)])
        return channel

    # --- DuckDB, through fakesnow's SQL ---
    async def _load(self, database: str) -> None:
        if database in self._loaded:
            return
        await self._run(database, [(ddl.format(db=database), ()) for ddl in CHANNELS_DDL])
        rows = await self._run(database, [(f"SELECT {', '.join(CHANNEL_COLUMNS)} FROM "
                                           f"{database}.{CHANNELS_SCHEMA}.CHANNELS", ())])
        for row in rows:
            channel = Channel(row[1], row[2], row[3], row[4], created_on=row[0].timestamp(),
                              client_sequencer=row[5], row_sequencer=row[6], offset_token=row[7],
                              rows_inserted=row[8], rows_parsed=row[9], rows_error_count=row[10],
                              last_error_offset_upper_bound=row[11], last_error_message=row[12],
                              last_error_timestamp=row[13].timestamp() if row[13] else None)
            self.channels[channel.key] = channel
        self._loaded.add(database)

    async def _save(self, channels: list[Channel], before: list[tuple[str, tuple]] | None = None) -> None:
        """Run `before` and write the channels' rows, in one transaction."""
        database = channels[0].database
        table = f"{database}.{CHANNELS_SCHEMA}.CHANNELS"
        statements = [("BEGIN", ()), *(before or [])]
        for channel in channels:
            statements.append((f"DELETE FROM {table} WHERE DATABASE_NAME = ? AND SCHEMA_NAME = ? AND PIPE_NAME = ? "
                               "AND NAME = ?", channel.key))
            statements.append((f"INSERT INTO {table} ({', '.join(CHANNEL_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(CHANNEL_COLUMNS))})", channel.record()))
        statements.append(("COMMIT", ()))
        await self._run(database, statements)

    async def _table_columns(self, database: str, schema: str, pipe: str) -> list[Column]:
        if not pipe.endswith(DEFAULT_PIPE_SUFFIX):
            raise StreamingError(404, "ERR_PIPE_DOES_NOT_EXIST",
                                 f"Pipe {pipe} does not exist (the embedded Snowflake has default pipes only)")
        table = _table(pipe)
        key = (database, schema, table)
        if key not in self._columns:
            rows = await self._run(database, [(
                "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_MAXIMUM_LENGTH, "
                f"NUMERIC_PRECISION, NUMERIC_SCALE FROM {database}.INFORMATION_SCHEMA.COLUMNS "
                "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (schema, table))])
            if not rows:
                raise StreamingError(404, "ERR_TABLE_DOES_NOT_EXIST",
                                     f"Table {database}.{schema}.{table} does not exist")
            self._columns[key] = [Column(r[0], r[1], r[2] == "YES", r[3] is not None, r[4], r[5], r[6]) for r in rows]
        return self._columns[key]

    async def _run(self, database: str, statements: list[tuple[str, tuple]]) -> list[tuple]:
        """Run statements in order on this database's own connection (in a thread: DuckDB blocks)."""
        if database not in self._connections:
            self._connections[database] = await asyncio.to_thread(self.fakesnow.connect, database)

        def run() -> list[tuple]:
            cursor = self._connections[database].cursor()
            try:
                for sql, params in statements:
                    cursor.execute(sql, binding_params=params or None, server=True)
                return cursor.fetchall() if cursor.description else []
            except Exception:
                if statements[0][0] == "BEGIN":
                    cursor.execute("ROLLBACK")
                raise

        return await asyncio.to_thread(run)

    # --- SHOW CHANNELS on the SQL endpoint ---
    async def show_channels_sql(self, sql: str, current_database: str | None) -> str | None:
        """The SELECT that answers a SHOW CHANNELS statement, or None when `sql` is not one."""
        match = SHOW_CHANNELS_PATTERN.match(sql)
        if match is None:
            return None
        scope, name = (match["scope"] or "").upper(), (match["name"] or "").replace('"', "").upper()
        parts = name.split(".") if name else []
        if not all(IDENTIFIER.match(p.replace("-", "_")) for p in parts):
            raise StreamingError(400, "ERR_INVALID_NAME", f"{name} is not a plain identifier")
        database = parts[0] if scope == "DATABASE" and parts else (
            parts[0] if len(parts) >= 2 else current_database)
        if not database:
            raise StreamingError(400, "ERR_NO_DATABASE", "SHOW CHANNELS needs a current database or IN DATABASE")
        database = database.upper()
        async with self._lock:
            await self._load(database)
        conditions = []
        if match["like"] is not None:
            conditions.append(f"NAME ILIKE '{_literal(match['like'])}'")
        if scope == "SCHEMA" and parts:
            conditions.append(f"SCHEMA_NAME = '{_literal(parts[-1])}'")
        elif scope in ("TABLE", "PIPE") and parts:
            wanted = parts[-1] if scope == "PIPE" else parts[-1] + DEFAULT_PIPE_SUFFIX
            conditions.append(f"PIPE_NAME = '{_literal(wanted)}'")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return SHOW_CHANNELS.format(db=database, where=where)

    def answering_show_channels(self, sessions: dict[str, Any], query_request: Callable) -> Callable:
        """Wrap fakesnow's SQL endpoint so that SHOW CHANNELS reads the channels table."""

        async def endpoint(request: Request) -> Any:
            gzipped = request.headers.get("Content-Encoding") == "gzip"
            body = await request.body()
            try:
                query = json.loads(gzip.decompress(body) if gzipped else body)
                sql = query.get("sqlText", "")
            except (ValueError, OSError, AttributeError):
                return await query_request(request)
            if not SHOW_CHANNELS_PATTERN.match(sql):
                return await query_request(request)
            session = sessions.get(request.headers.get("Authorization", "")[17:-1])
            select = await self.show_channels_sql(sql, getattr(session, "database", None))
            rewritten = json.dumps({**query, "sqlText": select}).encode()
            request._body = gzip.compress(rewritten) if gzipped else rewritten  # read again by fakesnow
            return await query_request(request)

        return endpoint


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _names(request: Request, channel: bool = True) -> tuple[str, str, str, str]:
    """Database, schema, pipe and channel names from the path: case-insensitive, hence upper-cased; plain
    identifiers only (they go into the emulation's SQL)."""
    params = request.path_params
    names = (params["database"].upper(), params["schema"].upper(), params["pipe"].upper(),
             params["channel"].upper() if channel else "")
    if not all(IDENTIFIER.match(n) for n in names[:2]) or not IDENTIFIER.match(names[2].replace("-", "_")):
        raise StreamingError(400, "ERR_INVALID_NAME", "database, schema and pipe must be plain identifiers")
    return names


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise StreamingError(400, "ERR_INVALID_REQUEST", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise StreamingError(400, "ERR_INVALID_REQUEST", "the request body must be a JSON object")
    return value


def _client_sequencer(token: str | None) -> int:
    try:
        return int((token or "").split("_", 1)[0])
    except ValueError:
        raise StreamingError(400, "ERR_INVALID_CONTINUATION_TOKEN", "continuationToken is missing or invalid") from None


def _parse_rows(body: bytes, columns: list[Column], omitted_columns: str = OMITTED_COLUMNS[0],
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """NDJSON lines to rows keyed by column name; the reasons of the lines the table cannot take. A column a row
    leaves out is NULL (`omitted_columns="null"`) or, in "default" mode, takes its default if it has one."""
    by_name = {c.name.upper(): c for c in columns}
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            errors.append(f"Row {number}: not a JSON object")
            continue
        if not isinstance(value, dict):
            errors.append(f"Row {number}: not a JSON object")
            continue
        row = {by_name[k.upper()].name: v for k, v in value.items() if k.upper() in by_name}
        problems = (c.problem(row.get(c.name)) for c in columns
                    if c.name in row or omitted_columns == "null" or not c.has_default)
        problem = next((p for p in problems if p), None)
        if problem:
            errors.append(f"Row {number}: {problem}")
            continue
        rows.append(row)
    return rows, errors


def _by_shape(rows: list[dict[str, Any]]) -> dict[tuple[frozenset[str], frozenset[str]], list[dict[str, Any]]]:
    """Rows by the columns they give a value and the columns they give null (one INSERT each: a JSON null cast to
    a column's type is not NULL in DuckDB, so the INSERT names NULL itself)."""
    shapes: dict[tuple[frozenset[str], frozenset[str]], list[dict[str, Any]]] = {}
    for row in rows:
        nulls = frozenset(k for k, v in row.items() if v is None)
        shape = (frozenset(row.keys() - nulls), nulls)
        shapes.setdefault(shape, []).append(row)
    return shapes


def _by_pipe(appends: list[Append]) -> dict[tuple[str, str, str], list[Append]]:
    pipes: dict[tuple[str, str, str], list[Append]] = {}
    for append in appends:
        pipes.setdefault(append.channel.key[:3], []).append(append)
    return pipes


def _table(pipe: str) -> str:
    """The table of a default pipe `<TABLE>-STREAMING`."""
    return pipe[: -len(DEFAULT_PIPE_SUFFIX)]
