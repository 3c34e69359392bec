"""The warehouse layers built once: `dbt build` of `dbt_project/` in a subprocess, against the worker's Snowflake.

The dbt profile is written from the worker's settings for each build, so Snowflake is configured in one place;
secrets reach dbt only through its environment, as `DBT_ENV_SECRET_*` variables, which dbt keeps out of its
logs. `faust -A caves_faust elt` builds once; the worker's leader builds on a schedule (`elt/schedule.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caves_faust.settings import Settings
from caves_faust.snowflake.connection import Warehouse
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).parents[1] / "dbt_project"
PROFILE = "caves_faust"  # the profile dbt_project.yml names
TARGET = "worker"
# Models built in parallel on a real account; on the embedded Snowflake (one DuckDB process, on the developer's
# machine) one at a time.
REAL_ACCOUNT_THREADS = 4
PASSWORD_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"
PASSPHRASE_VARIABLE = "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"
OUTPUT_TAIL_LINES = 15  # of dbt's output, in the summary of a build dbt could not run
FAILED = ("error", "fail")  # dbt's statuses of a node that failed (others: success, pass, warn, skipped)


def profile(settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    """dbt's profiles.yml for the worker's Snowflake, and the environment variables holding its secrets."""
    output: dict[str, Any] = {
        "type": "snowflake", "user": settings.snowflake_user,
        "database": settings.snowflake_database, "schema": settings.snowflake_schema,
        "connect_timeout": int(settings.snowflake_timeout_seconds),
    }
    secrets: dict[str, str] = {}
    if settings.embedded_snowflake:
        output.update(account="embedded", password="embedded", host=settings.snowflake_host,
                      port=settings.snowflake_port, protocol=settings.snowflake_protocol, threads=1)
        return _profiles(output), secrets
    output.update(account=settings.snowflake_account, threads=REAL_ACCOUNT_THREADS)
    if settings.snowflake_private_key_file:
        output["private_key_path"] = settings.snowflake_private_key_file
        if settings.snowflake_private_key_passphrase:
            output["private_key_passphrase"] = _env_var(PASSPHRASE_VARIABLE)
            secrets[PASSPHRASE_VARIABLE] = str(settings.snowflake_private_key_passphrase)
    else:
        output["password"] = _env_var(PASSWORD_VARIABLE)
        secrets[PASSWORD_VARIABLE] = str(settings.snowflake_password)
    for name, value in (("warehouse", settings.snowflake_warehouse), ("role", settings.snowflake_role)):
        if value:
            output[name] = value
    return _profiles(output), secrets


def _profiles(output: dict[str, Any]) -> dict[str, Any]:
    return {PROFILE: {"target": TARGET, "outputs": {TARGET: output}}}


def _env_var(name: str) -> str:
    return "{{ env_var('%s') }}" % name


@dataclass(frozen=True)
class NodeResult:
    """What dbt did with one model or test."""

    kind: str  # model, test, ...
    name: str
    status: str  # dbt's: success, error, skipped (models); pass, fail, warn, error, skipped (tests)
    message: str
    rows_affected: int | None = None  # rows an incremental model's build wrote, as the warehouse told dbt

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass(frozen=True)
class BuildResult:
    returncode: int
    seconds: float
    nodes: tuple[NodeResult, ...]
    output_tail: str  # dbt's last lines: why, when it could not run at all

    @property
    def outcome(self) -> str:
        """success; failed: a model or test failed; error: dbt could not build (connection, project, crash)."""
        if self.returncode == 0:
            return "success"
        return "failed" if any(node.failed for node in self.nodes) else "error"

    @property
    def rows_written(self) -> dict[str, int]:
        """Rows each incremental model's build wrote (a table or view is created whole: not counted)."""
        return {node.name: node.rows_affected for node in self.nodes if node.rows_affected is not None}

    @property
    def failed_tests(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.kind == "test" and node.failed]

    def summary(self) -> str:
        kinds = Counter(node.kind for node in self.nodes)
        statuses = Counter(node.status for node in self.nodes)
        counted = ", ".join(f"{count} {kind}s" for kind, count in sorted(kinds.items())) or "nothing built"
        tally = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        lines = [f"elt: {self.outcome} in {self.seconds:.1f}s: {counted}" + (f" ({tally})" if tally else "")]
        lines += [f"  {node.kind} {node.name}: {node.status}: {node.message}" for node in self.nodes if node.failed]
        if self.rows_written:
            lines.append("  rows written: " + ", ".join(f"{name} {rows:,}" for name, rows in self.rows_written.items()))
        if self.outcome == "error":
            lines += [f"  dbt exited with {self.returncode}:", self.output_tail]
        return "\n".join(lines)


def dbt_vars(settings: Settings) -> dict:
    """The settings the models use: the shop's time zone, where stock is, the reorder rules."""
    return {"shop_timezone": settings.shop_timezone, "stock_locations": settings.location_of,
            "stock_reorder_min_bottles": settings.stock_reorder_min_bottles,
            "stock_lead_days": settings.stock_lead_days}


async def build(settings: Settings) -> BuildResult:
    """`dbt build` once, in a subprocess (never on the event loop); killed if the caller is cancelled. The tables the
    layers read are created empty first when missing (RAW_EVENTS_STREAM before the worker's first write,
    BATCH_DATA.SALES when no history was ever loaded), so that a build can always read them."""
    started = time.monotonic()
    try:
        await asyncio.to_thread(_create_sources, settings)
    except WAREHOUSE_ERRORS as exc:
        return BuildResult(1, time.monotonic() - started, (), f"the source tables could not be created: {exc}")
    with tempfile.TemporaryDirectory(prefix="caves_faust-elt-") as work:
        profiles, secrets = profile(settings)
        Path(work, "profiles.yml").write_text(json.dumps(profiles))  # JSON is YAML
        command = [
            sys.executable, "-m", "dbt.cli.main", "build", "--project-dir", str(PROJECT_DIR), "--profiles-dir", work,
            "--target-path", str(Path(work, "target")), "--log-path", str(Path(work, "logs")),
            "--vars", json.dumps(dbt_vars(settings)), "--no-use-colors", "--no-version-check",
        ]
        env = {**os.environ, **secrets, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        nodes = await asyncio.to_thread(  # dbt's manifest is megabytes of JSON: parsed off the event loop
            run_results, Path(work, "target", "run_results.json"), Path(work, "target", "manifest.json"))
    tail = "\n".join(output.decode(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])
    return BuildResult(process.returncode or 0, time.monotonic() - started, nodes, tail)


def _create_sources(settings: Settings) -> None:
    warehouse = Warehouse(settings)
    try:
        warehouse.bootstrap()
        warehouse.create_history_table()
        dropped = warehouse.drop_sales_tables_of_old_layout()
        if dropped:
            log.info("elt: %s from before the incremental sales tables dropped: built whole once", ", ".join(dropped))
    finally:
        warehouse.close()


def run_results(path: Path, manifest: Path | None = None) -> tuple[NodeResult, ...]:
    """The nodes of dbt's run_results.json (absent when dbt stopped before building anything); with its manifest,
    the rows the incremental models wrote."""
    try:
        results = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return ()
    incremental = _incremental_models(manifest) if manifest else set()
    return tuple(_node(result, result["unique_id"] in incremental) for result in results)


def _incremental_models(manifest: Path) -> set[str]:
    try:
        nodes = json.loads(manifest.read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return set()
    return {unique_id for unique_id, node in nodes.items()
            if node.get("config", {}).get("materialized") == "incremental"}


def _node(result: dict[str, Any], incremental: bool = False) -> NodeResult:
    # unique_id: "<kind>.<project>.<name>", generic tests followed by ".<hash>"
    kind, _, name = result["unique_id"].split(".", 2)
    if kind == "test" and "." in name:
        name = name.rsplit(".", 1)[0]
    message = " ".join(str(result.get("message") or "").split())
    rows = (result.get("adapter_response") or {}).get("rows_affected") if incremental else None
    return NodeResult(kind, name, str(result.get("status")), message, rows if isinstance(rows, int) else None)
