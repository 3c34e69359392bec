"""The embedded Snowflake: a fakesnow server (DuckDB-backed, Snowflake's HTTP API) with its data on disk.

The worker reaches it through `snowflake.connector.connect(host=..., port=..., protocol="http")`, the same
code path as a real account. fakesnow's own `--server` mode keeps data in memory only; this entry point
gives its shared instance a database directory so that data survives a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from caves_faust.devstack.process import ManagedProcess
from caves_faust.devstack.snowpipe import COMMIT_SECONDS, Snowpipe

log = logging.getLogger("caves_faust.devstack.snowflake")

# Snowflake aborts a transaction left open by a session that went away (a client killed inside it) once it is idle
# and blocking others for 5 minutes; fakesnow would keep it forever, and the rows it holds make every later writer
# of the same rows fail. The embedded Snowflake ends such sessions after this long idle inside a transaction.
DETACHED_TRANSACTION_SECONDS = 300.0


@dataclass
class EmbeddedSnowflake(ManagedProcess):
    detached_transaction_seconds: float = DETACHED_TRANSACTION_SECONDS
    streaming_commit_seconds: float = COMMIT_SECONDS

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "caves_faust.devstack.snowflake",
                "--port", str(self.port), "--data-dir", str(self.data_dir.resolve()),
                "--detached-transaction-seconds", str(self.detached_transaction_seconds),
                "--streaming-commit-seconds", str(self.streaming_commit_seconds)]


class DetachedTransactions:
    """Follows each session's explicit transaction; a session idle inside one for `seconds` is rolled back and
    ended, as Snowflake does with a detached transaction (its client, if alive after all, must log in again)."""

    def __init__(self, sessions: dict[str, Any], seconds: float):
        self.sessions = sessions
        self.seconds = seconds
        self.open: dict[str, float] = {}  # session token -> last use of its open transaction
        self.busy: Counter[str] = Counter()

    def watching(self, query_request: Callable) -> Callable:
        async def endpoint(request: Any) -> Any:
            token = request.headers.get("Authorization", "")[17:-1]
            verb = _first_word(await request.body(), request.headers.get("Content-Encoding"))
            self.busy[token] += 1
            try:
                return await query_request(request)
            finally:
                self.busy[token] -= 1
                if verb in ("BEGIN", "START"):
                    self.open[token] = time.monotonic()
                elif verb in ("COMMIT", "ROLLBACK", "CREATE", "ALTER", "DROP"):
                    self.open.pop(token, None)
                elif token in self.open:
                    self.open[token] = time.monotonic()

        return endpoint

    async def abort_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.seconds / 4))
            for token, last_used in list(self.open.items()):
                if not self.busy[token] and time.monotonic() - last_used > self.seconds:
                    del self.open[token]
                    conn = self.sessions.pop(token, None)
                    if conn is not None:
                        log.warning("aborting a transaction idle for %.0fs and ending its session", self.seconds)
                        await asyncio.to_thread(conn.rollback)


def _first_word(body: bytes, encoding: str | None) -> str:
    try:
        sql = json.loads(gzip.decompress(body) if encoding == "gzip" else body)["sqlText"]
    except (ValueError, KeyError, TypeError, OSError):
        return ""
    words = sql.split(None, 1)
    return words[0].upper() if words else ""


def serve(host: str, port: int, data_dir: Path, detached_transaction_seconds: float,
          streaming_commit_seconds: float) -> None:
    import fakesnow.server
    import uvicorn
    from fakesnow.instance import FakeSnow
    from starlette.applications import Starlette
    from starlette.routing import Route

    # Every session shares one DuckDB instance whose databases are files under data_dir.
    fakesnow.server.shared_fs = FakeSnow(db_path=data_dir)
    detached = DetachedTransactions(fakesnow.server.sessions, detached_transaction_seconds)
    # Snowpipe Streaming's REST API on the same data, and SHOW CHANNELS on the SQL endpoint.
    snowpipe = Snowpipe(fakesnow.server.shared_fs, streaming_commit_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(detached.abort_idle()), asyncio.create_task(snowpipe.commit_forever())]
        yield
        for task in tasks:
            task.cancel()

    routes = [
        Route(route.path, detached.watching(snowpipe.answering_show_channels(fakesnow.server.sessions,
                                                                             route.endpoint)),
              methods=route.methods)
        if route.path == "/queries/v1/query-request" else route
        for route in fakesnow.server.app.routes
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
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.data_dir, args.detached_transaction_seconds, args.streaming_commit_seconds)


if __name__ == "__main__":
    main()
