"""A background server process tracked by the pid file it leaves in its home directory.

Stopping goes by that recorded pid (and checks it is still ours), never by name patterns, so
`make down` works after a crash and never touches someone else's process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_LINES = 40  # of each log file, in the report of a server that died


class DevstackError(RuntimeError):
    """A local service could not be prepared or started; the message says what to do."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ManagedProcess:
    name: str
    home: Path
    port: int
    # The server this process started, until stopped: one that exits meanwhile died (see `death`).
    started: subprocess.Popen | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.out"

    def log_files(self) -> list[Path]:
        """Where the server writes what it does: its output, and any log of its own."""
        return [self.log_file]

    def death(self) -> str | None:
        """If the server this process started exited without being stopped: how, and its logs' last lines."""
        if self.started is None or self.started.poll() is None:
            return None
        code = self.started.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tails = [_tail(path) for path in self.log_files() if path.exists()]
        return "\n".join([f"{self.name} (pid {self.started.pid}) {how} without being stopped", *tails])

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-off work before the first start (downloads, formatting)."""

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if self.started is not None and self.started.pid == pid:
            return pid if self.started.poll() is None else None  # our child: Popen reaps it, and keeps its exit
        return pid if _alive(pid) and self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        # A recycled pid must not be mistaken for our server: its command line names our home.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return str(self.home.resolve()) in cmdline

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, wait_seconds: float = 60.0) -> bool:
        """Start unless already running; wait until it answers. Returns whether it was started now."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.running():
            self.wait_ready(wait_seconds)
            return False
        if port_open(self.port):
            raise DevstackError(f"{self.name}: port {self.port} is already taken by another program")
        self.prepare()
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.home,
            )
        self.pid_file.write_text(str(proc.pid))
        self.started = proc
        self.wait_ready(wait_seconds, proc)
        return True

    def wait_ready(self, wait_seconds: float, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise DevstackError(f"{self.name} exited with code {proc.returncode}; see {self.log_file}")
            if self.ready():
                return
            time.sleep(0.2)
        raise DevstackError(
            f"{self.name} did not answer on port {self.port} within {wait_seconds:.0f}s; see {self.log_file}")

    def ready(self) -> bool:
        return port_open(self.port)

    def stop(self, wait_seconds: float = 30.0) -> bool:
        """Stop it gracefully (SIGTERM, then SIGKILL). Returns whether something was stopped."""
        self.started = None
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_seconds
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests)."""
        self.started = None
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join([f"--- last lines of {path}:", *lines])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours (tests) has exited; reap it so it does not count as alive.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
