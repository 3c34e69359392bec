"""Imports cost what they use: the dashboard and the dev stack load no Faust and build no worker; the worker's
modules are loaded when `faust -A caves_faust` asks for the app, not when the package is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

WORKER = ("faust", "caves_faust.faust_app", "caves_faust.intake.agent")
LOADED = "import sys, {module}; print(sorted(m for m in %r if m in sys.modules))" % (WORKER,)


def loaded_after(module: str) -> str:
    done = subprocess.run([sys.executable, "-c", LOADED.format(module=module)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("module", ["caves_faust", "caves_faust.dashboard", "caves_faust.dashboard.app",
                                    "caves_faust.devstack", "caves_faust.devstack.snowpipe"])
def test_importing_it_loads_no_faust_and_builds_no_worker(module):
    assert loaded_after(module) == "[]"


def test_the_app_faust_finds_has_every_agent_table_view_and_command_registered():
    code = ("import caves_faust; from faust.cli.faust import cli; app = caves_faust.app; "
            "print(sorted(app.agents), sorted(app.batch_sources), sorted(app.tables), "
            "sorted(c for c in ('audit', 'digest', 'dlq', 'elt', 'generate') if c in cli.commands), "
            "any(p == '/stock/' for p in app.web.views), '/metrics' in app.web.views)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Names of their own, not of modules: the consumer group, topics and changelogs stay those a worker of the
    # earlier layout left.
    assert done.stdout.strip() == ("['mails_sent', 'stock_tables'] ['sales_events'] ['product_window', 'stock'] "
                                   "['audit', 'digest', 'dlq', 'elt', 'generate'] True True")
