"""The Prometheus and Grafana files of `docker compose up` are valid and agree with each other."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tools import require_command

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_HINT = "Debian: apt-get install prometheus; .ci/run installs it"


@pytest.mark.parametrize("check, path", [("config", "prometheus/prometheus.yml"), ("rules", "prometheus/rules.yml")])
def test_promtool_accepts(check: str, path: str):
    promtool = require_command("promtool", PROMTOOL_HINT)
    result = subprocess.run([promtool, "check", check, str(REPO / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_queries_the_provisioned_datasource():
    provisioned = re.findall(r"^\s*uid:\s*(\S+)", (REPO / "grafana/provisioning/datasources/prometheus.yml").read_text(),
                             re.MULTILINE)
    dashboard = json.loads((REPO / "grafana/dashboards/caves_faust.json").read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    used |= {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]}
    used |= {variable["datasource"]["uid"] for variable in dashboard["templating"]["list"]}
    assert used == set(provisioned)


# promtool's unit-test format: per case, input series (values at each `interval` step from time 0) and the alerts
# expected at given times. A worker up since 0, building every 60 s.
WAREHOUSE_ALERT_CASES = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'elt_interval_seconds{{job="caves_faust", instance="w1"}}'
        values: '60x20'
      - series: 'process_start_time_seconds{{job="caves_faust", instance="w1"}}'
        values: '0x20'
      # Builds succeed at 1 and 2 minutes, then every one fails: the last success stays at 120 s.
      - series: 'elt_last_success_timestamp_seconds{{job="caves_faust", instance="w1"}}'
        values: '0 60 120x18'
    alert_rule_test:
      - {{eval_time: 4m, alertname: WarehouseBuildsFailing, exp_alerts: []}}
      - eval_time: 6m
        alertname: WarehouseBuildsFailing
        exp_alerts: [{{exp_labels: {{severity: warning, job: caves_faust}}, exp_annotations: {annotations}}}]
  - interval: 1m
    input_series:
      # A worker just started (at 5 min), no build yet: its 3 intervals are not over at 7 min, they are at 9.
      - series: 'elt_interval_seconds{{job="caves_faust", instance="w1"}}'
        values: '_x5 60x10'
      - series: 'process_start_time_seconds{{job="caves_faust", instance="w1"}}'
        values: '_x5 300x10'
      - series: 'elt_last_success_timestamp_seconds{{job="caves_faust", instance="w1"}}'
        values: '_x5 0x10'
    alert_rule_test:
      - {{eval_time: 7m, alertname: WarehouseBuildsFailing, exp_alerts: []}}
      - eval_time: 9m
        alertname: WarehouseBuildsFailing
        exp_alerts: [{{exp_labels: {{severity: warning, job: caves_faust}}, exp_annotations: {annotations}}}]
  - interval: 1m
    input_series:
      # ELT_INTERVAL_SECONDS=0: the worker never builds, and that is no alert.
      - series: 'elt_interval_seconds{{job="caves_faust", instance="w1"}}'
        values: '0x20'
      - series: 'process_start_time_seconds{{job="caves_faust", instance="w1"}}'
        values: '0x20'
      - series: 'elt_last_success_timestamp_seconds{{job="caves_faust", instance="w1"}}'
        values: '0x20'
    alert_rule_test:
      - {{eval_time: 15m, alertname: WarehouseBuildsFailing, exp_alerts: []}}
"""


def test_the_warehouse_alert_fires_after_3_intervals_without_a_successful_build(tmp_path: Path):
    promtool = require_command("promtool", PROMTOOL_HINT)
    cases = tmp_path / "warehouse_alert_test.yml"
    rules = REPO / "prometheus" / "rules.yml"
    [rule] = [r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]
              if r["alert"] == "WarehouseBuildsFailing"]
    cases.write_text(WAREHOUSE_ALERT_CASES.format(rules=rules, annotations=json.dumps(rule["annotations"])))
    result = subprocess.run([promtool, "test", "rules", str(cases)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
