"""The Prometheus and Grafana files of `docker compose up` are valid and agree with each other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="no `promtool` on PATH (Debian: apt-get install prometheus)")
@pytest.mark.parametrize("check, path", [("config", "prometheus/prometheus.yml"), ("rules", "prometheus/rules.yml")])
def test_promtool_accepts(check: str, path: str):
    result = subprocess.run([PROMTOOL, "check", check, str(REPO / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_queries_the_provisioned_datasource():
    provisioned = re.findall(r"^\s*uid:\s*(\S+)", (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text(),
                             re.MULTILINE)
    dashboard = json.loads((REPO / "grafana/dashboards/caves_faust.json").read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    used |= {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]}
    used |= {variable["datasource"]["uid"] for variable in dashboard["templating"]["list"]}
    assert used == set(provisioned)
