"""The embedded Snowflake: a fakesnow server (DuckDB-backed, Snowflake's HTTP API) with its data on disk.

The worker reaches it through `snowflake.connector.connect(host=..., port=..., protocol="http")`, the same
code path as a real account. fakesnow's own `--server` mode keeps data in memory only; this entry point
gives its shared instance a database directory so that data survives a restart.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from caves_faust.devstack.process import ManagedProcess


@dataclass
class EmbeddedSnowflake(ManagedProcess):
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "caves_faust.devstack.snowflake",
                "--port", str(self.port), "--data-dir", str(self.data_dir.resolve())]


def serve(host: str, port: int, data_dir: Path) -> None:
    import fakesnow.server
    import uvicorn
    from fakesnow.instance import FakeSnow

    # Every session shares one DuckDB instance whose databases are files under data_dir.
    fakesnow.server.shared_fs = FakeSnow(db_path=data_dir)
    uvicorn.run(fakesnow.server.app, host=host, port=port, log_level="warning")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Embedded Snowflake (fakesnow) with on-disk data")
    # Loopback unless opened on purpose (0.0.0.0 in Docker, where the worker is another container).
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    serve(args.host, args.port, args.data_dir)


if __name__ == "__main__":
    main()
