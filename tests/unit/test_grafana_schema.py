"""Every dashboard JSON under grafana/ strict-parses with Grafana's own published schema types.

No Grafana server runs here: tests/grafana_schema is a small Go program on the Grafana Foundation SDK
(github.com/grafana/grafana-foundation-sdk/go, pinned in its go.mod), whose strict decoding rejects unknown fields,
wrong types and missing required fields, in the dashboard, in each panel type's options and field config and in each
datasource's queries. The negative tests prove that it can fail, on copies of the dashboard with one fault each.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.tools import require_command

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "tests" / "grafana_schema"
DASHBOARDS = sorted((REPO / "grafana").rglob("*.json"))
BASE = REPO / "grafana" / "dashboards" / "caves_faust.json"
GO_HINT = "Go 1.21+, https://go.dev/dl; the SDK comes from the Go module proxy"

Report = dict[str, list[str]]


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checker, built once: ~30 s the first time (module download and compile), a second once cached."""
    go = require_command("go", GO_HINT)
    binary = tmp_path_factory.mktemp("grafana_schema") / "grafana_schema"
    built = subprocess.run([go, "build", "-buildvcs=false", "-o", str(binary), "."], cwd=CHECKER,
                           capture_output=True, text=True, timeout=900, env={**os.environ, "GOWORK": "off"})
    assert built.returncode == 0, f"go build in {CHECKER} failed:\n{built.stdout}{built.stderr}"
    return binary


def run(checker: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(checker), *map(str, paths)], capture_output=True, text=True, timeout=120)


def parse(stdout: str) -> tuple[Report, set[str]]:
    """The checker's output as ({failed file: its problem lines}, {files reported ok})."""
    problems: Report = {}
    ok: set[str] = set()
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("ok "):
            ok.add(line[3:])
            current = None
        elif match := re.match(r"FAIL (.*) \(\d+ problems?\)$", line):
            current = problems.setdefault(match[1], [])
        elif line.startswith("  ") and current is not None:
            current.append(line.strip())
    return problems, ok


def test_every_dashboard_matches_grafanas_schema(checker: Path):
    assert BASE in DASHBOARDS
    result = run(checker, *DASHBOARDS)
    problems, ok = parse(result.stdout)
    if result.returncode != 0 or problems:
        pytest.fail(f"Grafana's schema rejects {len(problems)} dashboard file(s) (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)
    assert ok == {str(path) for path in DASHBOARDS}, result.stdout


@pytest.fixture(scope="module")
def base_problems(checker: Path) -> list[str]:
    """The problems of the dashboard as it is, so that each negative case must add its own."""
    return parse(run(checker, BASE).stdout)[0].get(str(BASE), [])


Mutation = Callable[[dict[str, Any]], None]


def first_panel(dashboard: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
    return next((i, panel) for i, panel in enumerate(dashboard["panels"]) if panel["type"] == kind)


def set_option(kind: str) -> Mutation:
    def mutate(dashboard: dict[str, Any]) -> None:
        first_panel(dashboard, kind)[1].setdefault("options", {})["bogusOption"] = True
    return mutate


def query_without_datasource(dashboard: dict[str, Any]) -> None:
    """A query of the panel's datasource: the SDK alone would not know its schema (it reads the panel's after)."""
    query = dashboard["panels"][0]["targets"][0]
    del query["datasource"]
    query["exprr"] = "up"


BASE_DASHBOARD: dict[str, Any] = json.loads(BASE.read_text())
PANEL_KINDS = sorted({panel["type"] for panel in BASE_DASHBOARD["panels"]})


def _kind_index(kind: str) -> int:
    return first_panel(BASE_DASHBOARD, kind)[0]


# (id, mutation of a copy of the dashboard, a problem line the checker must print for it)
CASES: list[tuple[str, Mutation, str]] = [
    ("unknown top-level field", lambda d: d.update(bogusField=1),
     '$.bogusField: unknown field "bogusField"'),
    ("title of the wrong type", lambda d: d.update(title=5),
     "$.title: json: cannot unmarshal number into Go value of type string"),
    ("panels of the wrong type", lambda d: d.update(panels={}),
     "$.panels: must be an array"),
    ("required schemaVersion missing", lambda d: d.pop("schemaVersion"),
     "$.schemaVersion: required field is missing from input"),
    ("unknown panel field", lambda d: d["panels"][0].update(bogusPanelField=1),
     '$.panels[0].bogusPanelField: unknown field "bogusPanelField"'),
    ("panel gridPos of the wrong type", lambda d: d["panels"][0]["gridPos"].update(w="4"),
     "$.panels[0].gridPos.w: json: cannot unmarshal string"),
    ("panel gridPos out of range", lambda d: d["panels"][0]["gridPos"].update(w=25),
     "$.panels[0].gridPos.w: must be <= 24"),
    ("panel type without a schema", lambda d: d["panels"][0].update(type="no-such-panel"),
     '$.panels[0].type: panel type "no-such-panel" has no schema'),
    ("unknown field in fieldConfig.defaults", lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unitt="s"),
     '$.panels[0].fieldConfig.defaults.unitt: unknown field "unitt"'),
    ("unknown field in a prometheus query", lambda d: d["panels"][0]["targets"][0].update(exprr="up"),
     '$.panels[0].targets[0].exprr: unknown field "exprr"'),
    ("query without its own datasource", query_without_datasource,
     '$.panels[0].targets[0].exprr: unknown field "exprr"'),
    ("unknown field in a template variable", lambda d: d["templating"]["list"][0].update(bogusVariableField=1),
     '$.templating.list[0].bogusVariableField: unknown field "bogusVariableField"'),
    *[(f"unknown {kind} option", set_option(kind),
       f'$.panels[{_kind_index(kind)}].options.bogusOption: unknown field "bogusOption"') for kind in PANEL_KINDS],
]


@pytest.mark.parametrize("mutate, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_check_fails_on(checker: Path, base_problems: list[str], tmp_path: Path, mutate: Mutation,
                            expected: str):
    dashboard = copy.deepcopy(BASE_DASHBOARD)
    mutate(dashboard)
    broken = tmp_path / BASE.name
    broken.write_text(json.dumps(dashboard, indent=2))
    result = run(checker, broken)
    problems, ok = parse(result.stdout)
    assert result.returncode == 1 and not ok, result.stdout + result.stderr
    new = [line for line in problems.get(str(broken), []) if line not in base_problems]
    assert any(line.startswith(expected) for line in new), (
        f"expected a problem starting {expected!r}, got:\n{result.stdout}{result.stderr}")
