"""Fault injection from outside the worker: proxies that withhold a Snowflake statement or a streaming append,
Kafka topic configs, the sockets a process listens on. No mock: the worker talks to the real broker and
embedded Snowflake."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from pathlib import Path
from typing import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from caves_faust.settings import load_settings

# What the sink's transaction sends: BEGIN, the high-water marks, the rows, then COMMIT.
ROWS_INSERT = "INSERT INTO RAW_EVENTS_STREAM"
# Where streaming mode appends rows: the table's default pipe (dead letters go to DLQ_EVENTS's).
ROWS_APPEND = f"/pipes/{load_settings({}, dotenv=False).snowflake_pipe}/channels/".encode()


class SnowflakeTrap:
    """A TCP proxy in front of the embedded Snowflake that forwards every request until `withholds(sql)` says
    to hold one: that request never reaches the server, and `held` is set. The test then kills the worker, which
    thus dies right there (waiting for the answer), never a step earlier or later."""

    def __init__(self, upstream_port: int, withholds: Callable[[str], bool]):
        self.upstream_port = upstream_port
        self.withholds = withholds
        self.held = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        muted = threading.Event()
        threading.Thread(target=_pump, args=(upstream, client, muted), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    return
                if self._withhold(request):
                    muted.set()  # for good on this upstream connection
                    self.held.set()
                    later = self._hold(request, upstream)
                    if later is None:
                        reader.read()  # until the worker dies and its socket closes
                        return
                    upstream, muted = later, threading.Event()
                    threading.Thread(target=_pump, args=(upstream, client, muted), daemon=True).start()
                upstream.sendall(request)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                sock.close()

    def _withhold(self, request: bytes) -> bool:
        sql = _sql_text(request)
        if sql is None or self.held.is_set():
            return False
        with self._lock:
            return self.withholds(sql)

    def _hold(self, request: bytes, upstream: socket.socket) -> socket.socket | None:
        """What becomes of the withheld request: None, it stays unanswered; or a new upstream connection that it
        is sent on now, its answer going back to the worker, and the proxying goes on."""
        return None


class AppendTrap(SnowflakeTrap):
    """Withholds the answer to the sink's `let_through + 1`-th Snowpipe Streaming append of rows (those of dead
    letters, on DLQ_EVENTS's pipe, pass). Forwarded: the rows are appended and commit on the server while the
    worker waits to hear of them. Parked: the append itself waits in the proxy until `release()`, then reaches
    Snowflake late, as a zombie's would, and is answered."""

    def __init__(self, upstream_port: int, let_through: int, parked: bool = False):
        super().__init__(upstream_port, withholds=lambda sql: False)
        self.let_through = let_through
        self.parked = parked
        self.appends_through = 0
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def _withhold(self, request: bytes) -> bool:
        line = request.split(b"\r\n", 1)[0]
        if self.held.is_set() or not (line.startswith(b"POST /v2/streaming/data/") and ROWS_APPEND in line
                                      and b"/rows?" in line):
            return False
        with self._lock:
            if self.appends_through == self.let_through:
                return True
            self.appends_through += 1
        return False

    def _hold(self, request: bytes, upstream: socket.socket) -> socket.socket | None:
        if not self.parked:
            upstream.sendall(request)
            return None
        self.released.wait(300)
        return socket.create_connection(("127.0.0.1", self.upstream_port))  # the old one may have timed out


class CommitOfWrite:
    """Withholds the COMMIT of the sink's `let_through + 1`-th row-writing transaction: that transaction stays
    open on the server with its rows inserted and its high-water marks advanced."""

    def __init__(self, let_through: int):
        self.let_through = let_through
        self.writes_committed = 0
        self._after_rows_insert = False

    def __call__(self, sql: str) -> bool:
        if sql.strip().upper() == "COMMIT" and self._after_rows_insert:
            if self.writes_committed == self.let_through:
                return True
            self.writes_committed += 1
        if sql.lstrip().upper().startswith(("INSERT", "COMMIT", "ROLLBACK")):
            self._after_rows_insert = sql.lstrip().upper().startswith(ROWS_INSERT)
        return False


def first_rows_insert(sql: str) -> bool:
    """Withholds the sink's first row insert: its batch's dead letters are delivered, its rows not written."""
    return sql.lstrip().upper().startswith(ROWS_INSERT)


def _read_request(reader) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + reader.read(length)


def _sql_text(request: bytes) -> str | None:
    head, _, body = request.partition(b"\r\n\r\n")
    if b"/queries/v1/query-request" not in head.split(b"\r\n", 1)[0]:
        return None
    if b"content-encoding: gzip" in head.lower():
        body = gzip.decompress(body)
    return json.loads(body).get("sqlText")


def _pump(source: socket.socket, target: socket.socket, muted: threading.Event) -> None:
    """Source to target until either closes; once muted, drops what comes and leaves the target open."""
    try:
        while data := source.recv(65536):
            if not muted.is_set():
                target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source,) if muted.is_set() else (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def set_topic_config(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Replace `topic`'s config overrides (Kafka AlterConfigs: the ones not given return to the defaults)."""

    async def alter() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
        finally:
            await admin.close()
        errors = [r for response in responses for r in response.resources if r[0] != 0]
        assert not errors, errors

    asyncio.run(alter())


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address
