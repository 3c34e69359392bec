"""External tools the suite drives (docker compose, prometheus, alertmanager, chromium...): one rule for all.

Outside CI a missing or half-present tool skips the test with the reason, so `make test` passes on a fresh
machine. Under CI (`CI=true`) `.ci/run` installs every tool, so a missing one is a failure: CI never hides a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn, Sequence

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test (fail it under CI) because a tool it needs is missing: `reason` says which and how."""
    if under_ci():
        pytest.fail(f"CI=true and {reason}: .ci/run should have installed it", pytrace=False)
    pytest.skip(reason)


def require_command(name: str, install_hint: str, probe: Sequence[str] | None = None) -> str:
    """The path of `name`, after checking it runs `probe` (its arguments) successfully; else `unavailable`."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"no `{name}` on PATH ({install_hint})")
    if probe is not None:
        try:
            result = subprocess.run([path, *probe], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"`{name} {' '.join(probe)}` does not run ({exc}; {install_hint})")
        if result.returncode != 0:
            first = (result.stderr or result.stdout).strip().splitlines()[:1]
            reason = first[0] if first else result.returncode
            unavailable(f"`{name} {' '.join(probe)}` fails: {reason} ({install_hint})")
    return path
