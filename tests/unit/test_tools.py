"""The suite's rule for external tools: a missing or half-present one skips outside CI and fails under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HALF_PRESENT_DOCKER = """#!/bin/sh
# A docker client without its compose plugin: `docker compose ...` is an unknown command.
echo "docker: unknown command: docker $1" >&2
exit 1
"""

PROBE_TEST = """
from tests.tools import require_command

def test_needs_compose():
    require_command("docker", "the compose plugin", probe=["compose", "version"])
"""


def run_probe_test(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(HALF_PRESENT_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "test_probe.py").write_text(PROBE_TEST)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CI": ci,
           "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_half_present_tool_skips_with_its_reason_outside_ci(tmp_path: Path):
    result = run_probe_test(tmp_path, ci="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "docker compose version" in result.stdout, result.stdout


def test_a_half_present_tool_fails_under_ci(tmp_path: Path):
    result = run_probe_test(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout and "CI=true" in result.stdout, result.stdout


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("", False), ("false", False)])
def test_under_ci_reads_the_ci_variable(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool):
    from tests.tools import under_ci

    monkeypatch.setenv("CI", value)
    assert under_ci() is expected
