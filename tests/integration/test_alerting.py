"""Alerts reach a person: a real worker, a real Prometheus evaluating prometheus/rules.yml, a real Alertmanager
routing with alertmanager/alertmanager.yml, and a local webhook standing for the team's endpoints.

The Alertmanager configuration is the repository's with two changes only: its webhook URLs point at the test's
webhook (same receiver names, hence same paths) and its grouping waits are 1 s, so that a notification and its
resolution arrive in seconds rather than minutes. Routes, matchers and receivers are as shipped.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from caves_faust.devstack.process import free_port
from tests.harness import Pipeline, Stack, wait_until
from tests.integration.server_binary import ServerBinary
from tests.integration.test_observability import RULES, Prometheus, wave
from tests.tools import require_command

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
WEBHOOK_URL = re.compile(r"^(\s*- url: )https?://\S+/(\w+)$", re.MULTILINE)
GROUP_TIMING = re.compile(r"^(\s*group_(?:wait|interval): )\S+", re.MULTILINE)
START_SECONDS = 30
# What this test checks is the routing, not how long a rule holds: the rules' one-minute holds are cut to 10 s.
HOLD = re.compile(r"^(\s*for: )1m$", re.MULTILINE)
# SnowflakeDown holds 10 s before it fires; then Prometheus, Alertmanager and the webhook, each within seconds.
FIRING_SECONDS = 90
RESOLVED_SECONDS = 90


class Webhook:
    """An HTTP server recording every Alertmanager notification: (receiver path, status, alert name, labels)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, str, str, dict[str, str]]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend((self.path.strip("/"), alert["status"], alert["labels"]["alertname"], alert["labels"])
                                for alert in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, receiver: str, status: str, alert: str) -> list[dict[str, str]]:
        return [labels for path, s, name, labels in list(self.notifications)
                if (path, s, name) == (receiver, status, alert)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Alertmanager:
    binary: str
    home: Path
    webhook: str
    port: int = field(default_factory=free_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        self.home.mkdir(parents=True, exist_ok=True)
        config = WEBHOOK_URL.sub(rf"\g<1>{self.webhook}/\g<2>", ALERTMANAGER_CONFIG.read_text())
        config = GROUP_TIMING.sub(r"\g<1>1s", config)
        assert config.count(self.webhook) == 2, config
        (self.home / "alertmanager.yml").write_text(config)
        self.server = ServerBinary("Alertmanager", self.home, self.port)
        self.server.start([self.binary, f"--config.file={self.home / 'alertmanager.yml'}",
                           f"--storage.path={self.home / 'data'}", f"--web.listen-address={self.address}",
                           "--cluster.listen-address="], START_SECONDS)  # no HA peers: no gossip port
        return self

    def stop(self) -> None:
        self.server.stop()


def test_a_snowflake_outage_is_delivered_to_the_webhook_by_severity_then_resolved(
    pipeline: Pipeline, stack: Stack, start_worker, tmp_path: Path,
):
    binary = require_command("prometheus-alertmanager", "Debian: apt-get install prometheus-alertmanager; "
                             ".ci/run installs it")
    require_command("prometheus", "Debian: apt-get install prometheus; .ci/run installs it")
    webhook = Webhook()
    alertmanager = Alertmanager(binary, tmp_path / "alertmanager", webhook.url).start()
    worker = start_worker(SNOWFLAKE_TIMEOUT_SECONDS="5", SINK_RETRY_MAX_SECONDS="2")
    instance = f"127.0.0.1:{worker.web_port}"
    held_less = tmp_path / "rules.yml"
    held_less.write_text(HOLD.sub(r"\g<1>10s", RULES.read_text()))
    prometheus = Prometheus(tmp_path / "prometheus", instance, alertmanager=alertmanager.address,
                            rule_file=held_less).start()
    try:
        valid, _ = wave(0)
        pipeline.produce(valid)
        wait_until(lambda: pipeline.row_count() == len(valid), 60, "the first wave's rows")

        stack.snowflake.stop()
        try:
            more, _ = wave(1)
            pipeline.produce(more)
            firing = wait_until(lambda: webhook.received("critical", "firing", "SnowflakeDown"), FIRING_SECONDS,
                                "SnowflakeDown delivered to the critical webhook")
            assert firing[0]["instance"] == instance and firing[0]["severity"] == "critical"
            # The warning raised by the same outage went to the warning receiver, and only there.
            wait_until(lambda: webhook.received("warning", "firing", "SnowflakeErrors"), 30,
                       "SnowflakeErrors delivered to the warning webhook")
            assert not webhook.received("critical", "firing", "SnowflakeErrors")
            assert not webhook.received("warning", "firing", "SnowflakeDown")
            assert not webhook.received("critical", "resolved", "SnowflakeDown")
        finally:
            stack.snowflake.start()

        wait_until(lambda: pipeline.row_count() == len(valid) + len(more), 60, "the second wave's rows, after")
        resolved = wait_until(lambda: webhook.received("critical", "resolved", "SnowflakeDown"), RESOLVED_SECONDS,
                              "SnowflakeDown resolved on the critical webhook")
        assert resolved[0]["instance"] == instance
    finally:
        prometheus.stop()
        alertmanager.stop()
        webhook.stop()
        # A SIGTERM could wait for the acks of a batch left unacknowledged by the outage; the test is over.
        worker.kill()
    print(f"\nwebhook notifications: {[(path, status, name) for path, status, name, _ in webhook.notifications]}")
