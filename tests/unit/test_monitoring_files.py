"""The Prometheus and Grafana files of `docker compose up` are valid and agree with each other."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.tools import require_command

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_HINT = "Debian: apt-get install prometheus; .ci/run installs it"


@pytest.mark.parametrize("check, path", [("config", "prometheus/prometheus.yml"), ("rules", "prometheus/rules.yml")])
def test_promtool_accepts(check: str, path: str):
    promtool = require_command("promtool", PROMTOOL_HINT)
    result = subprocess.run([promtool, "check", check, str(REPO / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_queries_the_provisioned_datasource():
    datasources = (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text()
    provisioned = re.findall(r"^\s*uid:\s*(\S+)", datasources, re.MULTILINE)
    dashboard = json.loads((REPO / "grafana/dashboards/caves_faust.json").read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    used |= {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]}
    used |= {variable["datasource"]["uid"] for variable in dashboard["templating"]["list"]}
    assert used == set(provisioned)
