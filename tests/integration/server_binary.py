"""A server binary a test runs (Prometheus, Alertmanager), on a free port, its output in a log file of its home."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness import wait_until

LOG_TAIL = 3000  # characters of its log shown when it exits early
STOP_SECONDS = 30


class ServerBinary:
    def __init__(self, name: str, home: Path, port: int):
        self.name, self.home, self.port = name, home, port
        self.process: subprocess.Popen | None = None
        self.log_path = home / f"{name.lower()}.log"

    def start(self, command: list[str], timeout: float) -> None:
        """Run `command` until it answers /-/ready on its port (both Prometheus and Alertmanager serve it)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._ready, timeout, f"{self.name} on port {self.port} to be ready")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-LOG_TAIL:]
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()
